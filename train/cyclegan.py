"""Train a CycleGAN between two sets of CelebA faces (resumable; ``--tiny`` for tests).

    python -m train.cyclegan --pair hair --out weights/cyclegan-hair --minutes 60   # resumes
    python -m train.cyclegan --measure weights/cyclegan-hair                          # metrics + figures

The reference recipe (junyanz/pytorch-CycleGAN-and-pix2pix): LSGAN, cycle weight 10, identity
0.5 (x 10), a pool of 50 generated images, Adam 2e-4 with beta1 0.5, a constant rate for half the
steps then a linear decay to zero. Changed for this CPU: 64x64 faces, batch 8, bf16 autocast where
native, a 34x34 PatchGAN (two strided layers). Identities every fifth one are held out.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from models.cyclegan import (CycleGAN, CycleGANConfig, Discriminator, ImagePool, cycle_loss,
                             init_weights, lsgan_loss, to_tensor, to_uint8)
from models.hub import save_pretrained
from models.images import grid
from models.runtime import fast_bf16

from .common import (Budget, RunDir, add_device_flag, command_line, hardware, hours,
                     parse_or_measure, pick_device)

PAIRS = {
    "hair": CycleGANConfig(domains=["blond hair", "black hair"],
                           rules=[{"Blond_Hair": 1, "Black_Hair": -1}, {"Black_Hair": 1, "Blond_Hair": -1}]),
    "glasses": CycleGANConfig(domains=["glasses", "no glasses"],
                              rules=[{"Eyeglasses": 1}, {"Eyeglasses": -1}]),
}


def in_domain(attrs: np.ndarray, names: list[str], rule: dict) -> np.ndarray:
    """Which faces satisfy a domain's rule (every named CelebA attribute at its +1/-1 value)."""
    keep = np.ones(len(attrs), bool)
    for name, value in rule.items():
        keep &= attrs[:, names.index(name)] == value
    return keep


def domain_data(config: CycleGANConfig, celeba: dict | None = None) -> dict:
    """Each domain's training and held-out faces (uint8), held-out identities disjoint."""
    from .data import load_celeba
    from .faces import split

    celeba = celeba or load_celeba()
    train_idx, test_idx = split(celeba["identity"])
    is_test = np.zeros(len(celeba["images"]), bool)
    is_test[test_idx] = True
    out = {}
    for side, rule in zip("ab", config.rules):
        member = in_domain(celeba["attrs"], celeba["attr_names"], rule)
        out[f"{side}_train"] = np.where(member & ~is_test)[0]
        out[f"{side}_test"] = np.where(member & is_test)[0]
    out.update({k: celeba[k] for k in ("images", "attrs", "attr_names")})
    return out


def batch_of(images: np.ndarray, idx: np.ndarray, n: int, gen: torch.Generator) -> torch.Tensor:
    """n random faces of a domain, each mirrored with probability one half, in [-1, 1]."""
    pick = idx[torch.randint(len(idx), (n,), generator=gen).numpy()]
    x = torch.from_numpy(images[pick]).permute(0, 3, 1, 2).float() / 127.5 - 1
    flip = torch.rand(n, generator=gen) < 0.5
    x[flip] = x[flip].flip(-1)
    return x


def lr_at(step: int, steps: int, lr: float, decay_from: float = 0.5) -> float:
    """Constant, then linear to zero over the last ``1 - decay_from`` of the steps."""
    start = int(steps * decay_from)
    return lr if step < start else lr * max(0.0, 1 - (step - start) / max(1, steps - start))


