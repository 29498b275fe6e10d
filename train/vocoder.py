"""Train the two speech vocoders on LJSpeech (the WaveNet tab's held-out clips stay held out),
and measure them beside Griffin-Lim.

    python -m train.vocoder --model gan --out runs/gan-vocoder-export --minutes 120
    python -m train.vocoder --model wavenet --out runs/wavenet-vocoder-export --bf16
    python -m train.vocoder --model gan --tiny --out /tmp/gv          # seconds, for tests
    python -m train.vocoder --measure weights/gan-vocoder-speech      # metrics.json, figures

GAN (HiFi-GAN's recipe, narrower): random 0.5 s segments; the generator reads the segment's
frames of the whole clip's log-mel; loss 45 x mel L1 + the multi-resolution STFT loss, and from
``--adv-start`` on least-squares adversarial + 2 x feature matching against multi-period and
multi-scale discriminators. WaveNet: the tab's WaveNet with the log-mel as local conditioning
(``cond_features`` = 80, one frame per 160 samples), trained by :func:`train.wavenet.fit`.
Resumable from ``--run-dir`` (``last.pt``, ``log.jsonl``), as every trainer here.
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

from models.hub import save_pretrained
from models.mel import MEL, log_mel, log_mel_torch
from models.vocoder import (Discriminators, GanVocoder, GanVocoderConfig,
                            multi_resolution_stft_loss)
from models.wavenet import WaveNetConfig, mu_law_encode

from .common import Budget, RunDir, command_line, hardware, hours, pick_device
from .data import AUDIO_SETS, SpeechClips as Clips

DATASET = AUDIO_SETS["speech"][1]
TINY_GAN = dict(channels=16, upsample=(5, 4, 4, 2), resblock_kernels=(3,),
                resblock_dilations=((1, 3),))
SILENT_MEL = math.log(MEL.floor)
MEL_MEAN, MEL_STD = -5.9, 2.2        # of the held-out clips' log-mels (the WaveNet's input scale)


def segments(clips: list, mels: list, frames: int, size: int, rng: np.random.Generator,
             margin: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` random (audio of ``frames`` hops, its mel frames with ``margin`` more either
    side) pairs; a segment starts on a frame, so its mel is the whole clip's (silence beyond)."""
    hop, n = MEL.hop, frames * MEL.hop
    usable = [i for i, a in enumerate(clips) if len(a) > n]
    weights = np.array([len(clips[i]) - n for i in usable], np.float64)
    audio, mel = [], []
    for i in rng.choice(usable, size=size, p=weights / weights.sum()):
        k = int(rng.integers(0, (len(clips[i]) - n) // hop + 1))
        audio.append(clips[i][k * hop:k * hop + n])
        padded = np.pad(mels[i], ((0, 0), (margin, margin + frames)), constant_values=SILENT_MEL)
        mel.append(padded[:, k:k + frames + 2 * margin])
    return torch.from_numpy(np.stack(audio)), torch.from_numpy(np.stack(mel))


def mel_distance_db(fake: np.ndarray, real: np.ndarray) -> float:
    """Mean absolute log-mel difference in dB (20 log10 of magnitude)."""
    a, b = log_mel(fake), log_mel(real)
    n = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(a[:, :n] - b[:, :n])) * 20 / math.log(10))


# --------------------------------------------------------------------------- GAN
def gan_heldout(gen: GanVocoder, clips: Clips, limit: int = 6) -> tuple[float, float]:
    """Mean log-mel distance (dB) and wide-band PESQ (nan without the pesq package) of the
    first held-out clips, rebuilt from their mels."""
    gen.eval()
    mel_db, quality = [], []
    with torch.inference_mode():
        for audio, mel in list(zip(clips.val, clips.val_mel))[:limit]:
            fake = gen(torch.from_numpy(mel)[None])[0, :len(audio)].numpy()
            mel_db.append(mel_distance_db(fake, audio))
            quality.append(pesq_wb(fake, audio[:len(fake)]))
    gen.train()
    return float(np.mean(mel_db)), float(np.mean(quality))


def pesq_wb(fake: np.ndarray, real: np.ndarray) -> float:
    try:
        from pesq import pesq
        return float(pesq(MEL.sample_rate, real.astype(np.float64), fake.astype(np.float64), "wb"))
    except Exception:                      # not installed, or no speech found in the clip
        return float("nan")


def lsgan_d(real_outs, fake_outs) -> torch.Tensor:
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2)
               for (r, _), (f, _) in zip(real_outs, fake_outs))


def lsgan_g(fake_outs) -> torch.Tensor:
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake_outs)


def feature_matching(real_outs, fake_outs) -> torch.Tensor:
    return sum(F.l1_loss(ff, rf.detach()) for (_, rfs), (_, ffs) in zip(real_outs, fake_outs)
               for rf, ff in zip(rfs, ffs))


