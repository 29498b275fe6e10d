"""Train the GAN lab's digit GANs (the chapters' simple MLP GAN and a small DCGAN) with the very
class the tab trains live (models.digitgan.DigitGAN), scored as they go by the project's
classifier; export the generator and the curve that made it.

    python -m train.digitgan --kind mlp --dataset mnist --epochs 30 --out weights/gan-mlp-mnist
    python -m train.digitgan --kind dcgan --dataset mnist --epochs 10 --out weights/gan-dcgan-mnist
    python -m train.digitgan --tiny --out /tmp/gan          # seconds, for tests
    python -m train.digitgan --measure weights/gan-mlp-mnist  # metrics.json and figures
    python -m train.card weights/gan-mlp-mnist

Every ``--every`` rounds it measures 1,000 samples (Fréchet distance on the classifier's
features, classes covered, confidence), keeps the fixed-noise grid at chosen rounds, saves
``runs/<name>/last.pt`` and appends to ``log.jsonl``; rerunning resumes. The last generator is
exported (GANs do not get better by picking a checkpoint on a held-out loss).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.digitgan import DigitGAN, DigitGANConfig, DigitGANPipeline, sheet
from models.digits import EMERGED_CLASSES, EMERGED_SHARE, SURE, emerged, load_classifier, quality
from models.ganlab import Record
from models.hub import WEIGHTS_DIR, save_pretrained

from .common import Budget, RunDir, command_line, hardware
from .data import load_digits

SNAPSHOTS = (0, 100, 300, 1000, 3000, 10000, 30000)
MEASURE_SEED = 1234


def score(game: DigitGAN, classifier, n: int = 1000) -> dict:
    images = game.sample(n, torch.Generator().manual_seed(MEASURE_SEED))
    q = quality(classifier, images)
    return dict(frechet=q.frechet, classes_covered=q.classes_covered, confidence=q.confidence,
                recognisable=q.recognisable)


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    images, _ = load_digits(args.dataset, "train")
    if args.tiny:
        images = images[:2000]
    config = DigitGANConfig(kind=args.kind, dataset=args.dataset, seed=args.seed,
                            channels=args.channels, width=args.width)
    game = DigitGAN(config, images)
    classifier = load_classifier(args.dataset, args.classifier)
    rounds = args.rounds or int(args.epochs * len(images) / config.batch)
    run = RunDir(args.run or Path("runs") / args.out.name)
    snapshots: dict[int, np.ndarray] = {}
    state = run.resume()
    if state:
        game.G.load_state_dict({k[2:]: v for k, v in state["model"].items() if k.startswith("G.")})
        game.D.load_state_dict({k[2:]: v for k, v in state["model"].items() if k.startswith("D.")})
        game.opt_g.load_state_dict(state["opt_g"])
        game.opt_d.load_state_dict(state["opt_d"])
        game.generator.set_state(state["rng"])
        game.fixed = state["fixed"]
        game.steps, game.seconds = state["steps"], state["seconds"]
        game.history = [Record(int(r[0]), *r[1:]) for r in state["history"].tolist()]
        snapshots = {int(k): v.numpy() for k, v in state["snapshots"].items()}
        print(f"resumed {run.path} at round {game.steps:,}", flush=True)
    else:
        snapshots[0] = to_grid(game)
        run.log(dict(step=0, seconds=0.0, **score(game, classifier)))
    budget = Budget(args.minutes)
    print(f"{config.kind} GAN on {args.dataset}: {sum(p.numel() for p in game.G.parameters()):,} "
          f"generator parameters; {rounds:,} rounds of batch {config.batch}", flush=True)
    while game.steps < rounds and not budget.spent():
        goal = min(rounds, (game.steps // args.every + 1) * args.every)
        while game.steps < goal:
            nxt = min([s for s in SNAPSHOTS if s > game.steps] + [goal])
            game.step(nxt - game.steps)
            if game.steps in SNAPSHOTS:
                snapshots[game.steps] = to_grid(game)
        record = dict(step=game.steps, seconds=game.seconds, **score(game, classifier),
                      d_loss=float(np.mean([r.d_loss for r in game.history[-args.every:]])),
                      g_loss=float(np.mean([r.g_loss for r in game.history[-args.every:]])))
        run.log(record)
        print(f"round {game.steps:,} ({game.epochs:.1f} epochs, {game.seconds:.0f}s): "
              f"FD {record['frechet']:.2f}, {record['classes_covered']}/10 classes, "
              f"{record['recognisable']:.0%} recognisable", flush=True)
        save(run, game, snapshots)
    if budget.spent():
        budget.announce()
    snapshots[game.steps] = to_grid(game)
    save(run, game, snapshots)
    export(args, game, run, snapshots)
    return args.out


def to_grid(game: DigitGAN) -> np.ndarray:
    with torch.no_grad():
        game.G.eval()
        return game.G(game.fixed[:16]).numpy()


def save(run: RunDir, game: DigitGAN, snapshots: dict) -> None:
    run.save(model=game.state(), opt_g=game.opt_g.state_dict(), opt_d=game.opt_d.state_dict(),
             rng=game.generator.get_state(), fixed=game.fixed, steps=game.steps,
             seconds=game.seconds,
             history=torch.tensor([dataclasses.astuple(r) for r in game.history], dtype=torch.float64),
             snapshots={str(k): torch.from_numpy(v) for k, v in snapshots.items()})


def export(args, game: DigitGAN, run: RunDir, snapshots: dict) -> None:
    records = run.records()
    curve = [dict(step=int(r.step), d_loss=r.d_loss, g_loss=r.g_loss, d_real=r.d_real, d_fake=r.d_fake)
             for r in thin(game.history, 200)]
    training = dict(rounds=game.steps, epochs=round(game.epochs, 2), batch=game.config.batch,
                    seconds=game.seconds, threads=args.threads, hardware=hardware("cpu"),
                    command=command_line("train.digitgan", args.argv), train_images=len(game.data),
                    log=records, curve=curve)
    save_pretrained(game.G, args.out, half=False, training=training)
    out = Path(args.out)
    keys = sorted(snapshots)
    rows = [sheet(torch.from_numpy(snapshots[k]), cols=16, cell=28) for k in keys]
    gap = np.full((4, rows[0].shape[1]), 255, np.uint8)
    Image.fromarray(np.concatenate([x for r in rows for x in (r, gap)][:-1])).save(out / "progress.png")
    (out / "progress.json").write_text(json.dumps(keys) + "\n")
    Image.fromarray(game.curves(720, 240)).save(out / "curve.png")
    measure(out, dataset=args.dataset, classifier=args.classifier)


def thin(items: list, n: int) -> list:
    """About n items evenly through the list, the last one included."""
    if len(items) <= n:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in idx]


def measure(folder: Path, dataset: str | None = None, classifier=None) -> dict:
    """metrics.json: 10,000 and 1,000 samples scored against the real test set, beside the
    classifier's real-vs-real floor; the round and seconds at which digits became recognisable;
    samples.png (seed 0) and interpolation.png."""
    folder = Path(folder)
    pipe = DigitGANPipeline.from_pretrained(folder)
    dataset = dataset or pipe.config.dataset
    clf = load_classifier(dataset, classifier)
    floor_path = Path(classifier or WEIGHTS_DIR / f"digit-classifier-{dataset}") / "metrics.json"
    floor = json.loads(floor_path.read_text())["floor"]
    scores = {}
    for n in (1000, 10000):
        images = torch.cat([pipe(seed=MEASURE_SEED + k, n=1000) for k in range(n // 1000)])
        q = quality(clf, images)
        scores[str(n)] = dataclasses.asdict(q)
    log = json.loads((folder / "config.json").read_text())["training"]["log"]
    first = next((r for r in log if emerged(r["recognisable"], r["classes_covered"])), None)
    metrics = dict(samples=scores, floor={k: floor[k] for k in scores if k in floor},
                   emerged_share=EMERGED_SHARE, emerged_classes=EMERGED_CLASSES, sure=SURE,
                   emerged_at=None if first is None else dict(round=first["step"], seconds=first["seconds"]),
                   sample_seed=0, progress_rounds=json.loads((folder / "progress.json").read_text()))
    Image.fromarray(sheet(pipe(seed=0, n=64), cols=8, cell=56)).save(folder / "samples.png")
    Image.fromarray(sheet(pipe.interpolate(0, 1, steps=10, rows=4), cols=10, cell=56)).save(
        folder / "interpolation.png")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=["mlp", "dcgan"], default="mlp")
    p.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    p.add_argument("--out", type=Path)
    p.add_argument("--run", type=Path, help="run folder (default runs/<out's name>)")
    p.add_argument("--epochs", type=float, default=30)
    p.add_argument("--rounds", type=int, default=0, help="instead of --epochs")
    p.add_argument("--every", type=int, default=250, help="rounds between measurements")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--classifier", help="classifier folder (default weights/digit-classifier-<dataset>)")
    p.add_argument("--tiny", action="store_true", help="2,000 images, a tiny network, 40 rounds")
    p.add_argument("--measure", type=Path, metavar="FOLDER")
    args = p.parse_args(argv)
    args.argv = argv
    if args.measure:
        print(json.dumps(measure(args.measure, classifier=args.classifier), indent=2))
        return
    if not args.out:
        p.error("--out is required to train")
    if args.tiny:
        args.rounds, args.every, args.width, args.channels = 40, 20, 16, 4
    train(args)


if __name__ == "__main__":
    main()