class Trainer:
    """The four networks, two optimisers, two pools and one step of the reference's update."""

    def __init__(self, config: CycleGANConfig, lr: float = 2e-4, device: str = "cpu",
                 bf16: bool = False, cycle: float = 10.0, identity: float = 0.5):
        self.model = CycleGAN(config).to(device)
        self.d_a = Discriminator(config.ndf, config.d_layers).to(device)   # real A vs B -> A
        self.d_b = Discriminator(config.ndf, config.d_layers).to(device)
        self.d_a.apply(init_weights)
        self.d_b.apply(init_weights)
        betas = (0.5, 0.999)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr, betas=betas)
        self.opt_d = torch.optim.Adam(itertools.chain(self.d_a.parameters(), self.d_b.parameters()),
                                      lr, betas=betas)
        self.pool_a, self.pool_b = ImagePool(50), ImagePool(50)
        self.cycle, self.identity, self.bf16 = cycle, identity, bf16
        self.device = torch.device(device)

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def step(self, a: torch.Tensor, b: torch.Tensor, gen: torch.Generator | None = None) -> dict:
        G, lam = self.model, self.cycle
        G.train()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        for p in itertools.chain(self.d_a.parameters(), self.d_b.parameters()):
            p.requires_grad_(False)
        with autocast:
            fake_b, fake_a = G.a2b(a), G.b2a(b)
            back_a, back_b = G.b2a(fake_b), G.a2b(fake_a)
            gan = lsgan_loss(self.d_b(fake_b).float(), True) + lsgan_loss(self.d_a(fake_a).float(), True)
            cyc = cycle_loss(a, back_a.float()) + cycle_loss(b, back_b.float())
            loss = gan + lam * cyc
            idt = torch.zeros(())
            if self.identity:
                idt = cycle_loss(b, G.a2b(b).float()) + cycle_loss(a, G.b2a(a).float())
                loss = loss + lam * self.identity * idt
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        for p in itertools.chain(self.d_a.parameters(), self.d_b.parameters()):
            p.requires_grad_(True)
        old_a, old_b = self.pool_a.query(fake_a, gen), self.pool_b.query(fake_b, gen)
        with autocast:
            d_a = (lsgan_loss(self.d_a(a).float(), True)
                   + lsgan_loss(self.d_a(old_a).float(), False)) / 2
            d_b = (lsgan_loss(self.d_b(b).float(), True)
                   + lsgan_loss(self.d_b(old_b).float(), False)) / 2
        self.opt_d.zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        self.opt_d.step()
        return dict(gan=gan.item() / 2, cycle=cyc.item() / 2, identity=idt.item() / 2,
                    d=(d_a.item() + d_b.item()) / 2)

    def state_dict(self) -> dict:
        return dict(model=self.model.state_dict(), d_a=self.d_a.state_dict(), d_b=self.d_b.state_dict(),
                    opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict(),
                    pool_a=self.pool_a.state_dict(), pool_b=self.pool_b.state_dict())

    def load_state_dict(self, state: dict) -> None:
        for key in ("model", "d_a", "d_b", "opt_g", "opt_d", "pool_a", "pool_b"):
            getattr(self, key).load_state_dict(state[key])


@torch.no_grad()
def progress_figure(model: CycleGAN, a: torch.Tensor, b: torch.Tensor, path: Path) -> None:
    """Rows: A, A -> B, A -> B -> A, then B, B -> A, B -> A -> B (held-out faces)."""
    model.eval()
    fb, fa = model.a2b(a), model.b2a(b)
    rows = [a, fb, model.b2a(fb), b, fa, model.a2b(fa)]
    from PIL import Image
    Image.fromarray(grid(np.concatenate([to_uint8(r) for r in rows]), len(a), gap=2)).save(path)


def write_gallery(folder: Path, data: dict, per: int = 8) -> None:
    """gallery.png beside the checkpoint: the first ``per`` held-out faces of each domain, A on
    top, B below, 64 px each with no gaps (the tab cuts it back into faces)."""
    from PIL import Image

    faces = np.concatenate([data["images"][data["a_test"][:per]], data["images"][data["b_test"][:per]]])
    Image.fromarray(grid(faces, per)).save(Path(folder) / "gallery.png")


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    config = PAIRS[args.pair]
    if args.tiny:
        config = CycleGANConfig(**{**config.__dict__, "ngf": 4, "blocks": 1, "ndf": 4})
    data = domain_data(config)
    images = data["images"]
    bf16 = args.bf16 if args.bf16 is not None else fast_bf16(device)
    trainer = Trainer(config, args.lr, device, bf16=bf16)
    run = RunDir(args.run_dir or f"runs/cyclegan-{args.pair}{'-tiny' if args.tiny else ''}")
    step = 0
    if (state := run.resume()) is not None:
        trainer.load_state_dict(state["trainer"])
        step = state["step"]
        print(f"resumed {run.path} at step {step}", flush=True)
    counts = {k: len(v) for k, v in data.items() if k.endswith(("_train", "_test"))}
    print(f"{sum(p.numel() for p in trainer.model.parameters()):,} generator parameters; "
          f"{counts}; bf16 {bf16}", flush=True)
    show_a, show_b = to_tensor(images[data["a_test"][:8]]), to_tensor(images[data["b_test"][:8]])
    budget, last, sums, count = Budget(args.minutes), time.time(), {}, 0
    while step < args.steps:
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        a = batch_of(images, data["a_train"], args.batch_size, gen).to(device)
        b = batch_of(images, data["b_train"], args.batch_size, gen).to(device)
        trainer.set_lr(lr_at(step, args.steps, args.lr, args.decay_from))
        losses = trainer.step(a, b, gen)
        step += 1
        count += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        out_of_time = budget.spent()
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            record = dict(step=step, **{k: v / count for k, v in sums.items()},
                          lr=lr_at(step, args.steps, args.lr, args.decay_from),
                          faces=step * args.batch_size, seconds=time.time() - last)
            sums, count, last = {}, 0, time.time()
            run.log(record)
            print(f"step {step}/{args.steps} " + " ".join(f"{k} {record[k]:.3f}" for k in losses)
                  + f" ({record['seconds']:.0f}s)", flush=True)
            progress_figure(trainer.model, show_a.to(device), show_b.to(device),
                            run.path / "progress.png")
            log = run.records()
            save_pretrained(trainer.model, args.out, training=dict(
                pair=args.pair, step=step, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                decay_from=args.decay_from, bf16=bf16, faces_seen=step * args.batch_size,
                train_faces=[counts["a_train"], counts["b_train"]],
                device=device.type, hardware=hardware(device), hours=hours(log),
                curve=[{k: r[k] for k in ("step", "gan", "cycle", "identity", "d")} for r in log],
                command=args.command))
            write_gallery(args.out, data)
            run.save(trainer=trainer.state_dict(), step=step)
            if out_of_time:
                budget.announce()
                break
    return Path(args.out)


