"""Device, seeds and the optional ZeroGPU decorator, shared by every technique."""
from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import torch

MAX_SEED = 2**31 - 1


@functools.cache
def device() -> torch.device:
    """CUDA when present (Spaces GPUs), else CPU; ``GDL_DEVICE`` overrides."""
    wanted = os.environ.get("GDL_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def bf16_cpu() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN; e.g. AVX512-BF16, AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fast_bf16(on: torch.device | str) -> bool:
    """Whether bfloat16 convolutions are a speed-up here: CUDA with bf16, or a CPU that does them
    natively (elsewhere they are emulated, and slower than fp32)."""
    on = torch.device(on)
    if on.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return on.type == "cpu" and bf16_cpu()


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for the next allocation instead of returning it to the OS:
    a pipeline that allocates and frees the same large activations every step otherwise pays
    the kernel for zeroed pages every time (docs/style.md has the measurements). Fixes the mmap
    threshold at 32 MB and lets the heap keep up to 2 GB free at its top. Process-wide and
    idempotent; returns whether it took effect (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return (bool(mallopt(m_mmap_threshold, 32 * 2**20))
            and bool(mallopt(m_trim_threshold, 2**31 - 1)))


PRECISIONS = ("auto", "bf16", "fp32")


def check_precision(precision: str) -> None:
    """Refuse anything but "bf16", "fp32" or "auto" (see :func:`use_bf16`)."""
    if precision not in PRECISIONS:
        raise ValueError("precision is auto, bf16 or fp32")


def use_bf16(precision: str, on: torch.device | str) -> bool:
    """Whether a precision setting means bfloat16 convolutions on this device: "bf16" always,
    "auto" where the hardware does them natively (:func:`fast_bf16`), "fp32" never."""
    check_precision(precision)
    return precision == "bf16" or (precision == "auto" and fast_bf16(on))


def generator(seed: int, on: torch.device | str | None = None) -> torch.Generator:
    """A per-request generator: every random choice of a request draws from it, never global RNG."""
    gen = torch.Generator(device=on or "cpu")
    gen.manual_seed(int(seed) % (MAX_SEED + 1))
    return gen


def gpu(fn=None, *, duration: int = 60):
    """``spaces.GPU`` when the ``spaces`` package is installed (ZeroGPU Spaces), else a no-op."""
    try:
        import spaces  # type: ignore
    except ImportError:
        spaces = None

    def wrap(f):
        return spaces.GPU(duration=duration)(f) if spaces is not None else f

    return wrap(fn) if fn is not None else wrap


_SINGLE: dict[int, ThreadPoolExecutor] = {}
_SINGLE_LOCK = threading.Lock()


def single_threaded(workers: int) -> ThreadPoolExecutor:
    """Threads whose PyTorch work uses one core each. Small networks (the GAN lab's) gain
    nothing from a second core and lose about 10x when their thread team contends with
    another request's (docs/ganlab.md). PyTorch's intra-op thread count is per thread under
    OpenMP, so each worker sets its own; the default for threads made later is put back."""
    with _SINGLE_LOCK:
        if workers not in _SINGLE:
            before = torch.get_num_threads()
            pool = ThreadPoolExecutor(workers, thread_name_prefix="single-threaded")
            barrier = threading.Barrier(workers)   # one task per thread, all threads made now

            def init() -> int:
                torch.get_num_threads()      # the thread's own setup first (see below)
                torch.set_num_threads(1)
                barrier.wait()
                return torch.get_num_threads()

            assert all(f.result() == 1 for f in [pool.submit(init) for _ in range(workers)])
            torch.set_num_threads(before)
            _SINGLE[workers] = pool
        return _SINGLE[workers]


def start_single_threaded(target: Callable[[], None], name: str, nice: int = 0
                          ) -> threading.Thread:
    """Start a daemon thread whose PyTorch work uses one intra-op thread (see
    :func:`single_threaded`); the default for threads made later is put back. Small ops in a
    thread other than the main one run far slower on two OpenMP threads (docs/charlm.md).
    ``nice`` lowers the thread's own scheduling priority (Linux), for long work that should
    yield the cores to the server's short tasks."""
    before = torch.get_num_threads()
    started = threading.Event()

    def run() -> None:
        torch.get_num_threads()      # PyTorch's per-thread setup first: it would read the default
        torch.set_num_threads(1)     # back (after it is restored below) and undo this
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            except (AttributeError, OSError):
                pass
        started.set()
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    started.wait()
    torch.set_num_threads(before)
    return thread


def shared_result(maxsize: int = 64):
    """Decorator: an LRU cache of a pure function's results whose concurrent calls with the same
    arguments compute once (the others wait for it): thirty visitors pressing the same button
    with the default seed cost one computation, not thirty. Arguments must be hashable."""
    def wrap(fn):
        done: "OrderedDict[tuple, object]" = OrderedDict()
        running: dict[tuple, threading.Event] = {}
        lock = threading.Lock()

        @functools.wraps(fn)
        def call(*args, **kwargs):
            key = (args, tuple(sorted(kwargs.items())))
            while True:
                with lock:
                    if key in done:
                        done.move_to_end(key)
                        return done[key]
                    event = running.get(key)
                    if event is None:
                        event = running[key] = threading.Event()
                        break
                event.wait()      # another caller computes it; read it (or compute on its error)
            try:
                value = fn(*args, **kwargs)
                with lock:
                    done[key] = value
                    while len(done) > maxsize:
                        done.popitem(last=False)
                return value
            finally:
                with lock:
                    running.pop(key, None)
                event.set()

        call.cache_clear = lambda: done.clear()
        return call
    return wrap


class _Call:
    __slots__ = ("args", "woken", "lead", "done", "value", "error")

    def __init__(self, args: tuple):
        self.args, self.woken, self.lead, self.done = args, threading.Event(), False, False
        self.value = self.error = None


class Gathered:
    """Concurrent calls of ``one(*args)`` served by calls of ``many([args, ...])`` (same results,
    in order): a caller that finds the function idle runs at once with what is waiting; calls
    that arrive meanwhile wait and go together in the next batch, led by the first of them. No
    delay when alone; under a classroom, one batched forward instead of one per visitor."""

    def __init__(self, many: Callable[[list[tuple]], list], max_items: int = 16):
        self.many, self.max_items = many, max_items
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._busy = False

    def __call__(self, *args):
        call = _Call(args)
        with self._lock:
            self._waiting.append(call)
            call.lead = not self._busy
            self._busy = True
        if not call.lead:
            call.woken.wait()           # our result, or our turn to lead the next batch
        if not call.done:
            self._run_batch(call)
        if call.error is not None:
            raise call.error
        return call.value

    def _run_batch(self, leader: _Call) -> None:
        with self._lock:
            batch = [leader] + [c for c in self._waiting if c is not leader][:self.max_items - 1]
            self._waiting = [c for c in self._waiting if c not in batch]
        try:
            values = self.many([c.args for c in batch])
            if len(values) != len(batch):
                raise RuntimeError(f"{len(values)} results for {len(batch)} calls")
            for c, v in zip(batch, values):
                c.value = v
        except BaseException as exc:    # every caller of the batch sees it; the next goes on
            for c in batch:
                c.error = exc
        with self._lock:
            for c in batch:
                c.done = True
            following = self._waiting[0] if self._waiting else None
            if following is None:
                self._busy = False
            else:
                following.lead = True
        for c in batch:
            if c is not leader:
                c.woken.set()
        if following is not None:
            following.woken.set()


def handed_over(items: Iterable) -> Iterator:
    """The items a worker thread hands a request, up to its end mark (None); an exception it
    hands over is raised in the request's thread."""
    for item in items:
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
