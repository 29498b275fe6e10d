"""Train the DCGAN on the 6,000 aligned CelebA faces; resumable, logs, writes weights/dcgan-faces/.

    python -m train.dcgan --out weights/dcgan-faces                 # resumes from runs/dcgan/
    python -m train.dcgan --tiny --out /tmp/dcgan-tiny              # seconds, for tests
    python -m train.dcgan --card-only --out weights/dcgan-faces     # FID, arithmetic, card

Every epoch: ``runs/dcgan/last.pt`` (both nets, both optimisers, epoch; ``weights_only=True``),
a line in ``log.jsonl`` (losses, D(x), D(G(z))) and a sample grid of 64 fixed latents.  Every
``--fid-every`` epochs the generator's FID on 1,000 samples is measured and the best generator so
far is exported (fp16).  Data: CelebA only, mirrored at random (see the card for why not LFW).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.dcgan import DCGANConfig, Discriminator, Generator, generate, latents, to_uint8
from models.hub import save_pretrained

from .common import Budget, RunDir, add_device_flag, pick_device
from .data import load_celeba

RUN = Path("runs/dcgan")


def grid_image(images: np.ndarray, cols: int = 8) -> Image.Image:
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    out = np.full((rows * h, cols * w, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, cols)
        out[r * h:(r + 1) * h, col * w:(col + 1) * w] = im
    return Image.fromarray(out)


def real_features(run: Path, n: int = 2000) -> np.ndarray:
    """Inception features of ``n`` real faces (every third one), cached in the run folder."""
    from .fid import inception_features

    path = run / f"fid_real_{n}.npy"
    if path.exists():
        return np.load(path)
    images = load_celeba()["images"]
    picks = np.linspace(0, len(images) - 1, n).astype(int)
    feats = inception_features(images[picks])
    np.save(path, feats)
    return feats


def fid_of(G: Generator, real: np.ndarray, n: int, seed: int = 123) -> float:
    from .fid import frechet_distance, inception_features, statistics

    z = latents(n, torch.Generator().manual_seed(seed), G.config.nz)
    fake = inception_features(to_uint8(generate(G, z)))
    return frechet_distance(*statistics(fake), *statistics(real))


def balance_weights(attrs: np.ndarray, names: list[str], glasses_boost: float = 3.0) -> torch.Tensor:
    """Sampling weights that make the four (Male, Smiling) groups equally likely and faces with
    eyeglasses ``glasses_boost`` times likelier within their group.  The 6,000 faces have 467+71
    smiling men against 2,157+16 smiling women, so a plain sampler teaches the generator few
    smiling men, and the arithmetic that should land on them lands beside them."""
    male, smiling, glasses = (attrs[:, names.index(n)] > 0 for n in ("Male", "Smiling", "Eyeglasses"))
    cell = male * 2 + smiling
    weights = np.where(glasses, glasses_boost, 1.0)
    for c in range(4):
        weights[cell == c] /= weights[cell == c].sum()
    return torch.from_numpy(weights / weights.sum())


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    celeba = load_celeba()
    faces = celeba["images"]
    weights = balance_weights(celeba["attrs"], celeba["attr_names"]) if args.balance else None
    if args.tiny:
        faces = faces[:64]
        weights = None if weights is None else weights[:64] / weights[:64].sum()
    data = torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    data = data.contiguous(memory_format=torch.channels_last).to(device)  # 300 MB as fp32
    config = DCGANConfig(ngf=args.width, ndf=args.width, dataset="CelebA (6,000 aligned faces)")
    G, D = Generator(config), Discriminator(config)
    G = G.to(device, memory_format=torch.channels_last)
    D = D.to(device, memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    run_dir = RunDir(args.run_dir or (str(RUN) + ("-tiny" if args.tiny else "")))
    run = run_dir.path
    start, best, images_seen = 0, math.inf, 0
    if (state := run_dir.resume()) is not None:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        start, best = state["epoch"], state["best"]
        images_seen = state.get("images", start * 46 * 128)  # runs before this key: batch 128
        print(f"resumed {run} at epoch {start} (best FID {best:.1f})", flush=True)
    fixed = latents(64, torch.Generator().manual_seed(0), config.nz)
    real_feats = None if args.tiny or not args.fid_every else real_features(run)
    # bf16 autocast: 1.55x faster steps on this CPU (AVX512-bf16), fp32 weights and optimiser
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    budget = Budget(args.minutes)
    for epoch in range(start, args.epochs):
        G.train(), D.train()
        t = time.time()
        gen = torch.Generator().manual_seed(args.seed + epoch)
        if weights is None:
            perm = torch.randperm(len(data), generator=gen)
        else:  # an epoch is as many draws as there are faces, with replacement
            perm = torch.multinomial(weights, len(data), replacement=True, generator=gen)
        sums = dict(loss_d=0.0, loss_g=0.0, d_real=0.0, d_fake=0.0)
        batches = 0
        for i in range(0, len(data) - args.batch_size + 1, args.batch_size):
            # the random numbers come from the CPU generator on any device: a seed is a seed
            real = data[perm[i:i + args.batch_size].to(device)]
            flip = (torch.rand(len(real), generator=gen) < 0.5).to(device)
            real = torch.where(flip[:, None, None, None], real.flip(-1), real)
            z = latents(len(real), gen, config.nz).to(device)
            with autocast:
                fake = G(z)
                # discriminator: real -> 1, fake -> 0
                d_real, d_fake = D(real).float(), D(fake.detach()).float()
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # generator: the non-saturating loss, make D call the fakes real
            with autocast:
                d_gen = D(fake).float()
            loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            for key, value in zip(sums, (loss_d, loss_g, torch.sigmoid(d_real).mean(),
                                         torch.sigmoid(d_fake).mean())):
                sums[key] += value.item()
            batches += 1
        record = dict(epoch=epoch + 1, **{k: v / batches for k, v in sums.items()},
                      images=images_seen + batches * args.batch_size, batch_size=args.batch_size,
                      bf16=args.bf16, balanced=args.balance, seconds=time.time() - t)
        images_seen = record["images"]
        grid_image(to_uint8(generate(G, fixed))).save(run / f"samples_{epoch + 1:03d}.png")
        last_epoch = epoch + 1 == args.epochs
        out_of_time = budget.spent()
        if real_feats is not None and ((epoch + 1) % args.fid_every == 0 or last_epoch or out_of_time):
            record["fid_1k"] = fid_of(G, real_feats, 1000)
        score = record.get("fid_1k", math.inf if real_feats is not None else -epoch)
        if score < best or (real_feats is None):
            best = min(best, score)
            save_pretrained(G, args.out, half=True, training=dict(
                epoch=epoch + 1, run=str(run), balanced=args.balance,
                images_seen=record["images"], batch_size=args.batch_size,
                lr=args.lr, fid_1k=record.get("fid_1k"), device=device.type,
                command=command_line(args)))
        run_dir.log(record)
        print(f"epoch {epoch + 1}/{args.epochs} D {record['loss_d']:.3f} G {record['loss_g']:.3f} "
              f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f}"
              f"{' FID-1k %.1f' % record['fid_1k'] if 'fid_1k' in record else ''} "
              f"({record['seconds']:.0f}s)", flush=True)
        run_dir.save(G=G.state_dict(), D=D.state_dict(), opt_g=opt_g.state_dict(),
                     opt_d=opt_d.state_dict(), epoch=epoch + 1, best=best, images=images_seen)
        if out_of_time:
            budget.announce()
            break
    return Path(args.out)


def command_line(args) -> str:
    return (f"python -m train.dcgan --epochs {args.epochs} --width {args.width} "
            f"--batch-size {args.batch_size} --lr {args.lr} --out {args.out}"
            f"{' --bf16' if args.bf16 else ''}{' --balance' if args.balance else ''}"
            f"{f' --run-dir {args.run_dir}' if args.run_dir else ''}"
            f"{' --tiny' if args.tiny else ''}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--run-dir")
    p.add_argument("--epochs", type=int, default=None, help="(60; tiny: 2)")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--fid-every", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    add_device_flag(p)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with bf16 units)")
    p.add_argument("--balance", action="store_true",
                   help="sample the (Male, Smiling) groups equally, eyeglasses 3x (see balance_weights)")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--card-only", action="store_true")
    args = p.parse_args(argv)
    if args.tiny:
        args.width, args.batch_size, args.fid_every = 8, 16, 0
    if args.epochs is None:
        args.epochs = 2 if args.tiny else 60
    if args.card_only:
        from .face_card import write_card
        write_card(Path(args.out))
        return
    train(args)


if __name__ == "__main__":
    main()
