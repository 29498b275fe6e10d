"""Style transfer speed and quality against the plain reference algorithm.

The reference is the PyTorch tutorial's procedure: one scale, VGG19's whole feature stack run
forward every evaluation, L-BFGS (torch defaults) until 300 objective evaluations, pixels clamped
in the closure. It uses exactly our loss (same layers, same normalisation, same weights), so the
two final losses compare. Ours: coarse-to-fine, VGG truncated at the deepest needed layer,
targets computed once per scale. (Measured and left out: channels-last, no gain for VGG on
this CPU; bfloat16 autocast, 1.7x per evaluation but a worse loss per evaluation, no net gain.)
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import matplotlib
import numpy as np
import skimage
import torch
import torch.nn.functional as F
from PIL import Image

from models.backbones import load_vgg19
from models.style import (StylePipeline, StyleSettings, fit, gram, resize, to_tensor,
                          tv_loss)

CONTENT = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
STYLE = Path(skimage.__file__).parent / "data" / "ihc.png"


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def reference(vgg_full, content: np.ndarray, style: np.ndarray, s: StyleSettings, evals=300):
    """The tutorial's loop, with our loss definition; returns (final loss, seconds, history)."""
    size = fit(content.shape[:2], s.size)
    c = resize(to_tensor(content, "cpu"), size)
    st = resize(to_tensor(style, "cpu"), fit(style.shape[:2], s.size))
    layers = list(dict.fromkeys([*s.style_layers, s.content_layer, "relu5_4"]))  # full stack
    with torch.no_grad():
        target_c = vgg_full(c, layers)[s.content_layer]
        feats = vgg_full(st, layers)
        target_g = {n: gram(feats[n]) for n in s.style_layers}
    img = c.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([img])
    history = []

    def closure():
        with torch.no_grad():
            img.clamp_(0, 1)
        opt.zero_grad()
        out = vgg_full(img, layers)
        content_loss = F.mse_loss(out[s.content_layer], target_c) / (target_c.pow(2).mean() + 1e-8)
        style_loss = sum(F.mse_loss(gram(out[n]), target_g[n]) / (len(s.style_layers) *
                         (target_g[n].pow(2).mean() + 1e-8)) for n in s.style_layers)
        loss = s.content_weight * content_loss + s.style_weight * style_loss + s.tv_weight * tv_loss(img)
        loss.backward()
        history.append(loss.item())
        return loss

    t = time.perf_counter()
    while len(history) < evals:
        opt.step(closure)
    seconds = time.perf_counter() - t
    with torch.no_grad():
        img.clamp_(0, 1)
    return history[-1], seconds, history


def ours_until(pipe, content, style, s: StyleSettings, target: float):
    """Seconds until the full-size stage's loss is at or below ``target`` (None if never)."""
    t = time.perf_counter()
    first = reached = None
    last = None
    for update in pipe.stream(content, [style], s, every=1):
        now = time.perf_counter() - t
        first = first or now
        if update.stage == update.stages and update.loss <= target and reached is None:
            reached = now
            break
        last = update
    return reached, first, (last.loss if last else None), time.perf_counter() - t


def per_eval(pipe, content, style, side, evals=10) -> float:
    """Seconds per objective evaluation (forward + backward + L-BFGS bookkeeping)."""
    pipe(content, [style], StyleSettings(size=side, steps=2, coarse_to_fine=False))  # warm-up
    t = time.perf_counter()
    pipe(content, [style], StyleSettings(size=side, steps=evals, coarse_to_fine=False))
    return (time.perf_counter() - t) / evals


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run() -> list[tuple[str, str, str, str]]:
    content, style = load(CONTENT), load(STYLE)
    rows = []
    pipe = StylePipeline(load_vgg19("relu5_2"))
    for side in (256, 384, 512):
        sec = per_eval(pipe, content, style, side)
        rows.append(("style", f"s/iteration at {side} px (one L-BFGS evaluation)", f"{sec:.2f} s",
                     f"peak RSS so far {peak_mb():.0f} MB"))
    # 100 evaluations at 192 px, then up to 300 at 384 px: we stop at the reference's loss
    s = StyleSettings(size=384, stage_steps=(100, 300))
    ref_loss, ref_s, _ = reference(load_vgg19("relu5_4"), content, style,
                                   StyleSettings(size=384))
    rows.append(("style", "reference at 384 px (tutorial: 1 scale, full VGG19, L-BFGS 300)",
                 f"{ref_s:.0f} s", f"final loss {ref_loss:.4f}"))
    reached, first, last_loss, total = ours_until(pipe, content, style, s, ref_loss)
    if reached:
        rows.append(("style", "ours at 384 px: time to the reference's final loss",
                     f"{reached:.0f} s", f"{ref_s / reached:.1f}x faster (goal >= 3x)"))
    else:
        rows.append(("style", "ours at 384 px: reference loss NOT reached", f"{total:.0f} s",
                     f"our final loss {last_loss:.4f} vs {ref_loss:.4f}"))
    default = StyleSettings()
    t = time.perf_counter()
    first = None
    for update in pipe.stream(content, [style], default, every=5):
        first = first or time.perf_counter() - t
    rows.append(("style", "defaults at 512 px (coarse-to-fine 128/256/512 px, 60/30/15 evaluations): first image",
                 f"{first:.1f} s", "goal: within seconds"))
    rows.append(("style", "defaults at 512 px: total", f"{time.perf_counter() - t:.1f} s",
                 f"goal: under 60 s; peak RSS {peak_mb():.0f} MB"))
    return rows
