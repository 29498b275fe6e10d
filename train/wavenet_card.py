"""Measure a trained WaveNet and write its card: held-out bits per sample against the uniform
and histogram baselines, generation speed, generated examples (FLAC + spectrograms).

    python -m train.wavenet --data speech --card-only --out weights/wavenet-speech
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from PIL import Image

from models.audio import SILENT, UNVOICED, VOICED, estimate_pitch, figure, frame_kinds, voiced_share
from models.fastwavenet import FastWaveNet
from models.hub import from_pretrained
from models.wavenet import WaveNet, mu_law_decode

from .data import load_audio
from .wavenet import (ONSET_FADE, ONSET_LEAD, evaluate, histogram_baseline, validation_windows,
                      with_lead_in)

TEMPERATURES = (1.0, 0.9, 0.7)
EXAMPLE_SECONDS = 4.0
TITLES = {"speech": "WaveNet, LJSpeech speech", "piano": "WaveNet, piano pieces",
          "notes": "WaveNet, pitch-conditioned piano notes"}
# the run folders whose logs make up each model's training (the notes model was forked twice:
# when the lead-in of silence before each attack was added, and when the attack got its fade-in)
RUNS = {"speech": ["runs/wavenet-speech"], "piano": ["runs/wavenet-piano"],
        "notes": ["runs/wavenet-notes", "runs/wavenet-notes-onset", "runs/wavenet-notes-fade"]}
PITCH_SECONDS = 1.5


def measure(model: WaveNet, data_name: str) -> dict:
    rf = model.config.receptive_field
    data = with_lead_in(load_audio(data_name), rf)
    windows, classes = validation_windows(data, rf + 8000, limit=10_000)
    torch.set_num_threads(2)
    t = time.time()
    val = evaluate(model, windows, classes)
    scored = windows.shape[0] * (windows.shape[1] - rf)
    return dict(val_bits=val, val_windows=int(windows.shape[0]), val_scored_samples=int(scored),
                val_seconds_evaluated=scored / model.config.sample_rate,
                heldout_clips=len(data.val), heldout_seconds=data.seconds("val"),
                train_seconds=data.seconds("train"), eval_seconds=time.time() - t,
                **histogram_baseline(data))


def speed(model: WaveNet, cls) -> float:
    fast = FastWaveNet(model, cls)
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
    made = pooled_voicing((mu_law_decode(FastWaveNet(model, None).generate(
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
        codes = FastWaveNet(model, None).generate(n, 1.0, primer=clip[:p0].astype(np.int64),
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


def pitch_accuracy(model: WaveNet, pitches=range(21, 109), seed: int = 0,
                   seconds: float = PITCH_SECONDS) -> dict:
    """Ask for each pitch, generate from silence, and measure the note that comes out
    (:func:`models.audio.estimate_pitch`): the share within half a semitone, the share off by
    whole octaves, the share that stays silent, the median error in cents, and when the attack
    (the loudest 20 ms) comes."""
    names, rate = model.config.class_names, model.config.sample_rate
    rows = []
    for midi in pitches:
        cls = names.index(f"MIDI {midi}")
        codes = FastWaveNet(model, cls).generate(int(seconds * rate), 1.0,
                                                 generator=torch.Generator().manual_seed(seed))
        audio = mu_law_decode(codes)
        got = estimate_pitch(audio, rate)
        frame = rate // 50
        energy = (audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
        rows.append(dict(midi=midi, estimate=got, attack_ms=1000 * int(np.argmax(energy)) / 50))
    errors = np.array([r["estimate"] - r["midi"] for r in rows if r["estimate"] is not None])
    octave = np.abs(errors - 12 * np.round(errors / 12))
    n = len(rows)
    return dict(pitches=n, seed=seed, seconds=seconds,
                within_half_semitone=float((np.abs(errors) <= 0.5).sum() / n),
                octave_off=float(((np.abs(errors) > 0.5) & (octave <= 0.5)).sum() / n),
                silent=float(sum(r["estimate"] is None for r in rows) / n),
                median_abs_cents=float(np.median(np.abs(errors)) * 100) if len(errors) else None,
                median_attack_ms=float(np.median([r["attack_ms"] for r in rows
                                                  if r["estimate"] is not None] or [np.nan])),
                rows=rows)


def pitch_figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["estimate"] is not None]
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=100)
    ax.plot([20, 109], [20, 109], color="#cbd5e1", lw=1, label="asked = played")
    ax.scatter([r["midi"] for r in rows], [r["estimate"] for r in rows], s=14, color="#4f46e5",
               label="measured pitch of the generated note")
    silent = [r["midi"] for r in result["rows"] if r["estimate"] is None]
    if silent:
        ax.scatter(silent, [21] * len(silent), marker="x", color="#dc2626", label="silent")
    ax.set(xlabel="pitch asked for (MIDI)", ylabel="pitch played (MIDI, estimated)",
           title=f"{100 * result['within_half_semitone']:.0f}% within half a semitone")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def examples(model: WaveNet, out: Path, data_name: str) -> list[dict]:
    """Generated audio at a few temperatures and seeds (only generated audio: no training data)."""
    folder = out / "samples"
    folder.mkdir(exist_ok=True)
    rate = model.config.sample_rate
    rows = []
    if data_name == "notes":
        names = model.config.class_names
        plan = [(names.index(p), 1.0, 0) for p in ("MIDI 48", "MIDI 60", "MIDI 72", "MIDI 84")]
    else:
        plan = [(None, 1.0, 0), (None, 1.0, 1), (None, 0.9, 2), (None, 0.7, 0)]
    for cls, temperature, seed in plan:
        codes = FastWaveNet(model, cls).generate(int(EXAMPLE_SECONDS * rate), temperature,
                                                 generator=torch.Generator().manual_seed(seed))
        audio = mu_law_decode(codes)
        stem = f"t{temperature:g}_seed{seed}" + (f"_{model.config.class_names[cls].split()[-1]}"
                                                  if cls is not None else "")
        sf.write(folder / f"{stem}.flac", audio, rate, subtype="PCM_16")
        label = f"temperature {temperature:g}, seed {seed}" + (
            f", {model.config.class_names[cls]}" if cls is not None else "")
        Image.fromarray(figure(audio, rate, 0, f"{TITLES[data_name]}: {label}")).save(
            folder / f"{stem}.png")
        rows.append(dict(stem=stem, label=label, rms=float(np.sqrt((audio ** 2).mean())),
                         silent_share=float((np.abs(audio) < 0.01).mean())))
    return rows


EXPECT = {
    "speech": "A small model trained for hours on a CPU: it babbles in the rhythm of syllables, "
              "hiss-like (unvoiced) sounds and pauses with short low-frequency bursts, but has "
              "only begun to learn voicing (measured below), so its babble shows no clear formant "
              "bands above the first. No words: it has no text.",
    "piano": "A small model trained for hours on a CPU learns local sound (pitch, attacks, decay) "
             "but not melodies: expect piano-like tones and runs, not music.",
    "notes": "Each note is one class of 88 (an embedding added to every layer's gate). The "
             "recordings start at the attack, mid-wave; every training and held-out clip gets a "
             f"receptive field of silence plus {ONSET_LEAD} samples in front and fades in over "
             f"{ONSET_FADE} samples (`train.wavenet.with_lead_in`), and half of the training "
             "windows score an attack, so the model learns to strike the note out of silence, "
             "which is where generation starts. Three phases: steps 1-3,031 without the lead-in "
             "(started from silence, that model stayed all but silent); 3,031-3,750 with the "
             "lead-in but an abrupt first sample (still silent: it cannot guess a jump); then "
             "with the fade-in. The held-out clips are velocity 60 of every 4th pitch; velocity "
             "100 of those pitches was trained on, so the held-out loss measures a new loudness, "
             "not a new pitch.",
}

CURVE_NOTES = {"notes": "\nThe held-out clips changed with the phases (up to step 3,031 without "
                        "the attacks, to 3,750 with abrupt ones): compare figures within a "
                        "phase.\n"}


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


def diagnosis_section(d: dict) -> str:
    """The card's account of :func:`voicing_diagnosis`; its conclusion follows the numbers."""
    tf = d["teacher_forced"]
    rows = "\n".join(f"| {kind} | {tf[kind]['frames']:,} | "
                     f"{'-' if tf[kind]['bits'] is None else format(tf[kind]['bits'], '.2f')} |"
                     for kind in ("silent", "unvoiced", "voiced"))
    voiced, unvoiced = tf["voiced"]["bits"], tf["unvoiced"]["bits"]
    reads_voice = voiced is not None and unvoiced is not None and voiced < unvoiced
    keeps_voice = d["primed_voiced"] >= 0.5 * d["real_next_voiced"]
    if reads_voice and not keeps_voice:
        verdict = ("It predicts voiced speech better than hiss while it reads the real past, yet "
                   f"the first {d['seconds']:g} s it writes after a real voice are mostly "
                   "unvoiced: once it reads its own samples, each draw strays a little from a "
                   "periodic waveform, and its hold on the pitch period is, it seems, too weak "
                   "to pull the next samples back.")
    elif keeps_voice:
        verdict = "It keeps a real voice going once it is given one."
    else:
        verdict = "It does not yet predict voiced frames better than hiss."
    return f"""
**Where the voice is lost.** Reading the real past (teacher forcing) on {d['clips']} held-out
clips, bits per sample inside 40 ms frames of each kind:

| frames | count | bits per sample |
|---|---|---|
{rows}

Continuing a real voice: after {d['primer_seconds']:g} s of each of {d['primed_clips']} held-out
clips, **{100 * d['primed_voiced']:.0f}%** of the audible frames of the first {d['seconds']:g} s
WaveNet writes are voiced (the recordings' own next {d['seconds']:g} s: {100 * d['real_next_voiced']:.0f}%).
{verdict}
"""


