"""Style transfer speed and quality against the plain reference algorithm.

The reference is the PyTorch tutorial's procedure: one scale, VGG19's whole feature stack run
forward every evaluation in fp32, L-BFGS (torch defaults) until 300 objective evaluations, pixels
clamped in the closure, with exactly our loss, so the two final losses compare. Ours is the
tab's pipeline (``models/style.py``) from the content recoloured to the style's palette. Both are
judged on the image they deliver (8-bit, as the tab shows it) by the reference's own fp32 loss;
our checks (once our own loss is within 1% of the target) are not counted in our time. Measured
on the tab's four examples; the median speed-up is the figure. What was tried: docs/style.md.
"""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.backbones import load_vgg19
from models.style import (StylePipeline, StyleSettings, fit, gram, resize, schedule, to_tensor,
                          to_uint8, tv_loss)
from benchmarks import Row, row
from tabs.style import EXAMPLES

# the speed-up is measured on the tab's four examples: one pair's figure is noisy, as L-BFGS runs
# that differ only in rounding drift apart late in the run; the first pair (Grace Hopper + ihc)
# also gives the per-evaluation and default-settings rows
PAIRS = [(Path(c), Path(s)) for c, s in EXAMPLES]
CONTENT, STYLE = PAIRS[0]


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def reference_objective(vgg_full, content: np.ndarray, style: np.ndarray, s: StyleSettings):
    """The tutorial's loss modules with our loss definition, on the full VGG19 stack in fp32:
    (clamped content tensor at the output size, image -> loss)."""
    size = fit(content.shape[:2], s.size)
    c = resize(to_tensor(content, "cpu"), size)
    st = resize(to_tensor(style, "cpu"), fit(style.shape[:2], s.size))
    layers = list(dict.fromkeys([*s.style_layers, s.content_layer, "relu5_4"]))  # full stack
    with torch.no_grad():
        target_c = vgg_full(c, layers)[s.content_layer]
        feats = vgg_full(st, layers)
        target_g = {n: gram(feats[n]) for n in s.style_layers}

    def loss_of(img):
        out = vgg_full(img, layers)
        content_loss = F.mse_loss(out[s.content_layer], target_c) / (target_c.pow(2).mean() + 1e-8)
        style_loss = sum(F.mse_loss(gram(out[n]), target_g[n]) / (len(s.style_layers) *
                         (target_g[n].pow(2).mean() + 1e-8)) for n in s.style_layers)
        return s.content_weight * content_loss + s.style_weight * style_loss + s.tv_weight * tv_loss(img)

    return c, loss_of


def reference(c: torch.Tensor, loss_of, evals=300):
    """The tutorial's loop from the content image ``c``; returns (final loss, seconds, final image)."""
    img = c.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([img])
    history = []

    def closure():
        with torch.no_grad():
            img.clamp_(0, 1)
        opt.zero_grad()
        loss = loss_of(img)
        loss.backward()
        history.append(loss.item())
        return loss

    t = time.perf_counter()
    while len(history) < evals:
        opt.step(closure)
    seconds = time.perf_counter() - t
    with torch.no_grad():
        img.clamp_(0, 1)
    return history[-1], seconds, img.detach()


def ours_until(pipe, content, style, s: StyleSettings, target: float, loss_of):
    """Seconds (not counting the checks) until the delivered image's reference loss is at or
    below ``target``; (seconds or None, evaluations, last checked loss, seconds spent)."""
    spent, checked, evals = 0.0, None, 0
    t = time.perf_counter()
    for update in pipe.stream(content, [style], s, every=1):
        spent += time.perf_counter() - t
        evals = len(update.losses)
        if update.loss > 1.01 * target and not update.done:  # the 8-bit image is no better
            t = time.perf_counter()
            continue
        with torch.no_grad():
            checked = loss_of(to_tensor(update.image, "cpu")).item()
        if checked <= target:
            return spent, evals, checked, spent
        t = time.perf_counter()
    return None, evals, checked, spent


