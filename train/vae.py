"""Train the 2-D conv VAE on MNIST or Fashion-MNIST; resumable, logs, writes weights/<name>/.

    python -m train.vae --dataset mnist   --out weights/vae-mnist
    python -m train.vae --dataset fashion --out weights/vae-fashion
    python -m train.vae --dataset mnist --tiny --out /tmp/vae-tiny      # seconds, for tests
    python -m train.vae --measure weights/vae-mnist      # metrics.json and figures, then
    python -m train.card weights/vae-mnist               # its card

Every epoch it saves ``<run>/last.pt`` (model, optimiser, EMA; ``weights_only=True``) and
appends to ``<run>/log.jsonl``; rerunning resumes. The checkpoint with the best validation ELBO
(or MSE, ``--select mse``; 5,000 held-out training images) is exported, then the encoded test
set the tab draws its map from. What was tried and what it measured: docs/vae.md.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from safetensors.torch import save_file

from models.hub import from_pretrained, save_pretrained
from models.images import grid
from models.vae import LATENTS, ConvVAE, VAEConfig, grid_points, negative_elbo

from .common import (Budget, RunDir, WeightAverage, add_device_flag, command_line, hardware,
                     hours, parse_or_measure, pick_device)
from .data import CLASS_NAMES, load_digits

VAL_SIZE = 5000


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]


@torch.no_grad()
def evaluate(model: ConvVAE, x: torch.Tensor, batch: int = 1000, seed: int = 0) -> dict:
    """Negative ELBO (nats/image, one posterior sample), its parts, and the reconstruction MSE
    on [0, 1] pixels decoding the posterior mean."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums = dict(neg_elbo=0.0, rec=0.0, kl=0.0, mse=0.0)
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        logits, mean, log_var = model(xb, gen)
        loss, rec, kl = negative_elbo(logits, xb, mean, log_var)
        mse = (model.decode(mean) - xb).pow(2).mean()
        for key, value in zip(sums, (loss, rec, kl, mse)):
            sums[key] += value.item() * len(xb)
    return {k: v / len(x) for k, v in sums.items()}


