"""DeepDream: gradient ascent on Inception-v3 activations over an octave pyramid.

The chapter's algorithm (Keras example: layers mixed4..mixed7 weighted 1/1.5/2/2.5, three
octaves at scale 1.4, 20 steps per octave of size 20 on L2-normalised gradients, stop at loss
15), improved with the original Caffe notebook and the TensorFlow tutorial:

* the loss is the weighted mean of squared activations, borders excluded (as the chapter);
* every step rolls the image by a random jitter so no pixel grid is favoured (Caffe, TF);
* large images are processed in tiles whose grid is shifted at random every step, so 1,024 px
  and more fit in memory and the seams never sit still (TF tutorial);
* the detail lost by downscaling is put back before each octave (Caffe notebook);
* the network only runs as deep as the deepest chosen layer, with channels-last convolutions,
  in bfloat16 where the hardware does them natively (the loss in fp32).

Step size keeps the chapter's unit, an L2 step on the image in Inception's [-1, 1] range, but is
defined at Inception's native 299x299 so that it means the same per pixel at every size
(the chapter's plain L2 step would shrink per pixel as the image grows).

``DeepDreamPipeline.stream`` yields ``DreamUpdate``s as it works; ``__call__`` returns the result;
``zoom_stream`` feeds the dream back with a small zoom, frame by frame, for an animation.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import INCEPTION_LAYERS, InceptionV3, load_inception_v3
from .runtime import check_precision, device, reuse_freed_memory, use_bf16

NATIVE_ELEMENTS = 3 * 299 * 299
MIN_SIDE = 80  # Inception-v3 needs at least 75 px; a little margin for the border crop

PRESETS: dict[str, dict[str, float]] = {
    "Chapter (mixed4-7)": {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5},
    "Eyes and dogs": {"mixed7": 1.0, "mixed8": 1.5, "mixed9": 1.0},
    "Textures": {"mixed0": 1.0, "mixed1": 1.0, "mixed2": 0.5},
    "Swirls": {"mixed2": 1.0, "mixed3": 2.0},
    "Pagodas and arches": {"mixed5": 1.0, "mixed6": 1.0},
}
DEFAULT_PRESET = "Chapter (mixed4-7)"


@dataclass
class DreamSettings:
    layers: dict[str, float] = field(default_factory=lambda: dict(PRESETS[DEFAULT_PRESET]))
    octaves: int = 3
    octave_scale: float = 1.4
    steps: int = 20
    step_size: float = 20.0
    max_loss: float = 15.0          # inf = never stop early
    jitter: int = 32                # random roll per step, pixels
    tile_size: int = 512            # gradients are computed on tiles no larger than this
    border: int = 2                 # activation border left out of the loss (chapter)
    channel: int | None = None      # dream one channel of the (single) chosen layer
    precision: str = "auto"         # the network's convolutions: "bf16", "fp32", or "auto" = bf16
                                    # where the hardware does it natively (the loss: fp32)

    def validate(self) -> None:
        if not self.layers:
            raise ValueError("choose at least one layer")
        unknown = [name for name in self.layers if name not in INCEPTION_LAYERS[:-1]]
        if unknown:
            raise ValueError(f"unknown layers {unknown}; choose from {INCEPTION_LAYERS[:-1]}")
        numbers = [self.octave_scale, self.step_size, *self.layers.values()]
        if any(not math.isfinite(v) for v in numbers) or math.isnan(self.max_loss):
            raise ValueError("settings must be finite numbers (max loss may be infinite)")
        if all(w == 0 for w in self.layers.values()):
            raise ValueError("at least one layer needs a non-zero weight")
        if self.octaves < 1 or self.steps < 1:
            raise ValueError("octaves and steps must be at least 1")
        if not 1.0 < self.octave_scale <= 4.0:
            raise ValueError("octave scale must be above 1 and at most 4")
        if self.step_size <= 0:
            raise ValueError("step size must be positive")
        if self.jitter < 0 or self.tile_size < 2 * MIN_SIDE:
            raise ValueError(f"jitter must be >= 0 and tile size >= {2 * MIN_SIDE}")
        if self.channel is not None and len(self.layers) != 1:
            raise ValueError("channel dreaming works on exactly one layer")
        check_precision(self.precision)


@dataclass
class DreamUpdate:
    image: np.ndarray               # HxWx3 uint8, at the current octave's size
    octave: int                     # 1-based
    octaves: int
    step: int                       # steps done in this octave
    steps: int
    loss: float
    done: bool = False
    note: str = ""
    unit: str = "octave"            # or "frame" for the zoom animation

    @property
    def fraction(self) -> float:
        return ((self.octave - 1) * self.steps + self.step) / (self.octaves * self.steps)

    @property
    def message(self) -> str:
        text = (f"{self.unit} {self.octave}/{self.octaves}, step {self.step}/{self.steps}, "
                f"loss {self.loss:.2f}")
        return text + (f" ({self.note})" if self.note else "")


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Smallest first; the last is the original size (as the chapter's ``calc_octave_HxW``)."""
    return [(int(round(height / scale**e)), int(round(width / scale**e)))
            for e in range(octaves - 1, -1, -1)]


