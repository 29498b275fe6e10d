"""Device, seeds and the optional ZeroGPU decorator, shared by every technique."""
from __future__ import annotations

import ctypes
import functools
import os
import sys

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
    """Make glibc keep freed memory for the next allocation instead of returning it to the OS.

    By default glibc serves large blocks with a fresh mmap (its threshold adapts, up to 32 MB)
    and returns the heap's free top to the OS once it exceeds twice that threshold; a pipeline
    that allocates and frees the same activations on every step then pays the kernel for
    zeroed pages every time. Style transfer at 384 px took 26,000 page faults and 38 ms of
    system time per L-BFGS evaluation (0.208 -> 0.173 s with this on; 512 px: 63,000 faults,
    0.388 -> 0.320 s). This fixes the mmap threshold at its maximum (32 MB) and lets the heap
    keep up to 2 GB free at its top. Blocks over 32 MB (1,024 px stages) are still mapped and
    returned, so the process keeps little more than its working set: nine style runs at
    300-1,024 px peaked at 2.67 GB against 2.43 GB without (turning mmap off altogether was
    5% faster at 1,024 px but peaked at 3.58 GB and kept it). The same idea as the
    jemalloc/tcmalloc preload that PyTorch's CPU tuning guides recommend, without a system
    library. Process-wide and idempotent; returns whether it took effect (glibc only).
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
