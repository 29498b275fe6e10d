"""DeepDream speed: truncated vs full network per step, and the default settings end to end."""
from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from models.backbones import load_inception_v3
from models.deepdream import DeepDreamPipeline, DreamSettings, to_tensor
from benchmarks import Row, row


class FullDepth(torch.nn.Module):
    """The same network, forced to run to the last block every step (the naive way)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, layers):
        return self.model(x, list(layers) + ["pool"])


def photo(side: int) -> np.ndarray:
    import skimage.data

    image = Image.fromarray(skimage.data.astronaut())
    return np.asarray(image.resize((side, side), Image.LANCZOS))


def seconds_per_step(pipe, image, settings, steps=4) -> float:
    img = to_tensor(image)
    gen = torch.Generator().manual_seed(0)
    pipe.step(img, settings, gen)  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        img, _ = pipe.step(img, settings, gen)
    return (time.perf_counter() - t) / steps


def end_to_end(pipe, image, settings) -> tuple[float, float]:
    t = time.perf_counter()
    first = None
    for update in pipe.stream(image, settings, generator=torch.Generator().manual_seed(0)):
        first = first or time.perf_counter() - t
    return first, time.perf_counter() - t


def run() -> list[Row]:
    model = load_inception_v3("pool")
    pipe = DeepDreamPipeline(model)
    full = DeepDreamPipeline(FullDepth(model))
    s = DreamSettings()
    img512 = photo(512)
    fast = seconds_per_step(pipe, img512, s)
    fp32 = seconds_per_step(pipe, img512, DreamSettings(precision="fp32"))
    slow = seconds_per_step(full, img512, s)
    first512, total512 = end_to_end(pipe, img512, s)
    first1k, total1k = end_to_end(pipe, photo(1024), s)
    return [
        row("deepdream", "s/step at 512 px, default preset (up to mixed7)", f"{fast:.2f} s",
         f"{'bf16' if pipe.low_precision(s) else 'fp32'} convolutions (fp32: {fp32:.2f} s)"),
        row("deepdream", "s/step at 512 px, full network every step", f"{slow:.2f} s",
         f"truncation speed-up {slow / fast:.2f}x"),
        row("deepdream", "defaults at 512 px (3 octaves x 20 steps): first image", f"{first512:.1f} s",
         "goal: within seconds"),
        row("deepdream", "defaults at 512 px: total", f"{total512:.1f} s", "goal: well under 60 s"),
        row("deepdream", "defaults at 1,024 px (tiled 512): first image / total",
         f"{first1k:.1f} s / {total1k:.1f} s", "4 tiles per step at the last octave"),
    ] + tab_defaults(pipe, img512)


def tab_defaults(pipe, image) -> list[Row]:
    """The tab's first click: the defaults fitted to its time budget (tabs/deepdream.py), at
    this CPU's own precision and in fp32, which is what a CPU without native bf16 runs."""
    from models.deepdream import resize, to_tensor, to_uint8
    from tabs.deepdream import BUDGET_SECONDS

    out = []
    for precision in dict.fromkeys(["auto", "fp32"]):
        asked = DreamSettings(precision=precision)
        side, fitted = pipe.within(image.shape[:2], asked, BUDGET_SECONDS)
        scaled = image
        if side < max(image.shape[:2]):
            h, w = image.shape[:2]
            size = (round(h * side / max(h, w)), round(w * side / max(h, w)))
            scaled = to_uint8(resize(to_tensor(image), size))
        first, total = end_to_end(pipe, scaled, fitted)
        kind = "bf16" if pipe.low_precision(asked) else "fp32"
        out.append(row("deepdream", f"tab default ({kind}), fitted to {BUDGET_SECONDS} s: first image / total",
                       f"{first:.1f} / {total:.1f} s",
                       f"ran {max(scaled.shape[:2])} px, {fitted.steps} steps per octave (estimated "
                       f"{pipe.estimate(image.shape[:2], asked):.0f} s as asked)"))
    return out
