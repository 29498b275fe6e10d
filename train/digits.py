"""Train the small MNIST / Fashion-MNIST classifier whose features score the studio's digit
generators (a Fréchet distance, classes covered, confidence), and measure it.

    python -m train.digits --dataset mnist --out weights/digit-classifier-mnist
    python -m train.digits --dataset fashion --out weights/digit-classifier-fashion
    python -m train.digits --dataset mnist --tiny --out /tmp/clf    # seconds, for tests
    python -m train.card weights/digit-classifier-mnist

It trains on the official training set with small random shifts, then stores the test set's
feature statistics in the checkpoint (so a server measures samples without the data) and
writes metrics.json: test accuracy, and the real-vs-real floor of every measure (real training
images scored exactly as generated ones are, at the sample sizes the studio uses).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.digits import (ClassifierConfig, DigitClassifier, load_classifier, quality, statistics,
                           to_input)
from models.hub import save_pretrained

from .common import command_line, hardware
from .data import load_digits

FLOOR_SIZES = (1000, 10000)
FLOOR_DRAWS = 5


def shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Each image moved by up to ``pixels`` in x and y (zero padded): generators' digits are
    not always centred like MNIST's."""
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * pixels + 1, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + 28, dx:dx + 28]


def speckle(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Digits with the noise a young generator draws, labels kept: half get Gaussian pixel
    noise (sd up to 0.4), half get up to 8% of their pixels replaced by random values, so
    speckled digits still read as digits (docs/ganlab.md)."""
    n = len(x)
    sd = torch.rand(n, 1, 1, 1, generator=gen) * 0.4 * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    x = x + sd * torch.randn(x.shape, generator=gen)
    share = torch.rand(n, 1, 1, 1, generator=gen) * 0.08 * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    hit = torch.rand(x.shape, generator=gen) < share
    x = torch.where(hit, torch.rand(x.shape, generator=gen) * 2 - 1, x)
    return x.clamp(-1, 1)


def outliers(n: int, gen: torch.Generator) -> torch.Tensor:
    """Images that are not digits (Outlier Exposure, Hendrycks et al. 2019): uniform noise and
    smooth random blobs, trained towards a uniform verdict so the classifier is not sure of
    them (docs/ganlab.md has the versions tried)."""
    k = n // 2
    noise = torch.rand(k, 1, 28, 28, generator=gen) * 2 - 1
    blobs = F.interpolate(torch.randn(n - k, 1, 7, 7, generator=gen), size=28, mode="bilinear",
                          align_corners=False).tanh()
    return torch.cat([noise, blobs])


def bold(x: torch.Tensor) -> torch.Tensor:
    """Digits drawn with a thicker pen (a 3x3 dilation)."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


def train(args) -> Path:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, y = load_digits(args.dataset, "train")
    xt, yt = load_digits(args.dataset, "test")
    if args.tiny:
        x, y, xt, yt = x[:2000], y[:2000], xt[:500], yt[:500]
    x, y, xt, yt = to_input(x), torch.from_numpy(y.astype(np.int64)), to_input(xt), torch.from_numpy(yt.astype(np.int64))
    config = ClassifierConfig(dataset=args.dataset, channels=args.channels)
    model = DigitClassifier(config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    start, step = time.time(), 0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x) - args.batch + 1, args.batch):
            idx = order[i:i + args.batch]
            logits = model(torch.cat([speckle(shift(x[idx], gen), gen), outliers(args.batch // 4, gen)]))
            loss = (F.cross_entropy(logits[:len(idx)], y[idx])
                    - args.outlier_weight * F.log_softmax(logits[len(idx):], -1).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        acc = accuracy(model, xt, yt)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}, test accuracy {acc:.4f} "
              f"({time.time() - start:.0f}s)", flush=True)
    feats, _ = model.read(xt)
    mu, cov = statistics(feats)
    model.real_mean.copy_(torch.from_numpy(mu))
    model.real_cov.copy_(torch.from_numpy(cov))
    training = dict(epochs=args.epochs, batch=args.batch, outlier_weight=args.outlier_weight, steps=step, seconds=time.time() - start,
                    hardware=hardware("cpu"), command=command_line("train.digits", args.argv),
                    train_images=len(x), test_images=len(xt))
    save_pretrained(model, args.out, half=False, training=training)
    measure(args.out, model=model, data=(x, y, xt, yt))
    return args.out


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    _, probs = model.read(x)
    return float((probs.argmax(1) == y.numpy()).mean())


def measure(folder: Path, model: DigitClassifier | None = None, data=None) -> dict:
    """metrics.json: test accuracy, and every measure on real training images (the floor)."""
    folder = Path(folder)
    model = model or load_classifier(folder=folder)
    if data is None:
        ds = model.config.dataset
        (x, y), (xt, yt) = load_digits(ds, "train"), load_digits(ds, "test")
        data = (to_input(x), torch.from_numpy(y.astype(np.int64)), to_input(xt),
                torch.from_numpy(yt.astype(np.int64)))
    x, _, xt, yt = data
    gen = torch.Generator().manual_seed(1)
    floors = {}
    for n in FLOOR_SIZES:
        n = min(n, len(x))
        draws = [quality(model, x[torch.randperm(len(x), generator=gen)[:n]]) for _ in range(FLOOR_DRAWS)]
        floors[str(n)] = dict(frechet=float(np.mean([q.frechet for q in draws])),
                              frechet_sd=float(np.std([q.frechet for q in draws])),
                              classes_covered=float(np.mean([q.classes_covered for q in draws])),
                              confidence=float(np.mean([q.confidence for q in draws])),
                              recognisable=float(np.mean([q.recognisable for q in draws])))
    noise = quality(model, torch.rand(1000, 1, 28, 28, generator=gen) * 2 - 1)
    pairs = quality(model, torch.maximum(xt[:1000], xt[torch.randperm(len(xt), generator=gen)[:1000]]))
    thick = quality(model, bold(xt[torch.randperm(len(xt), generator=gen)[:1000]]))
    metrics = dict(test_accuracy=accuracy(model, xt, yt), test_images=len(xt), floor=floors,
                   floor_draws=FLOOR_DRAWS,
                   uniform_noise=dict(frechet=noise.frechet, confidence=noise.confidence,
                                      recognisable=noise.recognisable),
                   overlaid_pairs=dict(frechet=pairs.frechet, confidence=pairs.confidence,
                                       recognisable=pairs.recognisable),
                   bold_test=dict(frechet=thick.frechet, confidence=thick.confidence,
                                  recognisable=thick.recognisable))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    p.add_argument("--out", type=Path)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--outlier-weight", type=float, default=0.5,
                   help="weight of the uniform-verdict loss on images that are not digits")
    p.add_argument("--tiny", action="store_true", help="2,000 images, one epoch")
    p.add_argument("--measure", type=Path, metavar="FOLDER")
    args = p.parse_args(argv)
    args.argv = argv
    if args.measure:
        print(json.dumps(measure(args.measure), indent=2))
        return
    if not args.out:
        p.error("--out is required to train")
    if args.tiny:
        args.epochs = 1
    train(args)


if __name__ == "__main__":
    main()
