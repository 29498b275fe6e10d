"""Train a PixelCNN (plain or gated) on MNIST or Fashion-MNIST; resumable; measure it.

    python -m train.pixelcnn --kind gated --dataset mnist --out weights/pixelcnn-gated-mnist
    python -m train.pixelcnn --kind plain --dataset mnist --out weights/pixelcnn-plain-mnist
    python -m train.pixelcnn --kind gated --tiny --out /tmp/pcnn      # seconds, for tests
    python -m train.pixelcnn --measure weights/pixelcnn-gated-mnist   # metrics.json, figures
    python -m train.pixelcnn --judge weights/pixelcnn-gated-mnist     # + the digit judge (minutes)
    python -m train.card weights/pixelcnn-gated-mnist                 # then its card

Every ``--eval-every`` steps: held-out bits per dimension on 1,000 of the 5,000 training
images kept aside (as the VAE's), a line in ``<run>/log.jsonl``, ``<run>/last.pt`` (model,
optimiser, step; ``weights_only=True``), and the best model so far exported. The loss is the
8-bit negative log-likelihood, reported in bits per dimension.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.digits import classifier_available, load_classifier, quality, to_input
from models.hub import WEIGHTS_DIR, from_pretrained, save_pretrained
from models.images import grid
from models.pixelcnn import PixelCNN, PixelCNNConfig, PixelCNNPipeline, bits_per_dim, quantise

from .common import (Budget, RunDir, add_device_flag, command_line, hardware, hours,
                     parse_or_measure, pick_device)
from .data import CLASS_NAMES, load_digits

VAL_SIZE = 5000


def split(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, validation images, validation labels): the same 5,000
    held-out training images as the VAE trainer's."""
    images, labels = load_digits(dataset, "train")
    order = np.random.default_rng(0).permutation(len(images))
    val, train = order[:VAL_SIZE], order[VAL_SIZE:]
    return images[train], labels[train], images[val], labels[val]


