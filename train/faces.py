"""Face arithmetic: train the DCGAN and the face-attribute classifier on the 6,000 aligned CelebA
faces, export what the tab serves, and measure both for their cards.

    python -m train.faces dcgan --out weights/dcgan-faces        # resumable (runs/dcgan/)
    python -m train.faces classifier --out weights/face-attributes
    python -m train.faces dcgan --tiny --out /tmp/dcgan-tiny     # seconds, for tests
    python -m train.faces export weights/dcgan-faces             # the attribute directions
    python -m train.faces measure weights/dcgan-faces            # metrics.json and figures
    python -m train.card weights/dcgan-faces                     # then its card

The DCGAN keeps the generator with the best FID on 1,000 samples (every ``--fid-every``
epochs); its export also writes the attribute directions the tab's sliders use, read from
8,000 generated faces by the classifier (which is trained first). History: docs/faces.md.
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
from PIL import Image
from safetensors.torch import save_file

from models.faces import (DIRECTIONS, PRESETS, DCGANConfig, Discriminator, FaceAttrConfig,
                          FaceAttributes, Generator, arithmetic, attribute_directions, generate,
                          hits, latents, load_directions, matches, move_along, neighbours,
                          pick_groups, sides, slerp, to_uint8)
from models.hub import WEIGHTS_DIR, from_pretrained, save_pretrained
from models.images import grid
from models.runtime import generator

from .common import (Budget, RunDir, add_device_flag, command_line, hardware, hours,
                     pick_device)
from .data import load_celeba

RUN = Path("runs/dcgan")
CLASSIFIER = WEIGHTS_DIR / "face-attributes"
ATTRIBUTES = ["Smiling", "Male", "Eyeglasses", "Young", "Blond_Hair"]
POOL, POOL_SEED = 8000, 7   # generated faces the directions and the random triplets come from
TRIPLETS = 200
TAB_SEEDS = 200             # seeds of the tab's own preset picks (each: 256 faces, surest 3 per group)
TAB_POOL = 256
SLIDER_FACES = 300          # faces per row of the sliders' table
SLIDER_SHIFT = 6.0
SLIDER_SEED = 11


# ---------------------------------------------------------------- the DCGAN


def balance_weights(attrs: np.ndarray, names: list[str], glasses_boost: float = 3.0) -> torch.Tensor:
    """Sampling weights that make the four (Male, Smiling) groups equally likely and faces with
    eyeglasses ``glasses_boost`` times likelier within their group (the data has four smiling
    women to each smiling man, and few women with glasses)."""
    male, smiling, glasses = (attrs[:, names.index(n)] > 0 for n in ("Male", "Smiling", "Eyeglasses"))
    cell = male * 2 + smiling
    weights = np.where(glasses, glasses_boost, 1.0)
    for c in range(4):
        weights[cell == c] /= weights[cell == c].sum()
    return torch.from_numpy(weights / weights.sum())


def real_features(cache: Path, n: int = 2000, other: bool = False) -> np.ndarray:
    """Inception features of ``n`` real faces spread over the data set (``other``: ``n`` more,
    none of those, for the real-vs-real floor), cached in ``cache``."""
    from .fid import inception_features

    path = cache / f"fid_real_{'other_' if other else ''}{n}.npy"
    if path.exists():
        return np.load(path)
    faces = load_celeba()["images"]
    picks = np.linspace(0, len(faces) - 1, n).astype(int)
    if other:
        used = set(picks.tolist())
        picks = np.array([i for i in range(len(faces)) if i not in used])[::2][:n]
    feats = inception_features(faces[picks])
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, feats)
    return feats


def fid_of(G: Generator, real: np.ndarray, n: int, seed: int = 123) -> float:
    from .fid import frechet_distance, inception_features, statistics

    z = latents(n, torch.Generator().manual_seed(seed), G.config.nz)
    fake = inception_features(to_uint8(generate(G, z)))
    return frechet_distance(*statistics(fake), *statistics(real))


def dcgan_history(records: list[dict]) -> dict:
    """The card's account of a run: its phases (batch size, precision, balancing), the FID-1k
    curve and the hours, from the run folder's log."""
    phases: list[dict] = []
    for r in records:
        key = dict(batch_size=r.get("batch_size", 128), bf16=r.get("bf16", False),
                   balanced=r.get("balanced", False))
        if phases and all(phases[-1][k] == v for k, v in key.items()):
            phases[-1]["last"] = r["epoch"]
        else:
            phases.append(dict(first=r["epoch"], last=r["epoch"], **key))
    return dict(phases=phases, hours=hours(records),
                fid_curve=[dict(epoch=r["epoch"], fid_1k=r["fid_1k"]) for r in records if "fid_1k" in r])