def max_octaves(height: int, width: int, scale: float) -> int:
    """How many octaves fit before the smallest side drops under Inception's minimum."""
    return max(1, int(math.floor(math.log(min(height, width) / MIN_SIDE) / math.log(scale))) + 1)


def tile_bounds(length: int, tile: int, offset: int = 0) -> list[tuple[int, int]]:
    """Split ``length`` into near-equal pieces of at most ``tile`` (never a thin sliver)."""
    count = max(1, math.ceil(length / tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img[0].clamp(0, 1).permute(1, 2, 0).mul(255).round().byte().cpu().numpy())


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.array(image, dtype=np.uint8)).to(device).permute(2, 0, 1)[None].float() / 255.0


class DeepDreamPipeline:
    def __init__(self, model: InceptionV3):
        # channels-last convolutions are ~1.3x faster on CPU (oneDNN) and on recent GPUs
        self.model = model.to(memory_format=torch.channels_last)
        self.device = next(model.parameters()).device
        self._probe: dict[tuple[bool, int], float] = {}
        reuse_freed_memory()  # objective + gradient at 512 px: 0.132 -> 0.125 s (no page faults)

    @classmethod
    def from_pretrained(cls, progress: Callable[[float, str], None] | None = None) -> "DeepDreamPipeline":
        """Inception-v3 (``models.backbones``), up to its last dreamable block."""
        return cls(load_inception_v3(INCEPTION_LAYERS[-2], progress=progress, device=device()))

    # -- objective ----------------------------------------------------------------------------
    def low_precision(self, s: DreamSettings) -> bool:
        return use_bf16(s.precision, self.device)

    def objective(self, img01: torch.Tensor, s: DreamSettings) -> torch.Tensor:
        # bf16 convolutions nearly halve a step on a CPU with bf16 units (512 px: 0.31 -> 0.18 s);
        # the activations are squared and averaged in fp32
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.low_precision(s)):
            acts = self.model(img01.contiguous(memory_format=torch.channels_last), list(s.layers))
        loss = img01.new_zeros(())
        for name, weight in s.layers.items():
            a = acts[name].float()
            b = s.border if min(a.shape[-2:]) > 2 * s.border + 1 else 0
            if b:
                a = a[..., b:-b, b:-b]
            if s.channel is not None:
                loss = loss + weight * a[:, s.channel].mean()
            else:
                loss = loss + weight * a.pow(2).mean()
        return loss

    def gradient(self, img01: torch.Tensor, s: DreamSettings, shift: tuple[int, int] = (0, 0)
                 ) -> tuple[torch.Tensor, float]:
        """Gradient of the objective, computed tile by tile on the image rolled by ``shift``."""
        sy, sx = shift
        rolled = img01.roll((sy, sx), (2, 3)) if (sy or sx) else img01
        h, w = rolled.shape[-2:]
        grad = torch.zeros_like(rolled)
        total = 0.0
        for y0, y1 in tile_bounds(h, s.tile_size):
            for x0, x1 in tile_bounds(w, s.tile_size):
                tile = rolled[..., y0:y1, x0:x1].detach().requires_grad_(True)
                loss = self.objective(tile, s)
                (g,) = torch.autograd.grad(loss, tile)
                grad[..., y0:y1, x0:x1] = g
                total += loss.item() * (y1 - y0) * (x1 - x0) / (h * w)
        if sy or sx:
            grad = grad.roll((-sy, -sx), (2, 3))
        return grad, total

    def _shift(self, shape, s: DreamSettings, gen: torch.Generator) -> tuple[int, int]:
        h, w = shape[-2:]
        out = []
        for length in (h, w):
            amount = 0
            if s.jitter:
                amount += int(torch.randint(-s.jitter, s.jitter + 1, (1,), generator=gen))
            if length > s.tile_size:  # move the tile grid too, so seams never stay put
                amount += int(torch.randint(0, s.tile_size, (1,), generator=gen))
            out.append(amount % length)
        return out[0], out[1]

    def step(self, img01: torch.Tensor, s: DreamSettings, gen: torch.Generator
             ) -> tuple[torch.Tensor, float]:
        grad, loss = self.gradient(img01, s, self._shift(img01.shape, s, gen))
        # chapter: step * g / ||g||_2 on the [-1, 1] image; here scaled to mean the same per
        # pixel at any size (defined at 299x299); [-1, 1] is 255/128 times the [0, 1] range
        scale = s.step_size * math.sqrt(grad.numel() / NATIVE_ELEMENTS) * (128.0 / 255.0)
        img01 = (img01 + grad * (scale / (grad.norm() + 1e-12))).clamp_(0.0, 1.0)
        return img01, loss

    # -- time ---------------------------------------------------------------------------------
    def seconds_per_pixel(self, s: DreamSettings) -> float:
        """One step (forward and backward to the image) per pixel on this machine, for these
        layers at this precision: measured once on a 299 x 299 picture."""
        key = (self.low_precision(s), max(INCEPTION_LAYERS.index(n) for n in s.layers))
        if key not in self._probe:
            picture = torch.rand((1, 3, 299, 299), generator=torch.Generator().manual_seed(0))
            self.gradient(picture, s)                     # warm-up: allocations, oneDNN plans
            start = time.perf_counter()
            for _ in range(2):
                self.gradient(picture, s)
            self._probe[key] = (time.perf_counter() - start) / 2 / 299**2
        return self._probe[key]

    def estimate(self, shape: tuple[int, int], s: DreamSettings) -> float:
        """Seconds the settings should take here on a picture of ``shape`` (h, w): every
        octave's steps at its size, plus 10% and half a second for the rest (docs/deepdream.md)."""
        h, w = shape
        sizes = octave_sizes(h, w, min(s.octaves, max_octaves(h, w, s.octave_scale)), s.octave_scale)
        per_pixel = self.seconds_per_pixel(s)
        return 1.1 * sum(s.steps * per_pixel * a * b for a, b in sizes) + 0.5

    def within(self, shape: tuple[int, int], s: DreamSettings, seconds: float
               ) -> tuple[int, DreamSettings]:
        """A longest side and settings that finish in about ``seconds`` here: the picture comes
        down first (to 256 px), then the steps (to 8); unchanged if they fit already."""
        h, w = shape
        longest = max(h, w)
        scaled = lambda side: (max(1, round(h * side / longest)), max(1, round(w * side / longest)))
        side = longest
        while self.estimate(scaled(side), s) > seconds and side > 256:
            side = max(256, side - 32)
        while self.estimate(scaled(side), s) > seconds and s.steps > 8:
            s = dataclasses.replace(s, steps=max(8, int(s.steps * 0.9)))
        return side, s

    # -- the octave loop ------------------------------------------------------------------------
    def stream(self, image: np.ndarray, settings: DreamSettings | None = None, *,
               generator: torch.Generator | None = None, preview_every: int = 5,
               should_stop: Callable[[], bool] | None = None) -> Iterator[DreamUpdate]:
        s = settings or DreamSettings()
        s.validate()
        gen = generator or torch.Generator().manual_seed(0)
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"the image is {w}x{h}; DeepDream needs at least {MIN_SIDE} px a side")
        limit = max_octaves(h, w, s.octave_scale)
        note = ""
        octaves = s.octaves
        if octaves > limit:
            note = f"{octaves} octaves would shrink the image below {MIN_SIDE} px; using {limit}"
            octaves = limit
        sizes = octave_sizes(h, w, octaves, s.octave_scale)
        original = to_tensor(image, self.device)
        bases = [resize(original, size) for size in sizes]
        detail = torch.zeros_like(bases[0])
        img = bases[0]
        loss = float("nan")
        for k, (size, base) in enumerate(zip(sizes, bases), start=1):
            img = (base + resize(detail, size)).clamp(0, 1)
            for i in range(1, s.steps + 1):
                img, loss = self.step(img, s, gen)
                stop = loss > s.max_loss or (should_stop is not None and should_stop())
                if stop or i % preview_every == 0 or i == s.steps:
                    yield DreamUpdate(to_uint8(img), k, octaves, i, s.steps, loss, note=note)
                if should_stop is not None and should_stop():
                    return
                if loss > s.max_loss:
                    break
            detail = img - base
        yield DreamUpdate(to_uint8(img), octaves, octaves, s.steps, s.steps, loss, done=True,
                          note=note)

    def __call__(self, image: np.ndarray, settings: DreamSettings | None = None, *,
                 generator: torch.Generator | None = None,
                 callback: Callable[[DreamUpdate], None] | None = None) -> DreamUpdate:
        last = None
        for update in self.stream(image, settings, generator=generator):
            if callback is not None:
                callback(update)
            last = update
        assert last is not None
        return last


