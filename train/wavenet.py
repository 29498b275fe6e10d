"""Train a WaveNet on real audio (LJSpeech speech or piano pieces); measure it; export the
held-out example clips the tab ships.

    python -m train.wavenet --data speech --out weights/wavenet-speech --minutes 120
    python -m train.wavenet --data piano  --out weights/wavenet-piano  --minutes 120
    python -m train.wavenet --data speech --tiny --out /tmp/wn     # seconds, for tests
    python -m train.wavenet --measure weights/wavenet-speech       # metrics.json and samples/
    python -m train.card weights/wavenet-speech                    # then its card
    python -m train.wavenet --examples examples/speech             # held-out clips for the tab

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
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from PIL import Image

from models.audio import SILENT, UNVOICED, VOICED, figure, frame_kinds, voiced_share
from models.hub import from_pretrained, save_pretrained
from models.wavenet import FastWaveNet, WaveNet, WaveNetConfig, bits_per_sample, mu_law_decode

from .common import (Budget, RunDir, WeightAverage, add_device_flag, command_line, hardware, hours,
                     pick_device)
from .data import AUDIO_SETS, AudioSet, data_root, held_out, load_audio

TINY = dict(residual_channels=8, gate_channels=8, skip_channels=8, head_channels=16, cycle=4,
            stacks=1)


def batch_of(clips: list, length: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``size`` random windows of ``length`` codes (clips chosen in proportion to their length)."""
    usable = [i for i, c in enumerate(clips) if len(c) >= length]
    weights = np.array([len(clips[i]) - length + 1 for i in usable], dtype=np.float64)
    picks = rng.choice(usable, size=size, p=weights / weights.sum())
    rows = []
    for i in picks:
        start = rng.integers(0, len(clips[i]) - length + 1)
        rows.append(clips[i][start:start + length])
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def validation_windows(data: AudioSet, length: int, limit: int) -> torch.Tensor:
    """Non-overlapping windows spread evenly over the held-out clips (the same every time)."""
    windows = [clip[start:start + length] for clip in data.val
               for start in range(0, len(clip) - length + 1, length)]
    picks = np.linspace(0, len(windows) - 1, min(limit, len(windows))).astype(int)
    return torch.from_numpy(np.stack([windows[i] for i in picks]).astype(np.int64))


@torch.inference_mode()
def evaluate(model: WaveNet, windows: torch.Tensor, batch: int = 8) -> float:
    model.eval()
    start = model.config.receptive_field - 1
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        codes = windows[i:i + batch]
        logits = model(codes)
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
    """Linear warm-up over 200 steps (from a warm start's step, for its fresh optimiser), then
    halving every ``half_life`` steps down to ``lr_min``."""
    warm = min(1.0, (step - getattr(args, "warm_from", 0) + 1) / 200)
    return warm * max(args.lr_min, args.lr * 0.5 ** (step / args.half_life))


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = load_audio(args.data)
    if args.tiny:
        data.train, data.val = data.train[:6], data.val[:2]
    sizes = TINY if args.tiny else dict(residual_channels=args.channels,
                                        gate_channels=args.channels, skip_channels=args.skip,
                                        head_channels=args.head, cycle=args.cycle,
                                        stacks=args.stacks)
    config = WaveNetConfig(**sizes, sample_rate=data.sample_rate, dataset=AUDIO_SETS[args.data][1])
    rf = config.receptive_field
    val_x = validation_windows(data, rf + (2000 if args.tiny else 8000),
                               4 if args.tiny else args.val_windows).to(device)
    print(f"receptive field {rf} samples ({1000 * rf / config.sample_rate:.0f} ms); "
          f"{data.seconds('train'):.0f} s training, {data.seconds('val'):.0f} s held out", flush=True)
    return fit(args, config, device, RunDir(args.run_dir or f"runs/wavenet-{args.data}"
                                            f"{'-tiny' if args.tiny else ''}"),
               lambda rng: (batch_of(data.train, rf + args.window, args.batch_size, rng),),
               lambda model: evaluate(model, val_x))