def train_dcgan(args) -> Path:
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
        start, best, images_seen = state["epoch"], state["best"], state["images"]
        print(f"resumed {run} at epoch {start} (best FID {best:.1f})", flush=True)
    fixed = latents(64, torch.Generator().manual_seed(0), config.nz)
    real_feats = None if args.tiny or not args.fid_every else real_features(run)
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
        Image.fromarray(grid(to_uint8(generate(G, fixed)), 8)).save(run / f"samples_{epoch + 1:03d}.png")
        last_epoch = epoch + 1 == args.epochs
        out_of_time = budget.spent()
        if real_feats is not None and ((epoch + 1) % args.fid_every == 0 or last_epoch or out_of_time):
            record["fid_1k"] = fid_of(G, real_feats, 1000)
        run_dir.log(record)
        score = record.get("fid_1k", math.inf if real_feats is not None else -epoch)
        if score < best or real_feats is None:
            best = min(best, score)
            save_pretrained(G, args.out, half=True, training=dict(
                epoch=epoch + 1, images_seen=images_seen, batch_size=args.batch_size, lr=args.lr,
                fid_1k=record.get("fid_1k"), device=device.type, hardware=hardware(device),
                command=args.command, **dcgan_history(run_dir.records())))
        print(f"epoch {epoch + 1}/{args.epochs} D {record['loss_d']:.3f} G {record['loss_g']:.3f} "
              f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f}"
              f"{' FID-1k %.1f' % record['fid_1k'] if 'fid_1k' in record else ''} "
              f"({record['seconds']:.0f}s)", flush=True)
        run_dir.save(G=G.state_dict(), D=D.state_dict(), opt_g=opt_g.state_dict(),
                     opt_d=opt_d.state_dict(), epoch=epoch + 1, best=best, images=images_seen)
        if out_of_time:
            budget.announce()
            break
    if (CLASSIFIER / "config.json").is_file():
        export(Path(args.out), pool_size=512 if args.tiny else POOL)
    return Path(args.out)


def pool(G: Generator, clf: FaceAttributes, n: int = POOL, seed: int = POOL_SEED):
    """``n`` generated faces (latents, images, the classifier's probabilities)."""
    z = latents(n, torch.Generator().manual_seed(seed), G.config.nz)
    images = generate(G, z)
    return z, images, clf.probabilities(images)


def export(folder: Path, classifier: Path = CLASSIFIER, pool_size: int = POOL) -> dict:
    """Write what the tab needs beside the generator: the attribute directions (mean z of the
    faces the classifier is confident have an attribute minus that of those it is confident
    lack it), from ``pool_size`` generated faces."""
    G = from_pretrained(Generator, folder)
    clf = from_pretrained(FaceAttributes, classifier)
    z, _, probs = pool(G, clf, pool_size)
    dirs = attribute_directions(z, probs, clf.config.attributes)
    save_file({k: v.contiguous() for k, v in dirs.items()}, str(Path(folder) / DIRECTIONS))
    return dirs


# ---------------------------------------------------------------- the classifier