def zoom_in(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Crop the centre 1/factor of the image and scale it back to full size."""
    h, w = img.shape[-2:]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    return resize(img[..., top:top + ch, left:left + cw], (h, w))


def zoom_stream(pipe: DeepDreamPipeline, image: np.ndarray, settings: DreamSettings, frames: int,
                factor: float, *, generator: torch.Generator | None = None,
                should_stop: Callable[[], bool] | None = None) -> Iterator[DreamUpdate]:
    """The feedback 'zoom' of the original DeepDream videos: dream a few steps at one scale,
    zoom in a little, dream again on the result; one update per frame."""
    s = dataclasses.replace(settings, octaves=1)
    s.validate()
    if frames < 1 or not 1.0 < factor <= 2.0:
        raise ValueError("frames must be at least 1 and the zoom between 1 and 2")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"the image needs at least {MIN_SIDE} px a side")
    gen = generator or torch.Generator().manual_seed(0)
    img = to_tensor(image, pipe.device)
    for frame in range(1, frames + 1):
        loss = float("nan")
        for _ in range(s.steps):
            img, loss = pipe.step(img, s, gen)
        yield DreamUpdate(to_uint8(img), frame, frames, s.steps, s.steps, loss,
                          done=frame == frames, unit="frame")
        if should_stop is not None and should_stop():
            return
        img = zoom_in(img, factor)
