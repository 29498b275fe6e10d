"""Train a WaveNet that plays the notes it is given: local conditioning on the piano roll
(models/pianoroll.py) of aligned pairs rendered by train/pianoroll.py.

    python -m train.pianoroll --out runs/pianoroll                       # the pairs, once
    python -m train.pianowave --data runs/pianoroll --out runs/pianowave-export --minutes 60
    python -m train.pianowave --tiny --data /tmp/rolls --out /tmp/pw     # seconds, for tests

Resumable (``runs/pianowave/last.pt`` every evaluation; rerun the same command). Windows start
on a roll frame; the loss counts outputs that see a full receptive field; the held-out windows
come from whole pieces never trained on (and held-out exercises).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from models.pianoroll import FPS, KEYS, Note, to_roll
from models.wavenet import WaveNet, WaveNetConfig, bits_per_sample, mu_law_encode

from .common import RunDir, command_line, pick_device
from .pianoroll import RATE, read_shard
from .wavenet import add_training_args, fit

HOP = RATE // FPS
FEATURES = 3 * KEYS
TINY = dict(residual_channels=8, gate_channels=8, skip_channels=8, head_channels=16, cycle=4,
            stacks=1, cond_channels=8)


class Pieces:
    """One split's shards: mu-law codes (uint8) and the notes as an array (pitch, start, end,
    velocity) for cutting windows of the roll."""

    def __init__(self, folder: Path, split: str, limit: int | None = None):
        paths = sorted(Path(folder).glob(f"{split}-*.npz"))[:limit]
        if not paths:
            raise FileNotFoundError(f"no {split} shards in {folder}: run python -m train.pianoroll")
        self.codes, self.notes = [], []
        for path in paths:
            audio, notes, _ = read_shard(path)
            self.codes.append(mu_law_encode(audio).astype(np.uint8))
            self.notes.append(np.array([[n.pitch, n.start, n.end, n.velocity] for n in notes],
                                       np.float64).reshape(-1, 4))

    def seconds(self) -> float:
        return sum(map(len, self.codes)) / RATE

    def window(self, i: int, frame: int, length: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
        """``length`` codes from roll frame ``frame`` on, and the roll of their frames with
        ``margin`` frames either side, flattened to (264, frames)."""
        codes = self.codes[i][frame * HOP: frame * HOP + length]
        frames = -(-length // HOP) + 2 * margin
        t0 = (frame - margin) / FPS
        table = self.notes[i]
        near = table[(table[:, 2] > t0 - 1) & (table[:, 1] < t0 + frames / FPS + 1)]
        roll = to_roll([Note(int(p), s, e, int(v)) for p, s, e, v in near], frames,
                       first=frame - margin)
        return codes, roll.reshape(FEATURES, frames)


def batch_of(data: Pieces, length: int, size: int, margin: int, rng: np.random.Generator):
    usable = [i for i, c in enumerate(data.codes) if len(c) >= length + HOP]
    weights = np.array([len(data.codes[i]) - length for i in usable], np.float64)
    codes, rolls = [], []
    for i in rng.choice(usable, size=size, p=weights / weights.sum()):
        frame = int(rng.integers(0, (len(data.codes[i]) - length) // HOP + 1))
        c, r = data.window(i, frame, length, margin)
        codes.append(c)
        rolls.append(r)
    return (torch.from_numpy(np.stack(codes).astype(np.int64)), torch.from_numpy(np.stack(rolls)))


def validation(data: Pieces, length: int, limit: int, margin: int):
    """Non-overlapping windows spread evenly over the held-out shards (the same every time)."""
    spots = [(i, f) for i, c in enumerate(data.codes)
             for f in range(0, (len(c) - length) // HOP + 1, -(-length // HOP))]
    picks = np.linspace(0, len(spots) - 1, min(limit, len(spots))).astype(int)
    pairs = [data.window(*spots[k], length, margin) for k in picks]
    return (torch.from_numpy(np.stack([c for c, _ in pairs]).astype(np.int64)),
            torch.from_numpy(np.stack([r for _, r in pairs])))


@torch.inference_mode()
def evaluate(model: WaveNet, codes: torch.Tensor, rolls: torch.Tensor, batch: int = 8) -> float:
    model.eval()
    start = model.config.receptive_field - 1
    total, count = 0.0, 0
    for i in range(0, len(codes), batch):
        x, r = codes[i:i + batch], rolls[i:i + batch]
        n = x.shape[0] * (x.shape[1] - start - 1)
        total += float(bits_per_sample(model(x, r), x, start)) * n
        count += n
    return total / count


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    limit = 4 if args.tiny else None
    data, held = Pieces(args.data, "train", limit), Pieces(args.data, "test", limit)
    sizes = TINY if args.tiny else dict(
        residual_channels=args.channels, gate_channels=args.channels, skip_channels=args.skip,
        head_channels=args.head, cycle=args.cycle, stacks=args.stacks, cond_channels=args.cond)
    config = WaveNetConfig(**sizes, sample_rate=RATE, cond_features=FEATURES, cond_hop=HOP,
                           dataset="piano rolls rendered with fluidsynth (train/pianoroll.py)")
    rf, m = config.receptive_field, config.cond_margin
    val_x, val_r = validation(held, rf + (2000 if args.tiny else 8000),
                              4 if args.tiny else args.val_windows, m)
    print(f"receptive field {rf} samples; {data.seconds():.0f} s training, "
          f"{held.seconds():.0f} s held out", flush=True)
    return fit(args, config, device, RunDir(args.run_dir or f"runs/pianowave{'-tiny' if args.tiny else ''}"),
               lambda rng: batch_of(data, rf + args.window, args.batch_size, m, rng),
               lambda model: evaluate(model, val_x.to(device), val_r.to(device)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="runs/pianoroll", help="train/pianoroll.py's shards")
    p.add_argument("--out", default="runs/pianowave-export")
    p.add_argument("--cond", type=int, default=64, help="conditioning channels")
    add_training_args(p, tiny_steps=20)
    args = p.parse_args(argv)
    args.steps = args.steps or (20 if args.tiny else 200_000)
    args.eval_every = args.eval_every or (10 if args.tiny else 250)
    if args.tiny:
        args.window = min(args.window, 2000)
    args.command = command_line("train.pianowave", argv)
    train(args)


if __name__ == "__main__":
    main()