def augment(x: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """Small random affine warps about the image centre (rotation up to 10 degrees, scale
    0.9-1.1, shear up to 0.15, no translation: the datasets are centred) of ``share`` of the
    batch: plausible new handwriting, so the decoder sees more than 55,000 digits.  (Fashion-MNIST's
    garments are all upright and scaled to fit; warping them made its validation MSE worse.)"""
    n = len(x)
    pick = torch.rand(n, generator=gen) < share
    if not pick.any():
        return x
    k = int(pick.sum())
    angle = (torch.rand(k, generator=gen) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(k, generator=gen) * 2 - 1) * 0.1
    shear = (torch.rand(k, generator=gen) * 2 - 1) * 0.15
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin + shear
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    theta, pick = theta.to(x.device), pick.to(x.device)  # random numbers from the CPU generator
    grid = torch.nn.functional.affine_grid(theta, (k, 1, *x.shape[-2:]), align_corners=False)
    out = x.clone()
    out[pick] = torch.nn.functional.grid_sample(x[pick], grid, align_corners=False).clamp(0, 1)
    return out


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    images, _ = load_digits(args.dataset, "train")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    val_x = to_tensor(images[order[:VAL_SIZE]])
    train_x = to_tensor(images[order[VAL_SIZE:]])
    if args.tiny:
        train_x, val_x = train_x[:512], val_x[:256]
    train_x, val_x = train_x.to(device), val_x.to(device)  # 170 MB at most: kept on the device
    config = VAEConfig(channels=tuple(args.channels), hidden=args.hidden, dataset=args.dataset,
                       extra_convs=args.extra_convs, decoder_dense=args.decoder_dense,
                       class_names=CLASS_NAMES[args.dataset])
    model = ConvVAE(config)
    if args.init_from:  # a second phase (e.g. a lower beta) starting from a finished model
        model = from_pretrained(ConvVAE, args.init_from)
        config = model.config
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # an exponential moving average of the weights, evaluated and exported when --ema is set
    ema = WeightAverage(model, args.ema) if args.ema else None
    run = RunDir(args.run_dir or f"runs/vae-{args.dataset}{'-tiny' if args.tiny else ''}")
    start, best, steps = 0, math.inf, 0
    if (state := run.resume()) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, best, steps = state["epoch"], state["best"], state["steps"]
        print(f"resumed {run.path} at epoch {start} (best val {best:.2f})")
    gen = torch.Generator().manual_seed(args.seed)
    # bf16 convolutions: 1.9x faster steps on this CPU (AVX512-bf16), and the usual choice on a
    # GPU; the dense layers next to z, the weights, optimiser, loss and validation stay fp32
    conv_dtype = torch.bfloat16 if args.bf16 else None
    budget = Budget(args.minutes)
    for epoch in range(start, args.epochs):
        t = time.time()
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))  # cosine decay
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(epoch))
        perm = perm.to(device)
        total = 0.0
        for i in range(0, len(train_x), args.batch_size):
            xb = train_x[perm[i:i + args.batch_size]]
            if args.augment:
                xb = augment(xb, args.augment, gen)
            logits, mean, log_var = model(xb, gen, conv_dtype)
            loss, _, _ = negative_elbo(logits, xb, mean, log_var, beta=args.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            total += loss.item() * len(xb)
            steps += 1
        kept = ema.module if ema is not None else model
        val = evaluate(kept, val_x)
        record = dict(epoch=epoch + 1, steps=steps, lr=lr, train_neg_elbo=total / len(train_x),
                      val=val, bf16=args.bf16, seconds=time.time() - t)
        run.log(record)
        print(f"epoch {epoch + 1}/{args.epochs} train {record['train_neg_elbo']:.2f} "
              f"val {val['neg_elbo']:.2f} mse {val['mse']:.4f} ({record['seconds']:.0f}s)", flush=True)
        score = val["mse"] if args.select == "mse" else val["neg_elbo"]
        if score < best:
            best = score
            save_pretrained(kept, args.out, half=True, training=dict(
                epoch=epoch + 1, epochs=args.epochs, steps=steps, batch_size=args.batch_size,
                lr=args.lr, beta=args.beta, bf16=args.bf16, augment=args.augment, ema=args.ema,
                weight_decay=args.weight_decay, device=device.type, hardware=hardware(device),
                hours=hours(run.records()), val_neg_elbo=val["neg_elbo"], val_mse=val["mse"],
                command=args.command, init_from=args.init_from,
                previous=previous_training(args.init_from)))
        run.save(model=model.state_dict(), opt=opt.state_dict(), epoch=epoch + 1, best=best,
                 steps=steps, **({"ema": ema.state_dict()} if ema is not None else {}))
        if budget.spent():
            budget.announce()
            break
    return Path(args.out)


def previous_training(folder) -> dict | None:
    if not folder:
        return None
    return json.loads((Path(folder) / "config.json").read_text()).get("training")


@torch.no_grad()
def export(folder: Path, dataset: str) -> None:
    """Write what the tab needs beside the weights: where the test set lands (posterior means
    and labels; 2-D points, not the images), so the app draws its map without the data set."""
    model = from_pretrained(ConvVAE, folder)
    images, labels = load_digits(dataset, "test")
    mean, _ = model.encode(to_tensor(images))
    save_file({"z": mean.half().contiguous(), "labels": torch.from_numpy(labels.astype(np.uint8))},
              str(Path(folder) / LATENTS))


def measure(folder: Path) -> dict:
    """Test-set metrics against a linear baseline and a public anchor; a decoded grid and the
    latent map as figures. Writes metrics.json."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    model = from_pretrained(ConvVAE, folder)
    dataset = model.config.dataset
    images, labels = load_digits(dataset, "test")
    x = to_tensor(images)
    metrics = evaluate(model, x)
    metrics.update(pca_mse=pca_mse(dataset), anchor_mse=ANCHORS[dataset],
                   test_images=len(images), train_images=60000 - VAL_SIZE, val_images=VAL_SIZE)
    with torch.no_grad():
        decoded = model.decode(torch.from_numpy(grid_points((0.0, 0.0), 3.3, 20))).numpy()
        mean, _ = model.encode(x)
    tiles = grid(decoded[:, 0], 20)
    plt.imsave(folder / "sample_grid.png", tiles, cmap="gray_r" if dataset == "mnist" else "gray")
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    pts = ax.scatter(mean[:, 0], mean[:, 1], c=labels, cmap="tab10", s=1.5)
    ax.set_xlabel("z[0]"), ax.set_ylabel("z[1]"), ax.set_title(f"{dataset} test set in latent space")
    cbar = fig.colorbar(pts, ticks=range(10))
    cbar.ax.set_yticklabels(CLASS_NAMES[dataset])
    fig.tight_layout()
    fig.savefig(folder / "latent_map.png")
    plt.close(fig)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


ANCHORS = {"mnist": 0.031, "fashion": 0.021}


def pca_mse(dataset: str, components: int = 2) -> float:
    """Reconstruction MSE of the best linear 2-D code, the floor a 2-D VAE should beat."""
    train_images, _ = load_digits(dataset, "train")
    test_images, _ = load_digits(dataset, "test")
    x = train_images[:20000].reshape(-1, 784) / 255.0
    mu = x.mean(0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    t = test_images.reshape(-1, 784) / 255.0 - mu
    r = (t @ vt[:components].T) @ vt[:components]
    return float(((t - r) ** 2).mean())


def main(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(CLASS_NAMES), default="mnist")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--channels", type=int, nargs=2, default=(32, 64))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--extra-convs", type=int, default=0, help="3x3 convs added after each stride")
    p.add_argument("--decoder-dense", type=int, default=1, help="dense layers between z and the map")
    p.add_argument("--out")
    p.add_argument("--run-dir")
    p.add_argument("--threads", type=int, default=1)
    add_device_flag(p)
    p.add_argument("--minutes", type=float, default=0, help="stop (resumably) after this budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=1.0, help="KL weight (1 = the plain ELBO)")
    p.add_argument("--init-from", help="start from this checkpoint folder (a second phase)")
    p.add_argument("--select", choices=["elbo", "mse"], default="elbo",
                   help="validation measure that picks the exported checkpoint")
    p.add_argument("--augment", type=float, default=0.0,
                   help="share of each batch given a small random affine warp")
    p.add_argument("--ema", type=float, default=0.0,
                   help="evaluate and export an EMA of the weights with this decay (0 = off)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with bf16 units)")
    p.add_argument("--tiny", action="store_true", help="2 epochs on 512 images (tests)")
    args = parse_or_measure(p, argv, measure)
    if args is None:
        return
    if args.tiny:
        args.epochs, args.channels, args.hidden = min(args.epochs, 2), (8, 16), 32
    args.command = command_line("train.vae", argv)
    export(train(args), args.dataset)


if __name__ == "__main__":
    main()
