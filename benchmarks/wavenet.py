"""WaveNet generation speed: the compiled fast loop (per-layer buffers, numba) against the two
slower ways to run the same model: naive (a full convolutional forward over the receptive field
for every new sample) and an eager-PyTorch loop over per-layer buffers (r9y9's
``incremental_forward``).  Goal: the shipped models generate faster than real time."""
from __future__ import annotations

import threading
import time

import torch

from benchmarks import Row, row, threads
from models.hub import WEIGHTS_DIR, from_pretrained
from models.wavenet import (FastWaveNet, WaveNet, WaveNetPipeline, WaveRounds,
                            generate_incremental, generate_naive, uniforms)

FOLDERS = ("wavenet-speech",)


def rate(fn, n: int) -> float:
    t = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t)


def shared_rate(model: WaveNet, streams: int, n: int) -> float:
    """Samples per second of ``streams`` generations taking turns in one WaveRounds (one core,
    the classroom's path), from their first to their last sample."""
    rounds, pipe = WaveRounds(), WaveNetPipeline(model)
    fasts = [pipe.primed(None, None) for _ in range(streams)]
    listeners = [threading.Thread(target=lambda i, f: list(rounds.stream(
        f, n, 1.0, uniforms(n, torch.Generator().manual_seed(i)), n)), args=(i, f))
        for i, f in enumerate(fasts)]
    t = time.perf_counter()
    for listener in listeners:
        listener.start()
    for listener in listeners:
        listener.join()
    return streams * n / (time.perf_counter() - t)


def run() -> list[Row]:
    rows = []
    for folder in FOLDERS:
        if not (WEIGHTS_DIR / folder / "config.json").is_file():
            continue
        model = from_pretrained(WaveNet, folder)
        c, sr = model.config, model.config.sample_rate
        gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        fast = FastWaveNet(model)
        fast.generate(1000, generator=gen())                                    # compile, warm
        with threads(1):   # one stream uses one core (a second request gets the other)
            fast_rate = max(rate(lambda n: fast.generate(n, generator=gen()), 48000) for _ in range(3))
            eager = rate(lambda n: generate_incremental(model, n, generator=gen()), 1500)
            naive = rate(lambda n: generate_naive(model, n, generator=gen()), 60)
        rows += [
            row("wavenet", f"{folder}: fast generation (numba, per-layer buffers)",
                f"{fast_rate:,.0f} samples/s",
                f"**{fast_rate / sr:.2f}x real time** at {sr / 1000:g} kHz (goal > 1x); "
                f"1 s of audio in {sr / fast_rate:.2f} s"),
            row("wavenet", f"{folder}: eager PyTorch, per-layer buffers (incremental_forward)",
                f"{eager:,.0f} samples/s",
                f"{eager / sr:.3f}x real time; fast is **{fast_rate / eager:.0f}x** faster"),
            row("wavenet", f"{folder}: naive, full forward over {c.receptive_field} samples each",
                f"{naive:,.1f} samples/s",
                f"1 s of audio in {sr / naive / 60:.0f} min; fast is **{fast_rate / naive:,.0f}x** "
                "faster"),
        ]
        many = {b: shared_rate(model, b, 16000) for b in (1, 8, 32)}   # its own single thread
        rows += [
            row("wavenet", f"{folder}: {b} visitors' streams taking turns on one core",
                f"{many[b]:,.0f} samples/s",
                f"{many[b] / fast_rate:.2f}x one stream alone (the same bits per stream)")
            for b in many]
    return rows
