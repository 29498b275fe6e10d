"""Latent grid explorer: a 30 x 30 grid is one batched decode (goal: well under a second)."""
from __future__ import annotations

from benchmarks import Row, best_of, row
from models.hub import from_pretrained
from models.images import grid
from models.vae import ConvVAE, decode_points, for_serving, grid_points


def run() -> list[Row]:
    rows = []
    for name in ("vae-mnist", "vae-fashion"):
        model = for_serving(from_pretrained(ConvVAE, name))  # as the tab loads it
        points = grid_points((0.0, 0.0), 3.3, 30)
        batched = best_of(lambda: grid(decode_points(model, points, fast=True), 30))
        full = best_of(lambda: grid(decode_points(model, points), 30))
        one_by_one = best_of(lambda: [decode_points(model, p[None]) for p in points], repeats=1,
                             warmup=False)
        rows.append(row("vae", f"{name}: 30x30 grid, one batched decode + mosaic",
                     f"{batched * 1000:.0f} ms", f"as the tab runs it (bf16 where native); fp32 "
                     f"{full * 1000:.0f} ms; 900 separate fp32 decodes: {one_by_one * 1000:.0f} ms"))
    return rows