# ---------------------------------------------------------------- measurements

JUDGE = "face-judge"   # the face-attribute classifier trained with the attributes the pairs need


def kid(x: np.ndarray, y: np.ndarray, subsets: int = 50, size: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 with the cubic
    polynomial kernel (x.y / d + 1)^3, averaged over random subsets; unbiased at any size."""
    rng = np.random.default_rng(seed)
    d, size = x.shape[1], min(size, len(x), len(y))
    out = []
    for _ in range(subsets):
        a, b = x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
        kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        m = size
        off = m * (m - 1)   # pairs of distinct samples
        out.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off
                   - 2 * kxy.mean())
    return float(np.mean(out))


def reads_as(probs: torch.Tensor, names: list[str], rule: dict) -> torch.Tensor:
    """Whether the judge reads each face as satisfying a domain's rule."""
    ok = torch.ones(len(probs), dtype=torch.bool)
    for name, value in rule.items():
        ok &= (probs[:, names.index(name)] > 0.5) == (value > 0)
    return ok


def judge_rows(pipe, judge, data: dict, direction: str) -> tuple[dict, object]:
    """One direction on its held-out faces: success (the judge reads the translation as the
    target domain), the same rate for untouched sources and for real target faces (floor and
    ceiling), the other attributes kept, and the cycle error."""
    c = pipe.model.config
    src, dst = ("a", "b") if direction == "a2b" else ("b", "a")
    rule = c.rules[1] if direction == "a2b" else c.rules[0]
    faces = data["images"][data[f"{src}_test"]]
    out = pipe(faces, direction)
    names = judge.config.attributes
    p_src, p_out = judge.probabilities(to_tensor(faces)), judge.probabilities(to_tensor(out.translated))
    p_real = judge.probabilities(to_tensor(data["images"][data[f"{dst}_test"]]))
    others = [n for n in names if n not in rule]
    same = {n: (p_src[:, names.index(n)] > 0.5) == (p_out[:, names.index(n)] > 0.5) for n in others}
    kept = {n: float(s.float().mean()) for n, s in same.items()}
    # can the judge read each kept attribute at all on the target side? (glasses, say, read as Male)
    labels = data["attrs"][data[f"{dst}_test"]]
    label_names = list(data["attr_names"])
    judge_right = {n: float(((p_real[:, names.index(n)] > 0.5).numpy()
                             == (labels[:, label_names.index(n)] > 0)).mean()) for n in others}
    all_kept = torch.ones(len(faces), dtype=torch.bool)
    for s in same.values():
        all_kept &= s
    cycle = np.abs(out.cycled.astype(np.float32) - faces.astype(np.float32)).mean()
    row = dict(faces=len(faces), success=float(reads_as(p_out, names, rule).float().mean()),
               untranslated=float(reads_as(p_src, names, rule).float().mean()),
               real_target=float(reads_as(p_real, names, rule).float().mean()),
               kept=kept, judge_right_on_target=judge_right, all_kept=float(all_kept.float().mean()), cycle_l1_levels=float(cycle),
               change_mean=float(out.change.mean()))
    target = torch.ones(len(faces))
    for n, v in rule.items():
        pn = p_out[:, names.index(n)]
        target = target * (pn if v > 0 else 1 - pn)
    return row, (out, target.numpy())


def identity_rate(src_feats: np.ndarray, out_feats: np.ndarray) -> float:
    """Re-identification: the share of translations whose nearest held-out source (cosine of
    Inception features) is the face they came from (chance: 1 / N)."""
    a = src_feats / np.linalg.norm(src_feats, axis=1, keepdims=True)
    b = out_feats / np.linalg.norm(out_feats, axis=1, keepdims=True)
    return float((np.argmax(b @ a.T, axis=1) == np.arange(len(b))).mean())


def figures(folder: Path, results: dict, names: list[str], per: int = 8) -> None:
    """examples.png: held-out faces, both directions (rows: source, translated, cycled, change);
    failure.png: the translations the judge found least like the target."""
    from PIL import Image

    def rows(out, pick):
        change = (np.clip(out.change[pick] * 4, 0, 1) * 255).astype(np.uint8)
        return [out.source[pick], out.translated[pick], out.cycled[pick],
                np.repeat(change[..., None], 3, axis=-1)]

    blocks = []
    for direction in ("a2b", "b2a"):
        out, _ = results[direction]
        blocks += rows(out, np.arange(min(per, len(out.source))))
    Image.fromarray(grid(np.concatenate(blocks), per, gap=2)).save(folder / "examples.png")
    worst = []
    for direction in ("a2b", "b2a"):
        out, target = results[direction]
        worst += rows(out, np.argsort(target)[:per // 2])
    Image.fromarray(grid(np.concatenate(worst), per // 2, gap=2)).save(folder / "failure.png")


def measure(folder: Path, judge_name: str = JUDGE) -> dict:
    """Held-out faces, both directions: the judge's success rates, attributes kept, cycle error,
    re-identification, FID and KID against real faces of the target domain (with the
    untranslated and real-vs-real rows at the same size), time per face; and the figures."""
    from models.cyclegan import CycleGANPipeline
    from models.faces import FaceAttributes
    from models.hub import from_pretrained

    from .fid import frechet_distance, inception_features, statistics

    folder = Path(folder)
    pipe = CycleGANPipeline.from_pretrained(str(folder))
    judge = from_pretrained(FaceAttributes, judge_name)
    data = domain_data(pipe.model.config)
    metrics, results = dict(directions={}), {}
    for direction in ("a2b", "b2a"):
        row, results[direction] = judge_rows(pipe, judge, data, direction)
        metrics["directions"][direction] = row
    feats = {}
    for side in "ab":
        for split in ("train", "test"):
            feats[f"{side}_{split}"] = inception_features(data["images"][data[f"{side}_{split}"]])
    for direction in ("a2b", "b2a"):
        src, dst = ("a", "b") if direction == "a2b" else ("b", "a")
        out_feats = inception_features(results[direction][0].translated)
        ref = feats[f"{dst}_train"]
        row = metrics["directions"][direction]
        row["identity_top1"] = identity_rate(feats[f"{src}_test"], out_feats)
        row["identity_chance"] = 1 / len(out_feats)
        row["fid"] = dict(translated=frechet_distance(*statistics(out_feats), *statistics(ref)),
                          untranslated=frechet_distance(*statistics(feats[f"{src}_test"]), *statistics(ref)),
                          real=frechet_distance(*statistics(feats[f"{dst}_test"]), *statistics(ref)))
        row["kid"] = dict(translated=kid(out_feats, ref), untranslated=kid(feats[f"{src}_test"], ref),
                          real=kid(feats[f"{dst}_test"], ref))
        row["reference_faces"] = len(ref)
    faces = data["images"][data["a_test"][:16]]
    pipe(faces[:1])
    t = time.perf_counter()
    for face in faces:
        with torch.inference_mode():
            pipe.model.a2b(to_tensor(face[None]))
    one = (time.perf_counter() - t) / len(faces)
    t = time.perf_counter()
    pipe(faces)
    metrics.update(seconds_per_face=one, seconds_per_face_batch16_with_cycle=(time.perf_counter() - t) / 16,
                   threads=torch.get_num_threads(), hardware=hardware("cpu"), judge=judge_name,
                   judge_attributes=judge.config.attributes)
    figures(folder, results, pipe.domains)
    write_gallery(folder, data)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pair", choices=sorted(PAIRS), default="hair")
    p.add_argument("--out")
    p.add_argument("--run-dir")
    p.add_argument("--steps", type=int, default=None, help="(8000; tiny 4)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--decay-from", type=float, default=0.5,
                   help="share of the steps at the full rate before the linear decay")
    p.add_argument("--eval-every", type=int, default=None, help="(250; tiny 2)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: where bf16 is native)")
    p.add_argument("--threads", type=int, default=2)
    add_device_flag(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--tiny", action="store_true")
    args = parse_or_measure(p, argv, measure)
    if args is None:
        return
    args.steps = args.steps or (4 if args.tiny else 8000)
    args.eval_every = args.eval_every or (2 if args.tiny else 250)
    args.command = command_line("train.cyclegan", argv)
    train(args)


if __name__ == "__main__":
    main()