def against_reference(pipe, vgg_full, content, style, name: str):
    """The reference and ours on one pair at 384 px: (table rows, speed-up or 0 if not reached)."""
    start, loss_of = reference_objective(vgg_full, content, style, StyleSettings(size=384))
    ref_final, ref_s, ref_img = reference(start, loss_of)
    with torch.no_grad():  # both sides are judged on the 8-bit image they deliver
        ref_loss = loss_of(to_tensor(to_uint8(ref_img), "cpu")).item()
    rows = [row("style", f"reference at 384 px, {name} (tutorial: 1 scale, full VGG19, L-BFGS 300)",
             f"{ref_s:.0f} s", f"final loss {ref_final:.4f}; of its 8-bit image {ref_loss:.4f}")]
    ours = StyleSettings(size=384, steps=600, coarse_to_fine=False)
    reached, evals, checked, spent = ours_until(pipe, content, style, ours, ref_loss, loss_of)
    if reached:
        rows.append(row("style", f"ours at 384 px, {name}: time to the reference's final loss",
                     f"{reached:.0f} s", f"{ref_s / reached:.2f}x faster; "
                     f"{evals} evaluations, delivered image's loss {checked:.4f}"))
        return rows, ref_s / reached
    rows.append(row("style", f"ours at 384 px, {name}: reference loss NOT reached", f"{spent:.0f} s",
                 f"after {evals} evaluations: {checked:.4f} vs {ref_loss:.4f}"))
    return rows, 0.0


def per_eval(pipe, content, style, side, precision, evals=10) -> float:
    """Seconds per objective evaluation (forward + backward + L-BFGS bookkeeping): the difference
    of a run of 2 * ``evals`` and one of ``evals``, so the targets computed once per run and the
    pipeline's setup are not counted."""
    s = dict(size=side, coarse_to_fine=False, precision=precision)
    pipe(content, [style], StyleSettings(steps=2, **s))  # warm-up
    seconds = []
    for n in (evals, 2 * evals):
        t = time.perf_counter()
        pipe(content, [style], StyleSettings(steps=n, **s))
        seconds.append(time.perf_counter() - t)
    return (seconds[1] - seconds[0]) / evals


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run() -> list[Row]:
    content, style = load(CONTENT), load(STYLE)
    rows = []
    pipe = StylePipeline(load_vgg19("relu5_2"))
    low = "bf16" if pipe.low_precision(StyleSettings()) else "fp32"
    for side in (256, 384, 512):
        fast = per_eval(pipe, content, style, side, low)
        full = per_eval(pipe, content, style, side, "fp32")
        rows.append(row("style", f"s/iteration at {side} px (one L-BFGS evaluation)", f"{fast:.2f} s",
                     f"{low} channels-last convolutions (fp32: {full:.2f} s); peak RSS so far {peak_mb():.0f} MB"))
    vgg_full = load_vgg19("relu5_4")
    ratios = []
    for content_path, style_path in PAIRS:
        pair_rows, ratio = against_reference(pipe, vgg_full, load(content_path), load(style_path),
                                             f"{Path(content_path).stem} + {Path(style_path).stem}")
        rows += pair_rows
        ratios.append(ratio)
    rows.append(row("style", f"ours at 384 px: median speed-up over the {len(PAIRS)} pairs",
                 f"{statistics.median(ratios):.2f}x", "goal >= 3x; a pair not reached counts as 0"))
    default = StyleSettings()
    t = time.perf_counter()
    first = None
    for update in pipe.stream(content, [style], default, every=5):
        first = first or time.perf_counter() - t
    plan = schedule(default.size, default.steps, default.coarse_to_fine)
    stages = "/".join(str(side) for side, _ in plan) + " px, " + "/".join(str(n) for _, n in plan)
    rows.append(row("style", f"defaults at 512 px (coarse-to-fine {stages} evaluations): first image",
                 f"{first:.1f} s", "goal: within seconds"))
    rows.append(row("style", "defaults at 512 px: total", f"{time.perf_counter() - t:.1f} s",
                 f"goal: under 60 s; peak RSS {peak_mb():.0f} MB"))
    rows += tab_defaults(pipe, content, style)
    return rows


def tab_defaults(pipe, content, style) -> list[Row]:
    """The tab's first click: the defaults fitted to its time budget (tabs/style.py), at this
    CPU's own precision and in fp32, which is what a CPU without native bf16 runs."""
    from tabs.style import BUDGET_SECONDS

    out = []
    for precision in dict.fromkeys(["auto", "fp32"]):
        asked = StyleSettings(precision=precision)
        fitted = pipe.within(content.shape[:2], asked, BUDGET_SECONDS)
        t, first = time.perf_counter(), None
        for _ in pipe.stream(content, [style], fitted, every=5):
            first = first or time.perf_counter() - t
        kind = "bf16" if pipe.low_precision(asked) else "fp32"
        out.append(row("style", f"tab default ({kind}), fitted to {BUDGET_SECONDS} s: first image / total",
                       f"{first:.1f} / {time.perf_counter() - t:.1f} s",
                       f"ran {fitted.size} px, {fitted.steps} iterations (asked 512 px, 100: "
                       f"estimated {pipe.estimate(content.shape[:2], asked):.0f} s; fitted "
                       f"{pipe.estimate(content.shape[:2], fitted):.0f} s)"))
    return out