def write_card(out: Path, data_name: str) -> None:
    model = from_pretrained(WaveNet, out)
    c = model.config
    raw = json.loads((out / "config.json").read_text())
    training = raw.get("training", {})
    log = []
    for run in map(Path, RUNS[data_name]):
        if (run / "log.jsonl").exists():
            log += [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    hours = sum(r["seconds"] for r in log) / 3600
    metrics = measure(model, data_name)
    cls = c.class_names.index("MIDI 60") if c.classes else None
    metrics["fast_samples_per_second"] = speed(model, cls)
    metrics["real_time_factor"] = metrics["fast_samples_per_second"] / c.sample_rate
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    metrics["training_hours"] = hours
    metrics["training"] = training
    rows = examples(model, out, data_name)
    metrics["examples"] = rows
    extra = ""
    if data_name == "speech":
        v = metrics["voicing"] = voicing(model)
        metrics["voicing_diagnosis"] = voicing_diagnosis(model)
        extra = f"""
## Is it voiced?

Formants show where speech is voiced: vowels and voiced consonants are periodic at the voice's
pitch, and their harmonics carry the formants. Share of audible 40 ms frames that are periodic
(normalised autocorrelation above 0.5 at 70-400 Hz; `models.audio.voiced_share`):

| audio | audible frames | voiced |
|---|---|---|
| real held-out speech, through the same 8-bit mu-law | {v['real_frames']:,} | {100 * v['real_voiced']:.1f}% |
| **this WaveNet**, {v['generated_clips']} x {v['seconds']:g} s from silence, temperature 1 | {v['generated_frames']:,} | **{100 * v['generated_voiced']:.1f}%** |
{diagnosis_section(metrics["voicing_diagnosis"])}"""
    if data_name == "notes":
        pitch = metrics["pitch"] = pitch_accuracy(model)
        pitch_figure(pitch, out / "samples" / "pitch.png")
        cents = ("n/a" if pitch["median_abs_cents"] is None
                 else f"{pitch['median_abs_cents']:.0f} cents")
        extra = f"""
## Does it play the note it is asked for?

Each of the {pitch['pitches']} pitches (MIDI 21-108) was asked for once (seed {pitch['seed']},
temperature 1, {pitch['seconds']:g} s from silence), and the pitch of what came out was measured
by harmonic summation (`models.audio.estimate_pitch`; on the 176 real training notes it is within
half a semitone of the label every time).

| measure | value |
|---|---|
| **played within half a semitone of the pitch asked for** | **{100 * pitch['within_half_semitone']:.0f}%** |
| off by whole octaves | {100 * pitch['octave_off']:.0f}% |
| silent (nothing above -60 dB) | {100 * pitch['silent']:.0f}% |
| median error (notes that sound) | {cents} |
| median time of the attack (loudest 20 ms; notes that sound) | {pitch['median_attack_ms']:.0f} ms |

![pitch asked for against pitch played](samples/pitch.png)
"""
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rf = c.receptive_field
    curve = "\n".join(f"| {r['step']:,} | "
                      f"{'-' if r['train_bits'] is None else format(r['train_bits'], '.3f')} | "
                      f"{r['val_bits']:.3f} |" for r in curve_rows(log))
    sample_lines = "\n".join(f"* `samples/{r['stem']}.flac` ({r['label']}; RMS {r['rms']:.3f}, "
                             f"{100 * r['silent_share']:.0f}% of samples near silence)\n\n"
                             f"  ![{r['label']}](samples/{r['stem']}.png)" for r in rows)
    cond = (f"; global conditioning on {c.classes} MIDI pitches (an embedding added to every "
            f"layer's gate)" if c.classes else "")
    card = f"""---
license: mit
tags: [wavenet, audio, mu-law, pytorch, generative-deep-learning-studio]
---
# {TITLES[data_name]}

A WaveNet (van den Oord et al., 2016) trained by the Generative Deep Learning Studio for its
WaveNet audio tab: 8-bit mu-law audio as a 256-way softmax, sampled one sample at a time.

* **Architecture**: causal input convolution (width 2) on the one-hot codes; {c.layers}
  residual layers, dilations 1, 2, 4 ... {max(c.dilations)} repeated {c.stacks} times, each a
  width-2 dilated causal convolution into gated tanh x sigmoid units ({c.gate_channels} channels),
  residual 1x1 ({c.residual_channels} channels) and skip 1x1 ({c.skip_channels} channels)
  convolutions; head ReLU, 1x1 ({c.head_channels}), ReLU, 1x1 (256){cond}.
  **Receptive field {rf:,} samples = {1000 * rf / c.sample_rate:.0f} ms** at
  {c.sample_rate / 1000:g} kHz. {metrics['parameters']:,} parameters, fp16 safetensors.
* **Data**: {c.dataset}. Held out: {metrics['heldout_clips']} clips
  ({metrics['heldout_seconds']:.0f} s); trained on {metrics['train_seconds']:.0f} s.
* **Training**: cross-entropy on the next sample, counted only where an output sees a full
  receptive field; random windows of one receptive field + {training.get('window', '?')}
  samples, batch {training.get('batch_size', '?')}, Adam (lr 1e-3 halving every 15k steps, floor
  1e-4), gradient clipping 1, bf16 autocast; exported: {"the exponential moving average (up to 0.999) of the trained weights" if training.get("weights", "EMA") == "EMA" else "the trained weights (they scored better than their moving average)"}. {training.get('step', 0):,} steps, {training.get('samples_seen', 0) / 1e6:.0f} M scored
  samples ({training.get('samples_seen', 0) / c.sample_rate / 3600:.1f} h of audio),
  {hours:.1f} h on a 2-core CPU (no GPU was lent).
  Command: `{training.get('command', '')}` (rerun to resume).

## Held-out metrics (bits per sample; lower is better)

| model | bits per sample |
|---|---|
| uniform guess over 256 levels | 8.000 |
| mu-law histogram of the training audio: its entropy | {metrics['histogram_entropy_bits']:.3f} |
| mu-law histogram as a model of the held-out audio | {metrics['histogram_heldout_bits']:.3f} |
| **this WaveNet** ({metrics['val_windows']} held-out windows, {metrics['val_seconds_evaluated']:.0f} s scored) | **{metrics['val_bits']:.3f}** |

## Speed

Fast generation (per-layer buffers in a compiled numba loop, one thread): **{metrics['fast_samples_per_second']:,.0f}
samples per second = {metrics['real_time_factor']:.1f}x real time** on the 2-core CPU it was
measured on (see `benchmarks/wavenet.py` for the naive and eager-PyTorch comparisons).

## What was traded

The size was chosen for the speed goal: with {c.residual_channels} residual channels the compiled
loop writes audio {metrics['real_time_factor']:.1f}x as fast as it plays on one CPU core, at 16 kHz (the data's rate;
8 kHz would have halved the cost but muffled the piano's top octave and the speech's fricatives).
Wider layers (48 or 64 channels) measured 1.1x and 0.9x real time (random weights, idle CPU):
too close to keep streaming.
**Status**: an early checkpoint of a run that goes on (`runs/wavenet-*`, resumable); the
held-out loss was still falling when it was exported.

{EXPECT[data_name]}
{extra}
## Learning curve

| step | training bits | held-out bits |
|---|---|---|
{curve}
{CURVE_NOTES.get(data_name, "")}

## Generated examples ({EXAMPLE_SECONDS:g} s each, from silence)

{sample_lines}
"""
    (out / "README.md").write_text(card)
    print(card)
