"""What every tab shares: what a technique declares to the registry in app.py, image uploads
that fail with a clear message, checks for numbers sent through the API (slider limits only
protect the UI), and lazily loaded pipelines."""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

import gradio as gr
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000            # refuse images above 40 MP before decoding them
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's own decompression-bomb guard, as a second line
HEAVY = "heavy"                    # concurrency_id shared by the CPU/GPU-bound events
HEAVY_OPEN = 16                    # heavy requests let in at once: they wait in HEAVY_LANE
MAX_SECONDS = 300                  # no single request may hold the heavy queue longer
STREAMING = shutil.which("ffmpeg") is not None   # Gradio encodes streamed audio with ffmpeg

T = TypeVar("T")

# the navigation's groups, in order: id -> the label of its tab
GROUPS = {"images": "Images", "art": "Art", "sound": "Text & sound"}


@dataclass(frozen=True)
class Technique:
    """What a tab module declares to the registry (``app.TECHNIQUES``) as ``TECHNIQUE``."""
    id: str           # the module's name in models/, tabs/, train/, tests/, benchmarks/, docs/
    title: str        # its name on the landing view
    group: str        # a key of GROUPS
    summary: str      # one line for the landing view
    tab: str = ""     # its tab's label, short enough that a group's tabs fit a phone (or title)

    @property
    def label(self) -> str:
        return self.tab or self.title


@dataclass
class TabContext:
    """What the registry hands a tab's ``build``: the app's Blocks, and the events that show the
    tab (its own tab, its group's tab when it is the group's first, its landing button), for a
    tab that draws something when it is first seen."""
    blocks: gr.Blocks
    shown: list = field(default_factory=list)


class ImageUpload(gr.Image):
    """``gr.Image`` whose unreadable uploads become a clear ``gr.Error`` (not a stack trace).

    (No ``__init__`` of its own: Gradio reads the component's props from ``gr.Image``'s.)
    """

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Image.DecompressionBombError:
            raise gr.Error(f"That image has too many pixels (the limit is {MAX_PIXELS // 1_000_000} MP).")
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise gr.Error(f"Could not read the upload as an image ({type(exc).__name__}). "
                           "Try a PNG or JPEG file.")


def ImageInput(**kwargs) -> gr.Image:
    """An image upload passed on as a file path: decoding, modes and size limits are done by
    :func:`read_image`, so every problem gets a message a person understands."""
    kwargs.setdefault("type", "filepath")
    kwargs.setdefault("image_mode", None)
    kwargs.setdefault("sources", ["upload", "clipboard", "webcam"])
    return ImageUpload(**kwargs)


def read_image(path: str | None, max_side: int) -> tuple[np.ndarray, list[str]]:
    """Decode any image mode into RGB uint8, scaled down to ``max_side``; return notes for the user."""
    if not path:
        raise gr.Error("Upload an image first, or click one of the examples.")
    notes: list[str] = []
    try:
        im = Image.open(path)
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise gr.Error(f"The image is {w}x{h} ({w * h / 1e6:.0f} MP); the limit is "
                           f"{MAX_PIXELS // 1_000_000} MP. Please scale it down first.")
        im.load()
        im = ImageOps.exif_transpose(im)
    except gr.Error:
        raise
    except Image.DecompressionBombError:
        raise gr.Error(f"That image has too many pixels (the limit is {MAX_PIXELS // 1_000_000} MP).")
    except Exception as exc:  # truncated, corrupt, unsupported
        raise gr.Error(f"Could not decode the image ({type(exc).__name__}: {exc}). Try a PNG or JPEG.")
    im, mode_note = to_rgb(im)
    if mode_note:
        notes.append(mode_note)
    if max(im.size) > max_side:
        old = im.size
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        notes.append(f"resized from {old[0]}x{old[1]} to {im.size[0]}x{im.size[1]}")
    return np.asarray(im, dtype=np.uint8).copy(), notes