def noisy(codes: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    """The input codes with Gaussian noise of ``sigma`` mu-law levels (rounded, clamped), as
    LPCNet trains: a model that reads a slightly wrong past leans on its conditioning and
    survives its own errors when it runs free. The targets stay clean."""
    if not sigma:
        return codes
    noise = torch.from_numpy(np.rint(rng.normal(0.0, sigma, tuple(codes.shape)))).to(codes)
    return (codes + noise).clamp_(0, 255)


def warm_start(model: WaveNet, ema: WeightAverage, path: str | Path) -> tuple[int, int]:
    """Start from another run's weights: its last.pt (read without pickles) or an exported
    folder. The projections that bring new inputs in (``cond_proj``, ``source_proj``, and any
    weight whose shape changed) start at zero, so the model begins as that run's function; the
    rest of a new branch keeps its fresh initialisation (zero there too would never learn).
    A fresh optimiser. Returns that run's step and samples seen."""
    path = Path(path)
    if path.is_dir():
        from safetensors.torch import load_file

        from models.hub import CONFIG_NAME, WEIGHTS_NAME

        weights = {k: v.float() for k, v in load_file(str(path / WEIGHTS_NAME)).items()}
        record = json.loads((path / CONFIG_NAME).read_text()).get("training", {})
        state = dict(model=weights, ema=weights, step=record.get("step", 0),
                     seen=record.get("samples_seen", 0))
    else:
        state = torch.load(path, weights_only=True, map_location="cpu")
    for target, weights in ((model, state["model"]), (ema.module, state["ema"])):
        own = target.state_dict()
        changed = {k for k, v in weights.items() if k in own and own[k].shape != v.shape}
        weights = {k: v for k, v in weights.items() if k not in changed}
        missing, unexpected = target.load_state_dict(weights, strict=False)
        if unexpected:
            raise ValueError(f"{path} has weights this model lacks: {unexpected}")
        with torch.no_grad():
            for name in missing:
                if name in changed or name.startswith(("cond_proj.", "source_proj.")):
                    target.get_parameter(name).zero_()
    return int(state["step"]), int(state["seen"])


def fit(args, config: WaveNetConfig, device: torch.device, run: RunDir,
        next_batch: Callable[[np.random.Generator], tuple], held_out: Callable[[WaveNet], float],
        select: Callable[[WaveNet], float] | None = None) -> Path:
    """The training loop every WaveNet trainer shares: resumable, Adam with a warm-up and a
    halving schedule, Polyak averaging, the better of the weights and their average exported
    whenever held-out bits improve (or, with ``select``, whenever its score of those weights,
    higher is better, beats the best so far). ``next_batch(rng)`` gives (codes, *conditioning)."""
    model = WaveNet(config).to(device)
    ema = WeightAverage(model, args.ema, warmup=True)  # Polyak averaging, as in the paper
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, best, seen, chosen = 0, math.inf, 0, -math.inf
    if (state := run.resume()) is not None:
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, best, seen = state["step"], state["best"], state["seen"]
        chosen = float(state.get("chosen", -math.inf))
        args.warm_from = int(state.get("warm_from", 0))
        print(f"resumed {run.path} at step {step} (best held-out {best:.4f} bits/sample)", flush=True)
    elif getattr(args, "warm_start", None):
        step, seen = warm_start(model, ema, args.warm_start)
        args.warm_from = step
        print(f"warm start from {args.warm_start} at step {step} (new inputs' projections at zero)", flush=True)
    rf = config.receptive_field
    rng = np.random.default_rng(args.seed + step)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    budget, last_eval = Budget(args.minutes), time.time()
    running, running_n = 0.0, 0
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    while step < args.steps:
        model.train()
        x, *cond = (t.to(device, non_blocking=True) for t in next_batch(rng))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        with autocast:
            logits = model(noisy(x, getattr(args, "input_noise", 0.0), rng), *cond)
        loss = bits_per_sample(logits, x, rf - 1)          # the clean next sample
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
            val_ema, val_raw = held_out(ema.module), held_out(model)
            val = min(val_ema, val_raw)
            record = dict(step=step, train_bits=running / running_n, val_bits=val,
                          val_bits_ema=val_ema, val_bits_raw=val_raw,
                          lr=lr_at(step, args), samples_seen=seen,
                          seconds=time.time() - last_eval)
            running, running_n, last_eval = 0.0, 0, time.time()
            better = val < best or getattr(args, "export_latest", False)
            if select is not None:
                record["select"] = select(ema.module if val_ema <= val_raw else model)
                better = record["select"] > chosen
                chosen = max(chosen, record["select"])
            run.log(record)
            if better:
                best = min(best, val)
                log = run.records()
                save_pretrained(ema.module if val_ema <= val_raw else model, args.out, half=True,
                                training=dict(step=step, samples_seen=seen, val_bits=val,
                                              weights="EMA" if val_ema <= val_raw else "raw",
                                              batch_size=args.batch_size, window=args.window,
                                              bf16=args.bf16, device=device.type,
                                              hardware=hardware(device), hours=hours(log),
                                              curve=curve_rows(log), command=args.command))
            print(f"step {step} train {record['train_bits']:.4f} held-out {val_raw:.4f} "
                  f"(EMA {val_ema:.4f}) bits/sample "
                  f"(best {best:.4f}) lr {record['lr']:.2e} {record['seconds']:.0f}s", flush=True)
            run.save(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                     step=step, best=best, seen=seen, warm_from=getattr(args, "warm_from", 0),
                     chosen=chosen)
        if out_of_time:
            budget.announce()
            break
    return Path(args.out)


# ---------------------------------------------------------------- measurements
EXAMPLE_SECONDS = 4.0
TITLES = {"speech": "WaveNet, LJSpeech speech", "piano": "WaveNet, piano pieces"}


def heldout(model: WaveNet, data_name: str) -> dict:
    """Bits per sample on every held-out window, against the histogram baselines."""
    rf = model.config.receptive_field
    data = load_audio(data_name)
    windows = validation_windows(data, rf + 8000, limit=10_000)
    t = time.time()
    val = evaluate(model, windows)
    scored = windows.shape[0] * (windows.shape[1] - rf)
    return dict(val_bits=val, val_windows=int(windows.shape[0]), val_scored_samples=int(scored),
                val_seconds_evaluated=scored / model.config.sample_rate,
                heldout_clips=len(data.val), heldout_seconds=data.seconds("val"),
                train_seconds=data.seconds("train"), eval_seconds=time.time() - t,
                **histogram_baseline(data))


def speed(model: WaveNet) -> float:
    """Samples per second of the compiled loop, one thread."""
    fast = FastWaveNet(model)
    fast.generate(1000, generator=torch.Generator().manual_seed(0))   # compile / warm
    t = time.perf_counter()
    fast.generate(32000, generator=torch.Generator().manual_seed(1))
    return 32000 / (time.perf_counter() - t)


def pooled_voicing(clips, rate: int) -> tuple[int, float]:
    """(audible frames, voiced share) over several recordings together (:func:`voiced_share`)."""
    counts = [voiced_share(c, rate) for c in clips]
    frames = sum(n for n, _ in counts)
    return frames, sum(n * v for n, v in counts) / max(frames, 1)


def voicing(model: WaveNet, seeds=range(6), seconds: float = EXAMPLE_SECONDS) -> dict:
    """Voiced share (:func:`models.audio.voiced_share`) of the real held-out speech, through the
    same 8-bit mu-law, against WaveNet's speech from silence at temperature 1: voiced frames are
    where formants show as harmonics."""
    rate = model.config.sample_rate
    real = pooled_voicing((mu_law_decode(c.astype(np.int64)) for c in load_audio("speech").val), rate)
    made = pooled_voicing((mu_law_decode(FastWaveNet(model).generate(
        int(seconds * rate), 1.0, generator=torch.Generator().manual_seed(seed))) for seed in seeds),
        rate)
    return dict(real_frames=real[0], real_voiced=real[1], generated_frames=made[0],
                generated_voiced=made[1], generated_clips=len(seeds), seconds=seconds)


def bits_by_kind(bits_at: np.ndarray, kinds: np.ndarray, frame: int, hop: int,
                 start: int) -> dict[int, list[float]]:
    """Mean bits per sample inside each frame (``bits_at[t]``: the bits of sample t given the
    real past; frame i covers samples ``i * hop`` to ``i * hop + frame``), grouped by the frame's
    kind (:func:`models.audio.frame_kinds`); frames starting before ``start`` are left out."""
    out: dict[int, list[float]] = {SILENT: [], UNVOICED: [], VOICED: []}
    for i, kind in enumerate(kinds):
        s = i * hop
        if s >= start and s + frame <= len(bits_at):
            out[int(kind)].append(float(bits_at[s:s + frame].mean()))
    return out


@torch.no_grad()
def voicing_diagnosis(model: WaveNet, clips: int = 10, primed: int = 6,
                      primer_seconds: float = 1.0, seconds: float = 0.5) -> dict:
    """Where the voice is lost.  Teacher forcing: on held-out clips the model reads the real
    past; its bits per sample inside silent, unvoiced and voiced 40 ms frames.  Free running:
    the voiced share of the first ``seconds`` WaveNet writes after ``primer_seconds`` of a real
    held-out clip (temperature 1), against the real clip's own next ``seconds``."""
    rate, rf = model.config.sample_rate, model.config.receptive_field
    val = load_audio("speech").val
    groups: dict[int, list[float]] = {SILENT: [], UNVOICED: [], VOICED: []}
    for clip in val[:clips]:
        codes = torch.from_numpy(clip.astype(np.int64))[None]
        logits = model(codes).float()
        bits = F.cross_entropy(logits[..., :-1], codes[:, 1:], reduction="none")[0] / math.log(2)
        bits_at = np.concatenate([[np.nan], bits.numpy()])   # bits_at[t]: sample t given its past
        kinds, frame, hop = frame_kinds(mu_law_decode(clip.astype(np.int64)), rate, hop_ms=40)
        for kind, values in bits_by_kind(bits_at, kinds, frame, hop, start=rf).items():
            groups[kind] += values
    p0, n = int(primer_seconds * rate), int(seconds * rate)
    made, real = [], []
    for k, clip in enumerate([c for c in val if len(c) >= p0 + n][:primed]):
        codes = FastWaveNet(model).generate(n, 1.0, primer=clip[:p0].astype(np.int64),
                                                  generator=torch.Generator().manual_seed(k))
        made.append(mu_law_decode(codes))
        real.append(mu_law_decode(clip[p0:p0 + n].astype(np.int64)))
    (made_frames, made_voiced), (real_frames, real_voiced) = (pooled_voicing(made, rate),
                                                              pooled_voicing(real, rate))

    names = {SILENT: "silent", UNVOICED: "unvoiced", VOICED: "voiced"}
    return dict(teacher_forced={names[k]: dict(frames=len(v), bits=float(np.mean(v)) if v else None)
                                for k, v in groups.items()},
                clips=min(clips, len(val)), primed_clips=len(made), primer_seconds=primer_seconds,
                seconds=seconds, primed_voiced=made_voiced, primed_frames=made_frames,
                real_next_voiced=real_voiced, real_next_frames=real_frames)


def examples(model: WaveNet, out: Path, data_name: str) -> list[dict]:
    """Generated audio at a few temperatures and seeds (only generated audio: no training data)."""
    folder = out / "samples"
    folder.mkdir(exist_ok=True)
    rate = model.config.sample_rate
    rows = []
    for temperature, seed in ((1.0, 0), (1.0, 1), (0.9, 2), (0.7, 0)):
        codes = FastWaveNet(model).generate(int(EXAMPLE_SECONDS * rate), temperature,
                                            generator=torch.Generator().manual_seed(seed))
        audio = mu_law_decode(codes)
        stem = f"t{temperature:g}_seed{seed}"
        sf.write(folder / f"{stem}.flac", audio, rate, subtype="PCM_16")
        label = f"temperature {temperature:g}, seed {seed}"
        Image.fromarray(figure(audio, rate, 0, f"{TITLES[data_name]}: {label}")).save(
            folder / f"{stem}.png")
        rows.append(dict(stem=stem, label=label, rms=float(np.sqrt((audio ** 2).mean())),
                         silent_share=float((np.abs(audio) < 0.01).mean())))
    return rows


def curve_rows(log: list[dict], rows: int = 12) -> list[dict]:
    """About ``rows`` evenly spaced log records and the last one, each once.  A record written
    when a run was stopped between two log points averages its training bits over a few steps
    only; it is left out unless it is the last (its validation is a full measurement), and then
    its training bits are dropped (None)."""
    if not log:
        return []
    gaps = sorted(b["step"] - a["step"] for a, b in zip(log, log[1:]))
    usual = gaps[len(gaps) // 2] if gaps else 0
    full = [r for i, r in enumerate(log)
            if i == 0 or i == len(log) - 1 or r["step"] - log[i - 1]["step"] >= usual / 2]
    picked = full[:: max(1, len(full) // rows)]
    picked = picked if picked[-1] is full[-1] else picked + full[-1:]
    if len(log) > 1 and log[-1]["step"] - log[-2]["step"] < usual / 2:
        picked[-1] = dict(picked[-1], train_bits=None)
    return picked


def measure(folder: Path) -> dict:
    """Held-out bits per sample against two baselines, the compiled loop's speed, generated
    examples (FLAC and spectrograms in samples/); for speech, how voiced it is and where the
    voice is lost. Writes metrics.json."""
    folder = Path(folder)
    model = from_pretrained(WaveNet, folder)
    data_name = next(k for k, (_, title) in AUDIO_SETS.items() if title == model.config.dataset)
    metrics = dict(data=data_name, title=TITLES[data_name], **heldout(model, data_name))
    metrics["fast_samples_per_second"] = speed(model)
    metrics["real_time_factor"] = metrics["fast_samples_per_second"] / model.config.sample_rate
    metrics["speed_hardware"] = hardware("cpu")
    metrics["example_seconds"] = EXAMPLE_SECONDS
    metrics["examples"] = examples(model, folder, data_name)
    if data_name == "speech":
        metrics["voicing"] = voicing(model)
        metrics["voicing_diagnosis"] = voicing_diagnosis(model)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def export_examples(folder: Path, count: int = 3, max_seconds: float = 4.5) -> list[dict]:
    """The first ``count`` held-out LJSpeech clips under ``max_seconds`` (public domain), copied
    as they are, with their transcripts in clips.json: the tab's primers, never trained on."""
    source = data_root() / "audio" / AUDIO_SETS["speech"][0]
    texts = dict(line.split("|")[:2] for line in (source / "metadata.csv").read_text().splitlines())
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for path in held_out("speech", sorted(source.glob("*.flac"))):
        if sf.info(path).duration <= max_seconds and len(clips) < count:
            (folder / path.name).write_bytes(path.read_bytes())
            clips.append(dict(id=path.stem, file=path.name, transcript=texts[path.stem],
                              seconds=round(sf.info(path).duration, 2)))
    (folder / "clips.json").write_text(json.dumps(clips, indent=2) + "\n")
    return clips

def add_training_args(p: argparse.ArgumentParser, tiny_steps: int) -> None:
    """The network's size, the schedule and the run's budget: every WaveNet trainer's flags."""
    p.add_argument("--run-dir")
    p.add_argument("--channels", type=int, default=32, help="residual and gate channels")
    p.add_argument("--skip", type=int, default=64)
    p.add_argument("--head", type=int, default=128)
    p.add_argument("--cycle", type=int, default=10)
    p.add_argument("--stacks", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--window", type=int, default=8000, help="scored samples per window")
    p.add_argument("--steps", type=int, default=None, help=f"(200000; tiny: {tiny_steps})")
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
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with bf16 units)")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--export-latest", action="store_true",
                   help="export at every evaluation, not only when held-out bits improve (with "
                        "--input-noise they measure clean inputs, not what the run optimises)")
    p.add_argument("--input-noise", type=float, default=0.0, metavar="LEVELS",
                   help="Gaussian noise (mu-law levels) on the input codes, not the targets")
    p.add_argument("--warm-start", metavar="LAST_PT",
                   help="a new run starts from this run state's weights (new ones at zero)")


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(AUDIO_SETS))
    p.add_argument("--out")
    add_training_args(p, tiny_steps=30)
    p.add_argument("--measure", type=Path, metavar="FOLDER",
                   help="measure an exported model: metrics.json and samples/")
    p.add_argument("--examples", type=Path, metavar="FOLDER",
                   help="copy a few short held-out speech clips there, for the tab")
    args = p.parse_args(argv)
    if args.measure or args.examples:
        if args.measure:
            print(json.dumps(measure(args.measure), indent=2))
        if args.examples:
            export_examples(args.examples)
        return
    if not (args.data and args.out):
        p.error("--data and --out are required to train")
    if args.steps is None:
        args.steps = 30 if args.tiny else 200_000
    if args.eval_every is None:
        args.eval_every = 10 if args.tiny else 250
    if args.tiny:
        args.window, args.batch_size, args.ema = 1000, 2, 0.9
    args.command = command_line("train.wavenet", argv)
    train(args)


if __name__ == "__main__":
    main()
