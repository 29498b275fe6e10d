"""Text sampling: characters per second with the key/value cache, against recomputing the whole
context for every new character (nanoGPT's ``generate``, the Keras example); time to the first
character.  Goal: at least 5x at 512 generated characters, first character under 0.3 s."""
from __future__ import annotations

import threading
import time

import torch

from benchmarks import Row, row
from models.charlm import CharGPT, CharSampler
from models.hub import WEIGHTS_DIR, from_pretrained

LENGTH = 512
PROMPTS = {"charlm-shakespeare": "ROMEO:\n", "charlm-imdb": "This movie"}


def timed(sampler: CharSampler, ids, temps, use_cache=True) -> tuple[float, float]:
    """(seconds for LENGTH characters per row, seconds to the first character)."""
    gen = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    first = None
    for step in sampler.stream(ids, LENGTH, temps, generator=gen, use_cache=use_cache):
        if first is None:
            first = time.perf_counter() - t
    return time.perf_counter() - t, first


def run() -> list[Row]:
    rows = []
    for folder, prompt in PROMPTS.items():
        if not (WEIGHTS_DIR / folder / "config.json").is_file():
            continue
        t = time.perf_counter()
        sampler = CharSampler(from_pretrained(CharGPT, folder))
        load = time.perf_counter() - t
        ids, _ = sampler.encode(prompt)
        timed(sampler, ids, [0.7])  # warm-up
        cached, first = min(timed(sampler, ids, [0.7]) for _ in range(3))
        naive, naive_first = timed(sampler, ids, [0.7], use_cache=False)
        five, _ = min(timed(sampler, ids, [0.2, 0.5, 0.7, 1.0, 1.5]) for _ in range(2))
        five_naive, _ = timed(sampler, ids, [0.2, 0.5, 0.7, 1.0, 1.5], use_cache=False)
        block = sampler.config.block_size
        rows += [
            row("charlm", f"{folder}: one stream, {LENGTH} chars, KV cache",
             f"{LENGTH / cached:.0f} chars/s",
             f"recomputing the context (up to {block} chars) per step: {LENGTH / naive:.0f} "
             f"chars/s; **{naive / cached:.1f}x** faster (goal 5x)"),
            row("charlm", f"{folder}: five temperatures batched, {LENGTH} chars each",
             f"{5 * LENGTH / five:.0f} chars/s",
             f"{five:.2f} s for all five; recomputing: {five_naive:.2f} s "
             f"({five_naive / five:.1f}x)"),
            row("charlm", f"{folder}: time to the first character", f"{first * 1000:.0f} ms",
             f"model load (first use) {load * 1000:.0f} ms; goal under 300 ms"),
            classroom(sampler, ids, folder),
        ]
    return rows


def classroom(sampler: CharSampler, ids, folder: str, visitors: int = 32, length: int = 400) -> Row:
    """Thirty-two visitors' texts (own seeds) through the app's shared batch, all at once,
    against the same requests one after another: characters per CPU-second of this process."""
    batcher = sampler.batched()

    def visit(seed: int) -> None:
        for _ in batcher.stream(ids, length, [0.7], generator=torch.Generator().manual_seed(seed)):
            pass

    visit(0)                                            # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    for seed in range(visitors):
        visit(seed)
    alone_cpu, alone_wall = time.process_time() - cpu, time.perf_counter() - wall
    threads = [threading.Thread(target=visit, args=(seed,)) for seed in range(visitors)]
    cpu, wall = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together_cpu, together_wall = time.process_time() - cpu, time.perf_counter() - wall
    chars = visitors * length
    return row("charlm", f"{folder}: {visitors} visitors at once, {length} chars each, shared batch",
               f"{chars / together_cpu:.0f} chars/CPU-s",
               f"one after another: {chars / alone_cpu:.0f} chars/CPU-s; **{alone_cpu / together_cpu:.1f}x** "
               f"per CPU-second (goal 4x); wall {together_wall:.1f} s against {alone_wall:.1f} s")