def to_rgb(im: Image.Image) -> tuple[Image.Image, str]:
    """RGB for any PIL mode: 16-bit and float scaled, transparency put on white, CMYK converted."""
    mode = im.mode
    if mode == "RGB":
        return im, ""
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        gray = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB"), f"{mode} image scaled to 8 bits"
    if mode == "P":
        im = im.convert("RGBA")
    if mode in ("RGBA", "LA", "PA", "P", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        note = "transparency put on white" if rgba.getextrema()[3][0] < 255 else ""
        return Image.alpha_composite(white, rgba).convert("RGB"), note
    converted = im.convert("RGB")
    return converted, ("" if mode in ("L", "1") else f"{mode} image converted to RGB")


BLACK_CANVAS = np.zeros((280, 280, 3), np.uint8)


def blank_canvas() -> dict:
    """A sketchpad's value with nothing drawn: the black canvas (also its "clear" button)."""
    return {"background": BLACK_CANVAS, "layers": [], "composite": BLACK_CANVAS}


def DigitSketchpad(**kwargs) -> gr.Sketchpad:
    """A 280 x 280 sketchpad laid out as the digit models see their data: a white brush on a
    black canvas (the brush is picked whenever none is: app.BRUSH_FIRST; the tab's own clear
    button gives the black canvas back, Gradio's would leave a white one)."""
    kwargs.setdefault("label", "Draw here")
    kwargs.setdefault("show_label", False)     # its toolbar and canvas would cover the label
    return gr.Sketchpad(value=blank_canvas(), type="numpy", canvas_size=(280, 280), height=340,
                        brush=gr.Brush(default_size=20, colors=["#ffffff"], color_mode="fixed"),
                        layers=False, elem_classes="gdl-sketch", **kwargs)


def drawing_or_upload(sketch, upload, max_side: int = 1024) -> tuple[np.ndarray, list[str]]:
    """A grey picture (H, W) uint8 from a sketchpad's composite, or, if nothing was drawn, from
    an uploaded image; and notes on what was done to it."""
    if isinstance(sketch, dict) and sketch.get("composite") is not None:
        rgb, _ = to_rgb(Image.fromarray(np.asarray(sketch["composite"], dtype=np.uint8)))
        gray = np.asarray(rgb.convert("L"))
        if np.ptp(gray) > 0:  # a blank canvas is not a drawing
            return gray, []
    if not upload:
        raise gr.Error("Draw something on the sketchpad, or upload an image.")
    rgb, notes = read_image(upload, max_side)
    return rgb.mean(-1).astype(np.uint8), notes


def number(value: Any, name: str, lo: float, hi: float, *, integer: bool = False) -> float | int:
    """A finite number within [lo, hi], or a clear gr.Error."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number (got {value!r}).")
    if not math.isfinite(x):
        raise gr.Error(f"{name} must be a finite number (got {value!r}).")
    if not lo <= x <= hi:
        raise gr.Error(f"{name} must be between {lo:g} and {hi:g} (got {x:g}).")
    if integer:
        if x != int(x):
            raise gr.Error(f"{name} must be a whole number (got {x:g}).")
        return int(x)
    return x


def sentence(notes: list[str]) -> str:
    """Notes joined into one sentence (first letter capitalised, the rest untouched), or ''."""
    joined = "; ".join(notes)
    return joined[:1].upper() + joined[1:] + ". " if joined else ""


def seed_value(value: Any) -> int:
    return number(value, "Seed", 0, 2**31 - 1, integer=True)


class Lazy(Generic[T]):
    """A pipeline built on first use (never at import), once, with progress while it loads:
    each tab keeps its own in ``PIPELINES`` (label -> Lazy). ``warm`` ones (small models a
    classroom presses first) are also loaded by the server right after it starts
    (``app.warm_up``), so the first thirty visitors do not wait for a load."""

    def __init__(self, title: str, factory: Callable[[Callable[[float, str], None]], T],
                 warm: bool = False):
        self.title = title
        self.warm = warm
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self, progress: gr.Progress | None = None) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    def report(fraction: float, desc: str) -> None:
                        if progress is not None:
                            progress(fraction, desc=desc)

                    report(0.0, f"Loading {self.title} (first use)")
                    try:
                        self._value = self._factory(report)
                    except Exception as exc:
                        raise gr.Error(f"Could not load {self.title}: {exc}")
        return self._value


@dataclass
class LivePlay:
    """What one visitor's Play loop trains, kept in their gr.State: the ``game``, the lock its
    computation holds (taken on a worker thread only, never while waiting for one), when the
    loop last drew (so a second Play does not start a second loop) and whether Pause was
    pressed."""
    game: Any = None
    heartbeat: float = 0.0
    paused: bool = False
    loops: int = 0           # Play loops still inside their generator (0 or 1)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def playing(self) -> bool:
        return time.monotonic() - self.heartbeat < 3.0

    def locked(self, fn, *args):
        with self.lock:
            return fn(*args)

    def stop(self, seconds: float = 2.0) -> None:
        """Pause: tell the loop, then wait (a little) until it has left, so that a picture it drew
        just before cannot reach the page after the paused one."""
        self.paused, self.heartbeat = True, 0.0
        end = time.monotonic() + seconds
        while self.loops > 0 and time.monotonic() < end:
            time.sleep(0.01)

    def end(self) -> None:
        """The visitor left (or the state expired): the loop stops at its next frame and the
        game's networks go."""
        self.paused, self.heartbeat = True, 0.0
        with self.lock:
            self.game = None


def end_live_play(state) -> None:
    """gr.State's delete_callback for a LivePlay."""
    if isinstance(state, LivePlay):
        state.end()


class Deadline:
    """Wall-clock cap for one request, so a generation cannot hold the queue forever."""

    def __init__(self, seconds: float = MAX_SECONDS):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end


class Lane:
    """A bounded lane for long jobs: ``slots`` run at once, in order of arrival, and a visitor
    may have ``per_visitor`` jobs open in it (running or waiting); more are refused at once
    with a clear message, so one client's flood of requests cannot starve everyone else.
    A waiting job is told its place in line and the expected wait (from recent jobs).

        with lane.ticket(visitor) as ticket:       # gr.Error if the visitor has too many open
            while not ticket.admitted(timeout=1):
                yield ticket.message()
            ...                                     # the job; leaving frees the slot
    """

    def __init__(self, name: str, slots: int = 1, per_visitor: int = 1):
        self.name, self.slots, self.per_visitor = name, slots, per_visitor
        self.cond = threading.Condition()
        self.line: list[Ticket] = []               # open tickets in order of arrival
        self.recent: list[float] = []              # seconds of the last jobs, for the estimate

    def ticket(self, visitor: str | None) -> "Ticket":
        with self.cond:
            mine = sum(t.visitor == visitor for t in self.line) if visitor else 0
            if mine >= self.per_visitor:
                raise gr.Error(f"You already have {mine} {self.name} job(s) running or waiting "
                               f"(the limit is {self.per_visitor} per visitor, so that everyone "
                               "gets a turn): wait for one to finish, or stop it.")
            t = Ticket(self, visitor)
            self.line.append(t)
            return t

    def position(self, t: "Ticket") -> int:
        """0 = running; n = n-th in line."""
        i = self.line.index(t)
        return 0 if i < self.slots else i - self.slots + 1

    def expected_wait(self, place: int) -> float | None:
        if not self.recent:
            return None
        return place * sorted(self.recent)[len(self.recent) // 2] / self.slots


class Ticket:
    def __init__(self, lane: Lane, visitor: str | None):
        self.lane, self.visitor, self.started = lane, visitor, None

    def admitted(self, timeout: float) -> bool:
        with self.lane.cond:
            if self.lane.position(self) > 0:
                self.lane.cond.wait(timeout)
            if self.lane.position(self) == 0:
                self.started = self.started or time.monotonic()
                return True
            return False

    def message(self) -> str:
        with self.lane.cond:
            place = self.lane.position(self)
            wait = self.lane.expected_wait(place)
        about = f", about {wait:.0f} s" if wait is not None else ""
        return (f"Waiting for a free {self.lane.name} slot: you are number {place} in line"
                f"{about}.")

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        with self.lane.cond:
            self.lane.line.remove(self)
            if self.started is not None:
                self.lane.recent = (self.lane.recent + [time.monotonic() - self.started])[-20:]
            self.lane.cond.notify_all()


def time_left(elapsed: float, fraction: float, done: bool) -> str:
    """", about 12 s left" once a run is far enough along to say; ", in 20 s" when done."""
    if done:
        return f", in {elapsed:.0f} s"
    if elapsed < 2 or fraction < 0.05:
        return ""
    return f", about {elapsed * (1 - fraction) / fraction:.0f} s left"


def timed(chunks: Iterator[T]) -> Iterator[tuple[T, float]]:
    """Each item of ``chunks`` with the seconds spent making the items so far: the producer's
    time, not the consumer's between items (streaming, drawing)."""
    busy = 0.0
    while True:
        start = time.perf_counter()
        item = next(chunks, None)
        busy += time.perf_counter() - start
        if item is None:
            return
        yield item, busy


def visitor_of(request: gr.Request | None) -> str | None:
    """Who sent a request (one browser tab or one ``gradio_client``), for per-visitor limits."""
    return getattr(request, "session_hash", None) if request is not None else None


def streamed(start: Callable[[Callable[[], bool]], Iterator[Any]], notes: list[str],
             progress: gr.Progress, lane: Lane | None = None,
             visitor: str | None = None) -> Iterator[tuple[Any, str]]:
    """Run a pipeline's ``stream`` under the request's deadline: yields (update, status line),
    starting with (None, "Starting..."); a ValueError from the pipeline becomes a gr.Error.
    With a ``lane``, waits for a slot first (yielding (None, its place in line)).

    ``start(should_stop)`` starts the stream; updates have ``fraction``, ``message``, ``done``.
    """
    prefix = ("; ".join(notes) + ". ") if notes else ""
    with (lane.ticket(visitor) if lane is not None else contextlib.nullcontext()) as ticket:
        if ticket is not None:
            while not ticket.admitted(timeout=1.0):
                yield None, prefix + ticket.message()
        deadline = Deadline()
        began = time.monotonic()
        yield None, prefix + "Starting..."
        try:
            for update in start(deadline.passed):
                progress(update.fraction, desc=update.message)
                status = prefix + ("Done: " if update.done else "") + update.message
                status += time_left(time.monotonic() - began, update.fraction, update.done)
                if deadline.passed():
                    status += f" - stopped at the {deadline.seconds:.0f} s limit"
                yield update, status
        except ValueError as exc:
            raise gr.Error(str(exc))


def run_controls(action: str, prefix: str) -> tuple[gr.Button, gr.Button, gr.Markdown]:
    """The Run and Stop buttons and the status line of a streaming tab."""
    with gr.Row():
        run = gr.Button(action, variant="primary", elem_id=f"{prefix}-run")
        stop = gr.Button("Stop", variant="stop")
    status = gr.Markdown("", elem_id=f"{prefix}-status", label="status")
    return run, stop, status


def write_pictures_once() -> None:
    """Gradio saves every output picture to a file named by its content's hash and rewrites the
    file whenever the same picture comes again (a paused game, an unchanged chart); a browser
    fetching it meanwhile gets a short body (ERR_CONTENT_LENGTH_MISMATCH, a broken picture).
    Write each file once, atomically, and do not encode a picture sent recently again (the same
    window or gallery for thirty visitors). Idempotent."""
    from gradio import processing_utils as pu

    if getattr(pu.save_pil_to_cache, "written_once", False):
        return

    encoded: OrderedDict[tuple, str] = OrderedDict()    # picture -> its file, recent first
    lock = threading.Lock()

    def save_pil_to_cache(img, cache_dir, name: str = "image", format: str = "webp") -> str:
        # the same picture again (a shared result, thirty visitors' same window) is not
        # encoded again: hashing the pixels costs a millisecond, a PNG of 840 px tens of them
        key = (hashlib.blake2b(img.tobytes(), digest_size=16).digest(), img.mode, img.size,
               format, name, str(cache_dir))
        with lock:
            known = encoded.get(key)
            if known is not None and os.path.exists(known):
                encoded.move_to_end(key)
                return known
        data = pu.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / pu.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        with lock:
            encoded[key] = str(path)
            while len(encoded) > 256:
                encoded.popitem(last=False)
        return str(path)

    save_pil_to_cache.written_once = True
    pu.save_pil_to_cache = save_pil_to_cache


# style transfer and DeepDream: one runs at a time (each uses every core), one open per visitor
HEAVY_LANE = Lane("image-optimisation", slots=1, per_visitor=1)
