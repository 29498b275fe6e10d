"""Train a WaveNet on real audio (speech, piano pieces, or pitch-conditioned piano notes).

    python -m train.wavenet --data speech --out weights/wavenet-speech --minutes 120
    python -m train.wavenet --data piano  --out weights/wavenet-piano  --minutes 120
    python -m train.wavenet --data notes  --out weights/wavenet-notes  --minutes 60
    python -m train.wavenet --data speech --tiny --out /tmp/wn     # seconds, for tests
    python -m train.wavenet --data speech --card-only --out weights/wavenet-speech

Resumable: ``runs/wavenet-<data>/last.pt`` (model, EMA, optimiser, step; loaded with
``weights_only=True``) every evaluation; rerun the same command to go on.  ``log.jsonl`` holds
training and held-out loss in bits per sample.  Training windows are random crops of one
receptive field plus ``--window`` samples; the loss counts only outputs that see a full receptive
field.  Held-out loss is measured for the weights and for their exponential moving average
(Polyak averaging, as in the paper; its memory grows from 10 steps to 1/(1 - ``--ema``)); the
better of the two is exported whenever it improves on the best so far.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from models.hub import save_pretrained
from models.wavenet import (SILENCE, WaveNet, WaveNetConfig, bits_per_sample, mu_law_decode,
                            mu_law_encode)

from .common import Budget, RunDir, WeightAverage, add_device_flag, pick_device
from .data import AUDIO_SETS, AudioSet, load_audio

TINY = dict(residual_channels=8, gate_channels=8, skip_channels=8, head_channels=16, cycle=4,
            stacks=1)


def batch_of(clips: list, classes: list, length: int, size: int, rng: np.random.Generator,
             onset_share: float = 0.0):
    """``size`` random windows of ``length`` codes (clips chosen in proportion to their length).
    With ``onset_share``, that share of the windows starts within the first ``ONSET_LEAD``
    samples of a clip: for notes with a lead-in (:func:`with_lead_in`) and windows scoring more
    than ``ONSET_LEAD`` samples, their scored part then holds the attack after a full receptive
    field of silence."""
    usable = [i for i, c in enumerate(clips) if len(c) >= length]
    weights = np.array([len(clips[i]) - length + 1 for i in usable], dtype=np.float64)
    picks = rng.choice(usable, size=size, p=weights / weights.sum())
    rows, cls = [], []
    for i in picks:
        if rng.random() < onset_share:
            start = rng.integers(0, min(ONSET_LEAD, len(clips[i]) - length) + 1)
        else:
            start = rng.integers(0, len(clips[i]) - length + 1)
        rows.append(clips[i][start:start + length])
        cls.append(classes[i] if classes else 0)
    return torch.from_numpy(np.stack(rows).astype(np.int64)), torch.tensor(cls)


def validation_windows(data: AudioSet, length: int, limit: int):
    """Non-overlapping windows spread evenly over the held-out clips (the same every time)."""
    windows, cls = [], []
    for i, clip in enumerate(data.val):
        for start in range(0, len(clip) - length + 1, length):
            windows.append(clip[start:start + length])
            cls.append(data.val_classes[i] if data.val_classes else 0)
    picks = np.linspace(0, len(windows) - 1, min(limit, len(windows))).astype(int)
    return (torch.from_numpy(np.stack([windows[i] for i in picks]).astype(np.int64)),
            torch.tensor([cls[i] for i in picks]))


ONSET_LEAD = 160        # notes: silence (10 ms) between a full receptive field and the attack
ONSET_FADE = 64         # notes: the attack fades in over 4 ms (the recordings start mid-wave)
ONSET_SHARE = 0.5       # notes: share of training windows that score an attack


def with_lead_in(data: AudioSet, receptive_field: int) -> AudioSet:
    """Single notes start at their attack. Generation starts from a receptive field of silence,
    so each note gets that much silence plus ``ONSET_LEAD`` samples in front: the model then
    learns to strike the note out of silence (without it, it only ever continued a sounding
    note, and from silence it stayed silent). The recordings begin abruptly, mid-waveform (the
    first sample is typically 0.016 and up to 0.1 of full scale), a jump no model can time or
    size from silence, so each note also fades in over ``ONSET_FADE`` samples (a half-cosine
    ramp). Pieces and speech are unchanged."""
    if data.name != "notes":
        return data
    pad = np.full(receptive_field + ONSET_LEAD, SILENCE, np.uint8)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ONSET_FADE) + 1) / (ONSET_FADE + 1))

    def prepare(codes: np.ndarray) -> np.ndarray:
        head = mu_law_decode(codes[:ONSET_FADE].astype(np.int64)) * ramp[:len(codes)]
        faded = np.concatenate([mu_law_encode(head).astype(np.uint8), codes[ONSET_FADE:]])
        return np.concatenate([pad, faded])

    data.train = [prepare(c) for c in data.train]
    data.val = [prepare(c) for c in data.val]
    return data


@torch.inference_mode()
def evaluate(model: WaveNet, windows: torch.Tensor, classes: torch.Tensor, batch: int = 8) -> float:
    model.eval()
    start = model.config.receptive_field - 1
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        codes = windows[i:i + batch]
        cls = classes[i:i + batch] if model.config.classes else None
        logits = model(codes, cls)
        n = codes.shape[0] * (codes.shape[1] - start - 1)
        total += float(bits_per_sample(logits, codes, start)) * n
        count += n
    return total / count


def histogram_baseline(data: AudioSet) -> dict:
    """The mu-law histogram of the training clips as a model: its entropy, and its cross-entropy
    on the held-out clips (bits per sample); uniform guessing costs 8 bits."""
    counts = np.bincount(np.concatenate(data.train), minlength=256).astype(np.float64) + 1
    p = counts / counts.sum()
    held = np.bincount(np.concatenate(data.val), minlength=256).astype(np.float64)
    return dict(uniform_bits=8.0, histogram_entropy_bits=float(-(p * np.log2(p)).sum()),
                histogram_heldout_bits=float(-(held * np.log2(p)).sum() / held.sum()))


def lr_at(step: int, args) -> float:
    warm = min(1.0, (step + 1) / 200)
    return warm * max(args.lr_min, args.lr * 0.5 ** (step / args.half_life))


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = load_audio(args.data)
    if args.tiny:
        data.train, data.val = data.train[:6], data.val[:2]
        data.train_classes, data.val_classes = data.train_classes[:6], data.val_classes[:2]
    conditioned = args.data == "notes"
    sizes = TINY if args.tiny else dict(residual_channels=args.channels,
                                        gate_channels=args.channels, skip_channels=args.skip,
                                        head_channels=args.head, cycle=args.cycle,
                                        stacks=args.stacks)
    names = [f"MIDI {p}" for p in range(21, 109)] if conditioned else []
    config = WaveNetConfig(**sizes, classes=88 if conditioned else 0, class_names=names,
                           sample_rate=data.sample_rate, dataset=AUDIO_SETS[args.data][1])
    model = WaveNet(config).to(device)
    data = with_lead_in(data, config.receptive_field)
    ema = WeightAverage(model, args.ema, warmup=True)  # Polyak averaging, as in the paper
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    run = RunDir(args.run_dir or f"runs/wavenet-{args.data}{'-tiny' if args.tiny else ''}")
    step, best, seen = 0, math.inf, 0
    if (state := run.resume()) is not None:
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, best, seen = state["step"], state["best"], state["seen"]
        print(f"resumed {run.path} at step {step} (best held-out {best:.4f} bits/sample)", flush=True)
    rf = config.receptive_field
    length = rf + args.window
    val_x, val_c = validation_windows(data, rf + (2000 if args.tiny else 8000),
                                      4 if args.tiny else args.val_windows)
    val_x, val_c = val_x.to(device), val_c.to(device)
    rng = np.random.default_rng(args.seed + step)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    budget, last_eval = Budget(args.minutes), time.time()
    running, running_n = 0.0, 0
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, receptive field {rf} "
          f"samples ({1000 * rf / config.sample_rate:.0f} ms); {data.seconds('train'):.0f} s "
          f"training, {data.seconds('val'):.0f} s held out", flush=True)
    while step < args.steps:
        model.train()
        x, c = batch_of(data.train, data.train_classes, length, args.batch_size, rng,
                        args.onset_share if conditioned else 0.0)
        x, c = x.to(device, non_blocking=True), c.to(device, non_blocking=True)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        with autocast:
            logits = model(x, c if conditioned else None)
        loss = bits_per_sample(logits, x, rf - 1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model, step)
        step += 1
        seen += args.batch_size * args.window
        running += loss.item()
        running_n += 1
        out_of_time = budget.spent()
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            val_ema, val_raw = evaluate(ema.module, val_x, val_c), evaluate(model, val_x, val_c)
            val = min(val_ema, val_raw)
            record = dict(step=step, train_bits=running / running_n, val_bits=val,
                          val_bits_ema=val_ema, val_bits_raw=val_raw,
                          lr=lr_at(step, args), samples_seen=seen,
                          seconds=time.time() - last_eval)
            running, running_n, last_eval = 0.0, 0, time.time()
            if val < best:
                best = val
                save_pretrained(ema.module if val_ema <= val_raw else model, args.out, half=True,
                                training=dict(step=step, samples_seen=seen, val_bits=val,
                                              weights="EMA" if val_ema <= val_raw else "raw",
                                              batch_size=args.batch_size, window=args.window,
                                              device=device.type,
                                              command=command_line(args)))
            run.log(record)
            print(f"step {step} train {record['train_bits']:.4f} held-out {val_raw:.4f} "
                  f"(EMA {val_ema:.4f}) bits/sample "
                  f"(best {best:.4f}) lr {record['lr']:.2e} {record['seconds']:.0f}s", flush=True)
            run.save(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                     step=step, best=best, seen=seen)
        if out_of_time:
            budget.announce()
            break
    return Path(args.out)


def command_line(args) -> str:
    return (f"python -m train.wavenet --data {args.data} --channels {args.channels} "
            f"--skip {args.skip} --head {args.head} --cycle {args.cycle} --stacks {args.stacks} "
            f"--batch-size {args.batch_size} --window {args.window} --lr {args.lr} "
            f"--out {args.out}{' --bf16' if args.bf16 else ''}{' --tiny' if args.tiny else ''}"
            f"{f' --onset-share {args.onset_share:g}' if args.data == 'notes' else ''}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(AUDIO_SETS), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--run-dir")
    p.add_argument("--channels", type=int, default=32, help="residual and gate channels")
    p.add_argument("--skip", type=int, default=64)
    p.add_argument("--head", type=int, default=128)
    p.add_argument("--cycle", type=int, default=10)
    p.add_argument("--stacks", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--window", type=int, default=8000, help="scored samples per window")
    p.add_argument("--steps", type=int, default=None, help="(200000; tiny: 30)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-4)
    p.add_argument("--half-life", type=float, default=15000, help="lr halves every N steps")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--eval-every", type=int, default=None, help="(250; tiny: 10)")
    p.add_argument("--val-windows", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    add_device_flag(p)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--onset-share", type=float, default=ONSET_SHARE,
                   help="notes: share of training windows that score an attack")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with bf16 units)")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--card-only", action="store_true")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 30 if args.tiny else 200_000
    if args.eval_every is None:
        args.eval_every = 10 if args.tiny else 250
    if args.tiny:
        args.window, args.batch_size, args.ema = 1000, 2, 0.9
    if args.card_only:
        from .wavenet_card import write_card
        write_card(Path(args.out), args.data)
        return
    train(args)


if __name__ == "__main__":
    main()