@torch.no_grad()
def image_bits(model: PixelCNN, images: np.ndarray, labels: np.ndarray, batch: int = 250,
               autocast: bool = False) -> np.ndarray:
    """Bits per dimension (8-bit) of each image."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch):
        x = quantise(images[i:i + batch], model.config.levels).to(dev)
        y = torch.as_tensor(labels[i:i + batch].astype(np.int64), device=dev) if model.config.classes else None
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x, y)
        out.append(bits_per_dim(logits, x, model.config.levels).cpu().numpy())
    return np.concatenate(out)


def evaluate(model: PixelCNN, images: np.ndarray, labels: np.ndarray, batch: int = 250,
             autocast: bool = False) -> float:
    """Mean bits per dimension (8-bit) over the images."""
    return float(image_bits(model, images, labels, batch, autocast).mean())


def lr_at(step: int, args) -> float:
    warm = min(1.0, (step + 1 - getattr(args, "warm_from", 0)) / 200)
    progress = min(1.0, step / max(1, args.steps))
    return warm * (args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress)))


def continue_from(args, run: RunDir) -> tuple[PixelCNN, int, float]:
    """An exported checkpoint of an unfinished run (a fresh machine has no ``runs/``): its
    weights, step and best held-out figure, and its curve and hours copied into the run log
    so the card's record carries on. The optimiser's moments are not exported."""
    folder = Path(args.continue_from)
    model = from_pretrained(PixelCNN, folder)
    c = model.config
    if (c.kind, c.dataset) != (args.kind, args.dataset):
        raise SystemExit(f"{folder} is a {c.kind} model of {c.dataset}, not {args.kind} of {args.dataset}")
    record = json.loads((folder / "config.json").read_text())["training"]
    curve = record["curve"]
    for i, r in enumerate(curve):
        run.log({**r, "seconds": record["hours"] * 3600 if i == len(curve) - 1 else 0.0})
    return model.train(), record["step"], record["val_bits"]


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    train_x, train_y, val_x, val_y = split(args.dataset)
    val_x, val_y = val_x[:1000], val_y[:1000]
    if args.tiny:
        train_x, train_y, val_x, val_y = train_x[:256], train_y[:256], val_x[:64], val_y[:64]
    config = PixelCNNConfig(kind=args.kind, channels=args.channels, layers=args.layers,
                            classes=10 if args.kind == "gated" else 0,
                            class_names=list(CLASS_NAMES[args.dataset]), dataset=args.dataset)
    model = PixelCNN(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    run = RunDir(args.run_dir or f"runs/pixelcnn-{args.kind}-{args.dataset}{'-tiny' if args.tiny else ''}")
    step, best = 0, math.inf
    if (state := run.resume()) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best = state["step"], state["best"]
        print(f"resumed {run.path} at step {step} (best held-out {best:.4f} bits/dim)", flush=True)
    elif args.continue_from:
        model, step, best = continue_from(args, run)
        model, config = model.to(device), model.config
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        args.warm_from = step   # a fresh optimiser: warm up again
        print(f"continuing {args.continue_from} from step {step} (held-out {best:.4f} bits/dim)",
              flush=True)
    x_all = quantise(train_x, config.levels)
    y_all = torch.as_tensor(train_y.astype(np.int64))
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; {len(train_x):,} training "
          f"images; receptive field {model.rows_seen} rows up", flush=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    budget, last, running, count = Budget(args.minutes), time.time(), 0.0, 0
    while step < args.steps:
        model.train()
        gen = torch.Generator().manual_seed(args.seed + step)
        idx = torch.randint(0, len(x_all), (args.batch_size,), generator=gen)
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        with autocast:
            logits = model(x, y if config.classes else None)
        loss = bits_per_dim(logits, x, config.levels).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        running, count = running + loss.item(), count + 1
        out_of_time = budget.spent()
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            val = evaluate(model, val_x, val_y, autocast=args.bf16)
            record = dict(step=step, train_bits=running / count, val_bits=val, lr=lr_at(step, args),
                          images=step * args.batch_size, seconds=time.time() - last)
            running, count, last = 0.0, 0, time.time()
            run.log(record)
            print(f"step {step}/{args.steps} train {record['train_bits']:.4f} held-out {val:.4f} "
                  f"bits/dim ({record['seconds']:.0f}s)", flush=True)
            if val < best:
                best = val
                log = run.records()
                save_pretrained(model, args.out, half=False, training=dict(
                    step=step, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                    bf16=args.bf16, val_bits=val, images_seen=step * args.batch_size,
                    device=device.type, hardware=hardware(device), hours=hours(log),
                    curve=[dict(step=r["step"], train_bits=r["train_bits"], val_bits=r["val_bits"])
                           for r in log], command=args.command))
            run.save(model=model.state_dict(), opt=opt.state_dict(), step=step, best=best)
            if out_of_time:
                budget.announce()
                break
    return Path(args.out)


# ---------------------------------------------------------------- measurements


@torch.no_grad()
def vae_bound(dataset: str, images: np.ndarray, samples: int = 16, batch: int = 250) -> dict:
    """The studio's 2-D VAE of the same data set on the same images, in the same unit: bits
    per dimension of 8-bit pixels, with the decoder's Bernoulli output read as a distribution
    over the 256 grey levels (p(v) proportional to mu^(v/255) (1 - mu)^(1 - v/255), normalised
    per pixel). Both the ELBO (one posterior sample) and the importance-weighted bound with
    ``samples`` samples (Burda et al., 2016) are upper bounds on its negative log-likelihood."""
    from models.vae import ConvVAE, kl_divergence

    vae = from_pretrained(ConvVAE, f"vae-{dataset}")
    gen = torch.Generator().manual_seed(0)
    k = torch.arange(256, dtype=torch.float32) / 255
    elbo = iwae = binary = 0.0
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch].astype(np.float32) / 255)[:, None]
        v = torch.from_numpy(images[i:i + batch].astype(np.int64))[:, None]
        mean, log_var = vae.encode(x)
        std = torch.exp(0.5 * log_var)
        weights = []
        for s in range(samples):
            z = mean + std * torch.randn(mean.shape, generator=gen)
            t = vae.decode_logits(z)                                   # (B, 1, 28, 28)
            log_z = torch.logsumexp(t[..., None] * k, -1)              # the normaliser
            log_px = (v / 255 * t - log_z).flatten(1).sum(1)
            log_pz = -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (((z - mean) / std) ** 2 + log_var + math.log(2 * math.pi)).sum(1)
            weights.append(log_px + log_pz - log_qz)
            if s == 0:
                kl = kl_divergence(mean, log_var)
                elbo += float((log_px - kl).sum())
                # binarised images (> 127) under its Bernoulli likelihood proper, in nats
                b = (v > 127).float()
                m_b, lv_b = vae.encode(b)
                z_b = m_b + torch.exp(0.5 * lv_b) * torch.randn(m_b.shape, generator=gen)
                binary += float((torch.nn.functional.binary_cross_entropy_with_logits(
                    vae.decode_logits(z_b), b, reduction="none").flatten(1).sum(1)
                    + kl_divergence(m_b, lv_b)).sum())
        iwae += float((torch.logsumexp(torch.stack(weights), 0) - math.log(samples)).sum())
    to_bits = -1 / (len(images) * 784 * math.log(2))
    return dict(vae=f"vae-{dataset}", elbo_bits_per_dim=elbo * to_bits,
                iwae_bits_per_dim=iwae * to_bits, iwae_samples=samples,
                binarised_elbo_nats=binary / len(images))


JUDGED = 1000   # samples scored by the GAN lab's judge (its floor is measured at this size)


def judged(pipeline: PixelCNNPipeline, dataset: str, n: int = JUDGED) -> dict | None:
    """The studio's digit judge (``weights/digit-classifier-*``, the GAN lab's) on ``n`` samples
    (seed 1, temperature 1; the gated model an equal share of each class): Fréchet distance on
    its features, classes covered, confidence, recognisable share, beside its real-vs-real
    floor at the same size; None without the judge."""
    if not classifier_available(dataset):
        return None
    gen = torch.Generator().manual_seed(1)
    classes = pipeline.config.classes
    if classes:
        batches = [pipeline(n // classes, label=k, generator=gen) for k in range(classes)]
    else:
        batches = [pipeline(min(100, n - i), generator=gen) for i in range(0, n, 100)]
    q = quality(load_classifier(dataset), to_input(np.concatenate(batches)))
    floor_file = WEIGHTS_DIR / f"digit-classifier-{dataset}" / "metrics.json"
    floor = json.loads(floor_file.read_text())["floor"].get(str(n), {})
    return dict(samples=len(np.concatenate(batches)), seed=1, frechet=q.frechet,
                classes_covered=q.classes_covered, confidence=q.confidence,
                recognisable=q.recognisable, floor_frechet=floor.get("frechet"),
                floor_recognisable=floor.get("recognisable"))


def add_judge(folder: Path, n: int = JUDGED) -> dict | None:
    """Add :func:`judged` to an exported model's metrics.json (``--judge FOLDER``; sampling a
    thousand images takes minutes on a CPU)."""
    folder = Path(folder)
    pipeline = PixelCNNPipeline.from_pretrained(str(folder))
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["judge"] = judged(pipeline, pipeline.config.dataset, n)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics["judge"]


def measure(folder: Path, images: int | None = None, vae_samples: int = 16) -> dict:
    """Test-set bits per dimension (all 10,000 images, or the first ``images``; per class),
    the VAE's bound beside it, samples and the receptive field as figures. Writes
    metrics.json (the digit judge's reading is added by :func:`add_judge`, minutes more)."""
    folder = Path(folder)
    pipeline = PixelCNNPipeline.from_pretrained(str(folder))
    model, c = pipeline.model, pipeline.config
    images, labels = (a[:images] for a in load_digits(c.dataset, "test"))
    t = time.time()
    bits = image_bits(model, images, labels)
    seconds = time.time() - t
    test = float(bits.mean())
    per_class = {name: float(bits[labels == k].mean())
                 for k, name in enumerate(CLASS_NAMES[c.dataset]) if (labels == k).any()}
    gen = torch.Generator().manual_seed(0)
    if c.classes:   # one row per class
        rows = [pipeline(8, label=k, generator=gen) for k in range(c.classes)]
        figure = grid(np.concatenate(rows), 8, cell=56, gap=2)
    else:
        figure = grid(pipeline(32, generator=gen), 8, cell=56, gap=2)
    Image.fromarray(figure).save(folder / "samples.png")
    field = pipeline.receptive_field(14, 14)
    picture = np.where(field, 90, 235).astype(np.uint8)
    picture[14, 14] = 0
    Image.fromarray(picture).resize((280, 280), Image.Resampling.NEAREST).save(folder / "receptive_field.png")
    metrics = dict(test_bits_per_dim=test, test_nats_per_image=test * math.log(2) * 784,
                   test_images=len(images), per_class=per_class, eval_seconds=seconds,
                   rows_seen=model.rows_seen, receptive_field_pixels=int(field.sum()),
                   sample_seed=0, sample_temperature=1.0, vae=vae_bound(c.dataset, images, vae_samples),
                   anchors=dict(gated_8bit_bits_per_dim=0.81, paper_binarized_nats=81.3))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--judge"] and len(argv) == 2:
        print(json.dumps(add_judge(Path(argv[1])), indent=2))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=["plain", "gated"], default="gated")
    p.add_argument("--dataset", choices=sorted(CLASS_NAMES), default="mnist")
    p.add_argument("--out")
    p.add_argument("--run-dir")
    p.add_argument("--judge", metavar="FOLDER",
                   help="add the digit judge's reading of 1,000 samples to its metrics.json")
    p.add_argument("--continue-from", metavar="FOLDER",
                   help="carry on an exported checkpoint's unfinished run (no runs/ state needed)")
    p.add_argument("--channels", type=int, default=None, help="(64; tiny 8)")
    p.add_argument("--layers", type=int, default=None, help="(gated 8, plain 6; tiny 2)")
    p.add_argument("--steps", type=int, default=None, help="(30000; tiny 20)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=5e-5)
    p.add_argument("--eval-every", type=int, default=None, help="(500; tiny 10)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (where bf16 is native)")
    p.add_argument("--threads", type=int, default=2)
    add_device_flag(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--tiny", action="store_true")
    args = parse_or_measure(p, argv, measure)
    if args is None:
        return
    if args.tiny:
        args.channels, args.layers = args.channels or 8, args.layers or 2
    args.channels = args.channels or 64
    args.layers = args.layers or (8 if args.kind == "gated" else 6)
    args.steps = args.steps or (20 if args.tiny else 30000)
    args.eval_every = args.eval_every or (10 if args.tiny else 500)
    args.command = command_line("train.pixelcnn", argv)
    train(args)


if __name__ == "__main__":
    main()