def train_gan(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    clips = Clips(args.tiny)
    sizes = TINY_GAN if args.tiny else dict(channels=args.channels)
    config = GanVocoderConfig(**sizes, dataset=DATASET)
    gen, disc = GanVocoder(config).to(device), Discriminators(width=args.disc_width).to(device)
    opt_g = torch.optim.AdamW(gen.parameters(), args.lr, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(disc.parameters(), args.lr, betas=(0.8, 0.99))
    run = RunDir(args.run_dir or f"runs/gan-vocoder{'-tiny' if args.tiny else ''}")
    # exported whenever held-out PESQ improves (the adversarial phase trades some log-mel
    # distance for a waveform that sounds real); without pesq, whenever -log-mel dB improves
    step, best, seen = 0, -math.inf, 0
    if (state := run.resume()) is not None:
        gen.load_state_dict(state["gen"]), disc.load_state_dict(state["disc"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        step, seen = state["step"], state["seen"]
        best = state.get("best_score", -math.inf)
        print(f"resumed {run.path} at step {step} (best held-out score {best:.3f})", flush=True)
    elif args.warm_start:
        step, seen = load_snapshot(args.warm_start, gen, disc)
        print(f"warm start from {args.warm_start} at step {step} (fresh optimisers)", flush=True)
    print(f"generator {sum(p.numel() for p in gen.parameters()):,} parameters, discriminators "
          f"{sum(p.numel() for p in disc.parameters()):,}; {clips.seconds('train'):.0f} s "
          f"training, {clips.seconds('val'):.0f} s held out", flush=True)
    rng = np.random.default_rng(args.seed + step)
    budget, last_eval = Budget(args.minutes), time.time()
    running: dict = {}
    frames = args.segment // MEL.hop
    while step < args.steps:
        real, mel = (t.to(device) for t in segments(clips.train, clips.train_mel, frames,
                                                    args.batch_size, rng))
        lr = args.lr * args.decay ** (step / 1000)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        fake = gen(mel)[:, :real.shape[1]]
        adversarial = step >= args.adv_start
        if adversarial:
            d_loss = lsgan_d(disc(real), disc(fake.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        mel_l1 = F.l1_loss(log_mel_torch(fake), log_mel_torch(real))
        loss = 45 * mel_l1 + args.stft_weight * multi_resolution_stft_loss(fake, real)
        parts = dict(mel_l1=mel_l1.item())
        if adversarial:
            disc.requires_grad_(False)          # the generator's step: no gradients for D
            with torch.no_grad():
                real_outs = disc(real)
            fake_outs = disc(fake)
            adv, fm = lsgan_g(fake_outs), feature_matching(real_outs, fake_outs)
            loss = loss + adv + 2 * fm
            parts.update(adv=adv.item(), fm=fm.item(), d=d_loss.item())
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 100.0)
        opt_g.step()
        disc.requires_grad_(True)
        step += 1
        seen += real.numel()
        for k, v in parts.items():
            running.setdefault(k, []).append(v)
        out_of_time = budget.spent()
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            val, quality = gan_heldout(gen, clips)
            score = quality if math.isfinite(quality) else -val
            record = dict(step=step, val_mel_db=val, val_pesq=quality, lr=lr, samples_seen=seen,
                          seconds=time.time() - last_eval,
                          **{k: float(np.mean(v)) for k, v in running.items()})
            running, last_eval = {}, time.time()
            run.log(record)
            if score > best:
                best = score
                save_pretrained(gen, args.out, half=False, training=dict(
                    step=step, samples_seen=seen, val_mel_db=val, val_pesq=quality,
                    batch_size=args.batch_size,
                    segment=args.segment, adv_start=args.adv_start, device=device.type,
                    hardware=hardware(device), hours=hours(run.records()), command=args.command))
            print(f"step {step} held-out log-mel {val:.2f} dB, PESQ {quality:.3f} (best score "
                  f"{best:.3f}) " +
                  " ".join(f"{k} {v:.3f}" for k, v in record.items()
                           if k in ("mel_l1", "adv", "fm", "d")) +
                  f" lr {lr:.2e} {record['seconds']:.0f}s", flush=True)
            run.save(gen=gen.state_dict(), disc=disc.state_dict(), opt_g=opt_g.state_dict(),
                     opt_d=opt_d.state_dict(), step=step, best_score=best, seen=seen)
        if out_of_time:
            budget.announce()
            break
    return Path(args.out)


def snapshot(run_dir: Path, folder: Path) -> None:
    """A GAN run's weights (generator and discriminators, fp16, each file under 10 MB) and its
    log, small enough to commit; ``--warm-start FOLDER`` goes on from them with fresh optimisers
    (the run state with Adam's moments is 60 MB)."""
    from safetensors.torch import save_file

    state = torch.load(Path(run_dir) / "last.pt", weights_only=True, map_location="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("gen", "disc"):
        save_file({k: v.half().contiguous() for k, v in state[name].items()},
                  str(folder / f"{name}.safetensors"))
    (folder / "state.json").write_text(json.dumps(dict(step=state["step"], seen=state["seen"])))
    # a run warm-started from this folder logs only its own steps: keep the history before them
    run_lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    first = min((json.loads(line)["step"] for line in run_lines), default=None)
    old = folder / "log.jsonl"
    kept = [line for line in (old.read_text().splitlines() if old.is_file() else [])
            if first is None or json.loads(line)["step"] < first]
    old.write_text("".join(line + "\n" for line in kept + run_lines))


def load_snapshot(folder, gen: GanVocoder, disc: Discriminators) -> tuple[int, int]:
    from safetensors.torch import load_file

    folder = Path(folder)
    for name, module in (("gen", gen), ("disc", disc)):
        module.load_state_dict({k: v.float() for k, v in
                                load_file(str(folder / f"{name}.safetensors")).items()})
    state = json.loads((folder / "state.json").read_text())
    return int(state["step"]), int(state["seen"])


# --------------------------------------------------------------------------- WaveNet
def train_wavenet(args) -> Path:
    from .wavenet import fit

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    clips = Clips(args.tiny)
    sizes = dict(residual_channels=8, gate_channels=8, skip_channels=8, head_channels=16,
                 cycle=4, stacks=1, cond_channels=8) if args.tiny else dict(
        residual_channels=args.channels, gate_channels=args.channels, skip_channels=args.skip,
        head_channels=args.head, cycle=args.cycle, stacks=args.stacks)
    config = WaveNetConfig(**sizes, dataset=DATASET, cond_features=MEL.n_mels, cond_hop=MEL.hop,
                           cond_pad=SILENT_MEL, cond_offset=MEL_MEAN, cond_scale=1 / MEL_STD)
    rf, m = config.receptive_field, config.cond_margin
    # windows start on a frame: rf context + the scored samples, rounded up to whole frames
    frames = -(-(rf + args.window) // MEL.hop)
    val_rng = np.random.default_rng(0)
    val_audio, val_mel = segments(clips.val, clips.val_mel, frames, args.val_windows, val_rng, m)
    val_codes = mu_law_encode(val_audio)

    def batch(rng):
        audio, mel = segments(clips.train, clips.train_mel, frames, args.batch_size, rng, m)
        return mu_law_encode(audio), mel

    def held(model) -> float:
        from models.wavenet import bits_per_sample
        model.eval()
        with torch.inference_mode():
            total = 0.0
            for i in range(0, len(val_codes), 8):
                x, c = val_codes[i:i + 8].to(device), val_mel[i:i + 8].to(device)
                total += bits_per_sample(model(x, c), x, rf - 1).item() * len(x)
        model.train()
        return total / len(val_codes)

    print(f"receptive field {rf} samples; {clips.seconds('train'):.0f} s training, "
          f"{clips.seconds('val'):.0f} s held out", flush=True)
    return fit(args, config, device, RunDir(args.run_dir or f"runs/wavenet-vocoder"
                                            f"{'-tiny' if args.tiny else ''}"), batch, held)


# --------------------------------------------------------------------------- command line
def main(argv=None) -> None:
    import sys

    from .wavenet import add_training_args

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("gan", "wavenet"))
    p.add_argument("--out")
    add_training_args(p, tiny_steps=20)
    p.add_argument("--segment", type=int, default=8000, help="GAN: samples per segment")
    p.add_argument("--adv-start", type=int, default=1000, help="GAN: steps before the adversary")
    p.add_argument("--disc-width", type=int, default=16)
    p.add_argument("--stft-weight", type=float, default=2.5)
    p.add_argument("--decay", type=float, default=0.98, help="GAN: lr factor per 1000 steps")
    p.add_argument("--measure", type=Path, metavar="FOLDER")
    p.add_argument("--snapshot", type=Path, nargs=2, metavar=("RUN_DIR", "FOLDER"),
                   help="GAN: write a run's weights and log, small enough to commit")
    # the GAN's own defaults for the flags it shares with the WaveNet trainer
    chosen, _ = p.parse_known_args(argv)
    if chosen.model == "gan":
        p.set_defaults(channels=128, lr=2e-4, batch_size=8)
    args = p.parse_args(argv)
    if args.snapshot:
        snapshot(*args.snapshot)
        return
    if args.measure:
        from .vocoder_measure import measure
        print(json.dumps(measure(args.measure), indent=2))
        return
    if not (args.model and args.out):
        p.error("--model and --out are required to train")
    gan = args.model == "gan"
    if args.steps is None:
        args.steps = 20 if args.tiny else 200_000
    if args.eval_every is None:
        args.eval_every = 10 if args.tiny else (200 if gan else 250)
    if gan:
        if args.tiny:
            args.segment, args.batch_size, args.adv_start, args.disc_width = 1600, 2, 5, 4
    elif args.tiny:
        args.window, args.batch_size, args.ema = 1000, 2, 0.9
    args.command = command_line("train.vocoder", argv)
    (train_gan if gan else train_wavenet)(args)


if __name__ == "__main__":
    main()
