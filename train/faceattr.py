"""Train the face-attribute classifier on the real CelebA faces; writes weights/face-attributes/.

    python -m train.faceattr --out weights/face-attributes
    python -m train.faceattr --tiny --out /tmp/faceattr-tiny

Identity-disjoint split: the faces of every fifth identity (40 of 200, 1,200 images) are held
out; accuracy on them (people the classifier never saw) goes into the card.  Augmentation:
mirror and a random shift of up to 4 px.  Rare attributes are up-weighted (BCE ``pos_weight``).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.dcgan import FaceAttrConfig, FaceAttributes
from models.hub import save_pretrained

from .data import load_celeba

ATTRIBUTES = ["Smiling", "Male", "Eyeglasses", "Young", "Blond_Hair"]


def split(identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(identity)
    held = set(ids[::5].tolist())
    test = np.array([i in held for i in identity])
    return np.where(~test)[0], np.where(test)[0]


def dataset(args):
    celeba = load_celeba()
    cols = [celeba["attr_names"].index(a) for a in args.attributes]
    x = torch.from_numpy(celeba["images"]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    y = torch.from_numpy((celeba["attrs"][:, cols] > 0).astype(np.float32))
    train_idx, test_idx = split(celeba["identity"])
    return x, y, train_idx, test_idx


@torch.no_grad()
def evaluate(model: FaceAttributes, x, y) -> dict:
    p = model.probabilities(x)
    pred = p > 0.5
    out = {}
    for j, name in enumerate(model.config.attributes):
        truth = y[:, j] > 0.5
        pos, neg = truth.sum().item(), (~truth).sum().item()
        tpr = (pred[:, j] & truth).sum().item() / max(pos, 1)
        tnr = (~pred[:, j] & ~truth).sum().item() / max(neg, 1)
        out[name] = dict(accuracy=(pred[:, j] == truth).float().mean().item(),
                         balanced_accuracy=(tpr + tnr) / 2, positives=pos, images=len(y),
                         majority_baseline=max(pos, neg) / len(y))
    return out


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    x, y, train_idx, test_idx = dataset(args)
    if args.tiny:
        train_idx, test_idx = train_idx[:128], test_idx[:64]
    model = FaceAttributes(FaceAttrConfig(attributes=list(args.attributes), width=args.width))
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    positives = y[train_idx].mean(0)
    pos_weight = ((1 - positives) / positives.clamp_min(1e-3)).clamp(1, 10)
    gen = torch.Generator().manual_seed(0)
    steps_per_epoch = math.ceil(len(train_idx) / args.batch_size)
    total = steps_per_epoch * args.epochs
    step = 0
    log = []
    for epoch in range(args.epochs):
        model.train()
        t = time.time()
        perm = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        seen = 0.0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb, yb = x[idx], y[idx]
            flip = torch.rand(len(xb), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            dx, dy = torch.randint(-4, 5, (2,), generator=gen).tolist()
            xb = torch.roll(F.pad(xb, (4, 4, 4, 4), mode="replicate"), (dy, dx), (2, 3))[:, :, 4:-4, 4:-4]
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for group in opt.param_groups:
                group["lr"] = lr
            loss = F.binary_cross_entropy_with_logits(model(xb.contiguous(memory_format=torch.channels_last)),
                                                      yb, pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += loss.item() * len(xb)
            step += 1
        metrics = evaluate(model, x[test_idx], y[test_idx])
        record = dict(epoch=epoch + 1, train_loss=seen / len(perm), seconds=time.time() - t,
                      test={k: round(v["accuracy"], 4) for k, v in metrics.items()})
        log.append(record)
        print(json.dumps(record), flush=True)
    out = Path(args.out)
    save_pretrained(model, out, half=True, training=dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, train_images=len(train_idx),
        command=f"python -m train.faceattr --epochs {args.epochs} --out {args.out}"))
    if not args.tiny:
        write_card(out, metrics, log, len(train_idx), len(test_idx))
    return out


def write_card(folder: Path, metrics: dict, log: list, n_train: int, n_test: int) -> None:
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | "
                     f"{m['majority_baseline']:.3f} | {m['positives']} / {m['images']} |"
                     for name, m in metrics.items())
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "README.md").write_text(f"""---
license: other
tags: [face-attributes, celeba, pytorch, generative-deep-learning-studio]
---
# Face-attribute classifier (64x64 CelebA faces)

A small CNN (four blocks of two 3x3 convolutions with batch norm, width {cfg['width']}) that
gives the probability of {', '.join(cfg['attributes'])} for a 64x64 face. The Face arithmetic
tab uses it to pick groups of generated faces (smiling women, neutral men, ...), to find
attribute directions in the DCGAN's latent space, and to score the arithmetic.

* **Data**: the 6,000 aligned CelebA faces (200 identities x 30 images; CelebA's own labels).
  Identity-disjoint split: {n_train:,} training images of 160 identities; **{n_test:,} test
  images of 40 identities the classifier never saw** (every fifth identity).
* **Training**: AdamW, {cfg['training']['epochs']} epochs, batch {cfg['training']['batch_size']},
  cosine learning rate from {cfg['training']['lr']}, mirror + shift augmentation, rare
  attributes up-weighted; the prediction averages the face and its mirror image. CPU, no GPU.
  Command: `{cfg['training']['command']}`.

## Accuracy on the held-out identities

| attribute | accuracy | balanced accuracy | majority-class baseline | positives |
|---|---|---|---|---|
{rows}

Licence: CelebA is for non-commercial research use; so is this classifier.
""")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--attributes", nargs="+", default=ATTRIBUTES)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.width = 1, 8
    train(args)


if __name__ == "__main__":
    main()