def split(identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identity-disjoint: the faces of every fifth identity are held out."""
    ids = np.unique(identity)
    held = set(ids[::5].tolist())
    test = np.array([i in held for i in identity])
    return np.where(~test)[0], np.where(test)[0]


def attribute_data(attributes: list[str]):
    celeba = load_celeba()
    cols = [celeba["attr_names"].index(a) for a in attributes]
    x = torch.from_numpy(celeba["images"]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    y = torch.from_numpy((celeba["attrs"][:, cols] > 0).astype(np.float32))
    train_idx, test_idx = split(celeba["identity"])
    return x, y, train_idx, test_idx, celeba["identity"]


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


def train_classifier(args) -> Path:
    """Mirror and shift (up to 4 px) augmentation, rare attributes up-weighted (BCE
    ``pos_weight``), cosine learning rate; the held-out identities are never seen."""
    torch.set_num_threads(args.threads)
    x, y, train_idx, test_idx, _ = attribute_data(args.attributes)
    if args.tiny:
        train_idx, test_idx = train_idx[:128], test_idx[:64]
    model = FaceAttributes(FaceAttrConfig(attributes=list(args.attributes), width=args.width))
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    positives = y[train_idx].mean(0)
    pos_weight = ((1 - positives) / positives.clamp_min(1e-3)).clamp(1, 10)
    gen = torch.Generator().manual_seed(0)
    total = math.ceil(len(train_idx) / args.batch_size) * args.epochs
    step, seconds = 0, 0.0
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
            for group in opt.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.binary_cross_entropy_with_logits(model(xb.contiguous(memory_format=torch.channels_last)),
                                                      yb, pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += loss.item() * len(xb)
            step += 1
        seconds += time.time() - t
        test = evaluate(model, x[test_idx], y[test_idx])
        print(json.dumps(dict(epoch=epoch + 1, train_loss=seen / len(perm),
                              test={k: round(v["accuracy"], 4) for k, v in test.items()})), flush=True)
    return save_pretrained(model, args.out, half=True, training=dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, train_images=len(train_idx),
        device="cpu", hardware=hardware("cpu"), hours=seconds / 3600, command=args.command))


# ---------------------------------------------------------------- measurements


def measure(folder: Path) -> dict:
    """Measure a generator or a classifier (by its config.json) and write metrics.json."""
    folder = Path(folder)
    kind = json.loads((folder / "config.json").read_text())["model_type"]
    metrics = measure_dcgan(folder) if kind == Generator.model_type else measure_classifier(folder)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def measure_classifier(folder: Path) -> dict:
    """Accuracy on the 40 identities held out (people the classifier never saw)."""
    clf = from_pretrained(FaceAttributes, folder)
    x, y, train_idx, test_idx, identity = attribute_data(clf.config.attributes)
    return dict(held_out=evaluate(clf, x[test_idx], y[test_idx]), train_images=len(train_idx),
                test_images=len(test_idx), identities=len(np.unique(identity)),
                test_identities=len(np.unique(identity[test_idx])))


def arithmetic_rates(G, clf, z, images, probs, triplets: int = TRIPLETS, seed: int = 0) -> dict:
    """For each preset: the share of random triplets (three faces per group, averaged) whose
    result the classifier calls the target, in latent space and in pixel space; and the share
    of random samples that already are the target (the prior)."""
    names = clf.config.attributes
    rng = np.random.default_rng(seed)
    out = {}
    for title, preset in PRESETS.items():
        groups = [torch.where(matches(probs, names, spec))[0].numpy()
                  for spec in (preset.a, preset.b, preset.c)]
        sizes = [len(g) for g in groups]
        if min(sizes) < 3:
            out[title] = dict(group_sizes=sizes, skipped="a group has fewer than 3 faces")
            continue
        picks = [[rng.choice(g, 3, replace=False) for g in groups] for _ in range(triplets)]
        z_res = torch.stack([arithmetic(*(z[p] for p in pk)) for pk in picks])
        px_res = torch.stack([arithmetic(*(images[p] for p in pk)) for pk in picks]).clamp(-1, 1)
        latent_ok = hits(clf.probabilities(generate(G, z_res)), names, preset.target)
        pixel_ok = hits(clf.probabilities(px_res), names, preset.target)
        out[title] = dict(latent=latent_ok.float().mean().item(), pixel=pixel_ok.float().mean().item(),
                          prior=hits(probs, names, preset.target).float().mean().item(),
                          group_sizes=sizes, triplets=triplets)
    return out


def tab_rates(G, clf, seeds: int = TAB_SEEDS, fast: bool = True) -> tuple[dict, dict]:
    """The success rate of the tab's preset button: for seeds 0..seeds-1, the seed's 256 faces,
    the three per group the classifier is surest of (``pick_groups``, as the tab), the latent
    and the pixel result classified; also the result images per preset (latent, pixel).
    ``fast``: generated as the tab generates them (bf16 where the CPU does it natively)."""
    names = clf.config.attributes
    pools = [latents(TAB_POOL, generator(s), G.config.nz) for s in range(seeds)]
    images = [generate(G, z, fast=fast) for z in pools]
    probs = [clf.probabilities(x) for x in images]
    out, results = {}, {}
    for title, preset in PRESETS.items():
        z_res, px_res = [], []
        for z, x, p in zip(pools, images, probs):
            try:
                groups = pick_groups(p, names, preset)
            except LookupError:
                continue
            z_res.append(arithmetic(*(z[g] for g in groups)))
            px_res.append(arithmetic(*(x[g] for g in groups)).clamp(-1, 1))
        if not z_res:
            out[title] = dict(seeds=0)
            continue
        results[title] = generate(G, torch.stack(z_res), fast=fast), torch.stack(px_res)
        latent_ok = hits(clf.probabilities(results[title][0]), names, preset.target)
        pixel_ok = hits(clf.probabilities(results[title][1]), names, preset.target)
        out[title] = dict(latent=latent_ok.float().mean().item(),
                          pixel=pixel_ok.float().mean().item(), seeds=len(z_res))
    return out, results


def slider_rates(G, clf, dirs: dict, faces: int = SLIDER_FACES, shift: float = SLIDER_SHIFT,
                 seed: int = SLIDER_SEED) -> dict:
    """How the tab's sliders move faces: for each attribute, faces that lack it are moved
    +shift along its direction, plainly and keeping the other attributes (``move_along`` with
    the face's reading); the share that gain it, and per other attribute the share whose
    reading stayed on the same side."""
    names = clf.config.attributes
    z = latents(8 * faces, torch.Generator().manual_seed(seed), G.config.nz)
    p = clf.probabilities(generate(G, z))
    out = {}
    rows = [(name, name, p[:, j] < 0.5) for j, name in enumerate(names) if name in dirs]
    if "Eyeglasses" in dirs and "Male" in names:   # the headline case: glasses for women
        rows.append(("Eyeglasses (women)", "Eyeglasses",
                     (p[:, names.index("Eyeglasses")] < 0.5) & (p[:, names.index("Male")] < 0.5)))
    for label, name, lacking in rows:
        j = names.index(name)
        idx = torch.where(lacking)[0][:faces]
        if len(idx) == 0:
            continue
        before = p[idx] > 0.5
        row = {"faces": len(idx)}
        for kind in ("plain", "kept"):
            moved = torch.stack([move_along(z[i], {name: shift}, dirs, keep=(
                sides(p[i], names) if kind == "kept" else None))[0] for i in idx])
            after = clf.probabilities(generate(G, moved)) > 0.5
            row[kind] = dict(gained=after[:, j].float().mean().item(),
                             others_kept={n: (after[:, k] == before[:, k]).float().mean().item()
                                          for k, n in enumerate(names) if k != j})
        out[label] = row
    return out


def cosines(dirs: dict, top: int = 3) -> list[dict]:
    """The most tangled pairs of directions, largest |cosine| first."""
    names = list(dirs)
    pairs = [(a, b, float(dirs[a] @ dirs[b])) for i, a in enumerate(names) for b in names[i + 1:]]
    return [dict(a=a, b=b, cosine=c) for a, b, c in sorted(pairs, key=lambda r: -abs(r[2]))[:top]]


def figure_sliders(G, clf, dirs: dict, path: Path, seed: int = SLIDER_SEED, per: int = 6) -> bool:
    """Three blocks (glasses, male, smiling +shift), each of women who lack the attribute: the
    face, the plain move, the move keeping the other attributes. False (nothing drawn) when
    the seed's faces hold no such women."""
    names = clf.config.attributes
    z = latents(TAB_POOL, generator(seed), G.config.nz)
    p = clf.probabilities(generate(G, z))
    woman = p[:, names.index("Male")] < 0.5
    blocks = []
    for attr in ("Eyeglasses", "Male", "Smiling"):
        idx = torch.where(woman & (p[:, names.index(attr)] < 0.5))[0][:per]
        if attr not in dirs or len(idx) < per:
            continue
        trios = [torch.stack([z[i], move_along(z[i], {attr: SLIDER_SHIFT}, dirs)[0],
                              move_along(z[i], {attr: SLIDER_SHIFT}, dirs, keep=sides(p[i], names))[0]])
                 for i in idx]
        blocks.append(grid(to_uint8(generate(G, torch.cat(trios))), 3, cell=96))
    if not blocks:
        return False
    Image.fromarray(np.concatenate(blocks, 1)).save(path)
    return True


def figure_arithmetic(G, clf, z, images, probs, path: Path, title: str, seed: int = 3) -> None:
    """Rows: the three faces of A, B, C and their averages; the result with 8 neighbours; pixels."""
    names = clf.config.attributes
    preset = PRESETS[title]
    rng = np.random.default_rng(seed)
    groups = [rng.choice(torch.where(matches(probs, names, s))[0].numpy(), 3, replace=False)
              for s in (preset.a, preset.b, preset.c)]
    mean_faces = generate(G, torch.stack([z[g].mean(0) for g in groups]))
    row1 = [images[i] for g in groups for i in g]
    res = arithmetic(*(z[g] for g in groups))
    around = generate(G, torch.cat([res[None], neighbours(res, 8, 0.25, torch.Generator().manual_seed(1))]))
    pixel = arithmetic(*(images[g] for g in groups)).clamp(-1, 1)
    blank = torch.ones_like(pixel)
    tiles = torch.stack(row1 + list(mean_faces) + [pixel] + [blank] * 5 + list(around))
    Image.fromarray(grid(to_uint8(tiles), 9, cell=96)).save(path)


def data_counts() -> dict:
    """The groups of the training faces the card talks about (CelebA's own labels)."""
    celeba = load_celeba()
    a, names = celeba["attrs"] > 0, celeba["attr_names"]
    male, smiling, glasses = (a[:, names.index(n)] for n in ("Male", "Smiling", "Eyeglasses"))
    return dict(faces=len(a), smiling_men=int((male & smiling).sum()),
                smiling_women=int((~male & smiling).sum()),
                women_with_glasses=int((~male & glasses).sum()))


def measure_dcgan(folder: Path, classifier: Path = CLASSIFIER, cache: Path = Path("runs/faces-fid"),
                  fid_faces: int = 2000, tab_seeds: int = TAB_SEEDS, triplets: int = TRIPLETS,
                  slider_faces: int = SLIDER_FACES) -> dict:
    """FID against real faces, the arithmetic's success by the classifier (as the tab picks
    faces, and over random triplets), how the sliders move faces; and the card's figures.
    (The sizes are the card's; tests pass small ones.)"""
    from .fid import frechet_distance, inception_features, statistics

    G = from_pretrained(Generator, folder)
    clf = from_pretrained(FaceAttributes, classifier)
    names = clf.config.attributes
    z, images, probs = pool(G, clf)
    dirs = load_directions(folder / DIRECTIONS)
    sliders = slider_rates(G, clf, dirs, faces=slider_faces)
    drawn = figure_sliders(G, clf, dirs, folder / "sliders.png")
    rates = arithmetic_rates(G, clf, z, images, probs, triplets=triplets)
    tab, results = tab_rates(G, clf, seeds=tab_seeds)
    # FID: generated vs real faces; and as many other real faces vs the same (the floor)
    real = real_features(cache, fid_faces)
    fake = inception_features(to_uint8(images[:fid_faces]))
    fid = frechet_distance(*statistics(fake), *statistics(real))
    floor = frechet_distance(*statistics(real_features(cache, fid_faces, other=True)), *statistics(real))
    # are the results faces: FID of the headline preset's latent and pixel results (small samples)
    headline = next(iter(PRESETS))
    realism = {}
    if headline in results:
        realism = {kind: frechet_distance(*statistics(inception_features(to_uint8(x))), *statistics(real))
                   for kind, x in zip(("latent", "pixel"), results[headline])}
        realism["random_samples"] = frechet_distance(
            *statistics(fake[:len(results[headline][0])]), *statistics(real))
    Image.fromarray(grid(to_uint8(images[:64]), 8, cell=96)).save(folder / "samples.png")
    for i, title in enumerate(list(PRESETS)[:2]):
        figure_arithmetic(G, clf, z, images, probs, folder / f"arithmetic_{i + 1}.png", title)
    ends = z[:4]
    strip = torch.cat([slerp(ends[0], ends[1], torch.linspace(0, 1, 8)),
                       slerp(ends[2], ends[3], torch.linspace(0, 1, 8))])
    Image.fromarray(grid(to_uint8(generate(G, strip)), 8, cell=96)).save(folder / "interpolation.png")
    return dict(fid_2k=fid, fid_2k_real_vs_real=floor, fid_faces=fid_faces,
                arithmetic_tab_picks=tab, result_fid=realism, arithmetic=rates,
                generated_attribute_share={n: float((probs[:, j] > 0.5).float().mean())
                                           for j, n in enumerate(names)},
                pool=POOL, triplets=triplets, tab_seeds=tab_seeds, tab_pool=TAB_POOL,
                data=data_counts(),
                sliders=dict(shift=SLIDER_SHIFT, faces=slider_faces, seed=SLIDER_SEED,
                             figure=drawn, cosines=cosines(dirs), rates=sliders))


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("dcgan", help="train the DCGAN (resumable) and export it")
    d.add_argument("--out", required=True)
    d.add_argument("--run-dir")
    d.add_argument("--epochs", type=int, default=None, help="(60; tiny: 2)")
    d.add_argument("--width", type=int, default=64)
    d.add_argument("--batch-size", type=int, default=128)
    d.add_argument("--lr", type=float, default=2e-4)
    d.add_argument("--fid-every", type=int, default=5)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--minutes", type=float, default=0)
    d.add_argument("--bf16", action="store_true", help="bf16 autocast (where bf16 is native)")
    d.add_argument("--balance", action="store_true",
                   help="sample the (Male, Smiling) groups equally, eyeglasses 3x (balance_weights)")
    c = sub.add_parser("classifier", help="train the face-attribute classifier")
    c.add_argument("--out", required=True)
    c.add_argument("--attributes", nargs="+", default=ATTRIBUTES)
    c.add_argument("--epochs", type=int, default=12)
    c.add_argument("--width", type=int, default=32)
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--lr", type=float, default=2e-3)
    for trainer in (d, c):
        trainer.add_argument("--threads", type=int, default=2)
        trainer.add_argument("--tiny", action="store_true", help="seconds, for tests")
    add_device_flag(d)
    for name, text in (("export", "write the attribute directions beside a generator"),
                       ("measure", "write metrics.json and the figures of an exported model")):
        sub.add_parser(name, help=text).add_argument("folder", type=Path)
    args = p.parse_args(argv)
    args.command = command_line("train.faces", argv)
    if args.what == "measure":
        print(json.dumps(measure(args.folder), indent=2))
    elif args.what == "export":
        export(args.folder)
    elif args.what == "classifier":
        if args.tiny:
            args.epochs, args.width = 1, 8
        train_classifier(args)
    else:
        if args.tiny:
            args.width, args.batch_size, args.fid_every = 8, 16, 0
        if args.epochs is None:
            args.epochs = 2 if args.tiny else 60
        train_dcgan(args)


if __name__ == "__main__":
    main()
