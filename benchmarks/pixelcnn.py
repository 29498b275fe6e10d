"""PixelCNN sampling: a batch of 16 images, the fast way the tab runs (only the rows a pixel can
see; for the gated model the vertical stack once per row) against the definition (the whole
network for every pixel). Goal: 16 images in a few seconds."""
from __future__ import annotations

import time

import torch

from benchmarks import Row, row
from models.hub import WEIGHTS_DIR
from models.pixelcnn import PixelCNNPipeline, sample_rows

FOLDERS = ("pixelcnn-gated-mnist", "pixelcnn-plain-mnist", "pixelcnn-gated-fashion",
           "pixelcnn-plain-fashion")
NAIVE_ROWS = 2        # the naive way is timed on two rows and scaled to 28


def seconds(pipe: PixelCNNPipeline, naive: bool, rows: int) -> float:
    x = torch.zeros(16, 28, 28, dtype=torch.long)
    known = torch.zeros_like(x, dtype=torch.bool)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = pipe.label_tensor(0, 16)
    t = time.perf_counter()
    for done, _ in enumerate(sample_rows(pipe.model, x, known, u, 1.0, labels, naive), 1):
        if done == rows:
            break
    return time.perf_counter() - t


def run() -> list[Row]:
    rows = []
    for folder in FOLDERS:
        if not (WEIGHTS_DIR / folder / "config.json").is_file():
            continue
        pipe = PixelCNNPipeline.from_pretrained(folder)
        seconds(pipe, False, 2)                                    # warm-up
        fast = seconds(pipe, False, 28)
        naive = seconds(pipe, True, NAIVE_ROWS) * 28 / NAIVE_ROWS
        rows += [
            row("pixelcnn", f"{folder}: 16 images, as the tab samples", f"{fast:.1f} s",
                f"{16 * 784 / fast:,.0f} pixels/s; goal: a few seconds"),
            row("pixelcnn", f"{folder}: 16 images, the whole network per pixel",
                f"{naive:.0f} s", f"from {NAIVE_ROWS} rows, scaled to 28; fast is "
                f"**{naive / fast:.0f}x** faster"),
        ]
    return rows
