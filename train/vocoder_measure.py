"""Measure a vocoder beside Griffin-Lim and the original, on every held-out LJSpeech clip, each
rebuilt from the original's log-mel (:mod:`models.mel`):

* log-mel distance (dB) and mel-cepstral distortion (dB; WORLD envelopes, 24 SPTK mel-cepstra,
  alpha 0.42, on frames where the original is audible);
* F0 error (cents, frames voiced in both, WORLD DIO + StoneMask), the voiced/unvoiced decision
  error, and the voiced share of :func:`models.audio.voiced_share` (the WaveNet tab's);
* STOI (pystoi) and wide-band PESQ (pesq) against the original;
* speed: seconds of audio per second of computing, on this machine's cores.

    python -m train.vocoder --measure weights/gan-vocoder-speech
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from models.audio import figure_rows, voiced_share
from models.hub import CONFIG_NAME
from models.mel import MEL, griffin_lim, log_mel

from .data import SpeechClips

ALPHA, ORDER, FRAME_MS = 0.42, 24, 10.0
GL_ITERATIONS = 60


def world_features(audio: np.ndarray, rate: int = MEL.sample_rate):
    """(f0 per 10 ms frame, mel-cepstra (frames, ORDER + 1), frame energy in dB)."""
    import pysptk
    import pyworld

    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pyworld.dio(x, rate, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, rate)
    sp = pyworld.cheaptrick(x, f0, t, rate)
    mc = pysptk.sp2mc(sp, order=ORDER, alpha=ALPHA)
    hop = int(rate * FRAME_MS / 1000)
    energy = np.array([10 * np.log10(np.mean(x[max(0, i * hop - hop):i * hop + hop] ** 2) + 1e-12)
                       for i in range(len(f0))])
    return f0, mc, energy


def compare(rebuilt: np.ndarray, original: np.ndarray, reference=None) -> dict:
    """Every row's measures of one rebuilt clip against its original."""
    from pesq import pesq
    from pystoi import stoi

    n = min(len(rebuilt), len(original))
    y, x = np.asarray(rebuilt[:n], np.float64), np.asarray(original[:n], np.float64)
    f0x, mcx, ex = reference if reference is not None else world_features(x)
    f0y, mcy, _ = world_features(y)
    k = min(len(f0x), len(f0y))
    f0x, f0y, mcx, mcy, ex = f0x[:k], f0y[:k], mcx[:k], mcy[:k], ex[:k]
    audible = ex > ex.max() - 50
    diff = mcx[audible, 1:] - mcy[audible, 1:]
    mcd = float(np.mean(10 / math.log(10) * np.sqrt(2 * (diff ** 2).sum(axis=1))))
    both = (f0x > 0) & (f0y > 0)
    cents = np.abs(1200 * np.log2(f0y[both] / f0x[both])) if both.any() else np.zeros(0)
    vuv = float(np.mean((f0x[audible] > 0) != (f0y[audible] > 0)))
    a, b = log_mel(y.astype(np.float32)), log_mel(x.astype(np.float32))
    mel_db = float(np.mean(np.abs(a - b)) * 20 / math.log(10))
    try:
        pesq_wb = float(pesq(MEL.sample_rate, x, y, "wb"))
    except Exception:                     # pesq refuses clips it finds no speech in
        pesq_wb = float("nan")
    return dict(mel_db=mel_db, mcd_db=mcd,
                f0_cents=float(np.mean(cents)) if cents.size else float("nan"),
                vuv_error=vuv, voiced_share=voiced_share(y.astype(np.float32), MEL.sample_rate)[1],
                stoi=float(stoi(x, y, MEL.sample_rate, extended=False)), pesq=pesq_wb)


def average(rows: list[dict]) -> dict:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def vocoder_of(folder: Path):
    """(label, function mel -> audio, its name in metrics) for a vocoder checkpoint folder."""
    model_type = json.loads((folder / CONFIG_NAME).read_text())["model_type"]
    if model_type == "gan-vocoder":
        from models.vocoder import GanVocoder

        gan = GanVocoder.from_pretrained(str(folder))
        return "GAN vocoder", lambda mel: gan(mel)[:(mel.shape[1] - 1) * MEL.hop], "gan"
    from models.vocoder import VocoderPipeline
    from models.wavenet import WaveNetPipeline

    pipe = VocoderPipeline(wavenet=WaveNetPipeline.from_pretrained(str(folder)))
    return ("WaveNet vocoder",
            lambda mel: pipe.wavenet_vocode(mel, generator=torch.Generator().manual_seed(0)),
            "wavenet")


def measure(folder: Path, limit: int | None = None) -> dict:
    folder = Path(folder)
    torch.set_num_threads(2)
    label, vocode, key = vocoder_of(folder)
    clips = SpeechClips()
    pairs = list(zip(clips.val_paths, clips.val, clips.val_mel))[:limit]
    rows: dict[str, list] = {"original": [], "griffin_lim": [], key: []}
    seconds = {"griffin_lim": 0.0, key: 0.0}
    audio_seconds = 0.0
    shown = None
    for i, (path, audio, mel) in enumerate(pairs):
        reference = world_features(audio)
        rows["original"].append(compare(audio, audio, reference))
        t = time.perf_counter()
        gl = griffin_lim(mel, GL_ITERATIONS, generator=torch.Generator().manual_seed(i),
                         samples=(mel.shape[1] - 1) * MEL.hop)
        seconds["griffin_lim"] += time.perf_counter() - t
        t = time.perf_counter()
        out = vocode(mel)
        seconds[key] += time.perf_counter() - t
        audio_seconds += len(out) / MEL.sample_rate
        rows["griffin_lim"].append(compare(gl, audio, reference))
        rows[key].append(compare(out, audio, reference))
        if shown is None:
            shown = (path.stem, audio, gl, out)
        print(f"{path.stem}: " + ", ".join(f"{k} PESQ {v[-1]['pesq']:.2f}" for k, v in rows.items()),
              flush=True)
    metrics = dict(
        clips=len(pairs), heldout_seconds=sum(len(a) for _, a, _ in pairs) / MEL.sample_rate,
        vocoder=label, key=key, gl_iterations=GL_ITERATIONS, mel=MEL.to_dict(),
        rows={k: average(v) for k, v in rows.items()},
        per_clip={p.stem: {k: v[j] for k, v in rows.items()} for j, (p, _, _) in enumerate(pairs)},
        real_time={k: audio_seconds / max(v, 1e-9) for k, v in seconds.items()}, threads=2)
    m = metrics["rows"]
    metrics["beats_griffin_lim"] = {
        k: (m[key][k] > m["griffin_lim"][k]) if k in ("stoi", "pesq") else
           (abs(m[key][k] - m["original"][k]) < abs(m["griffin_lim"][k] - m["original"][k]))
           if k == "voiced_share" else (m[key][k] < m["griffin_lim"][k])
        for k in ("mel_db", "mcd_db", "f0_cents", "vuv_error", "voiced_share", "stoi", "pesq")}
    metrics["voiced_share_gap"] = abs(m[key]["voiced_share"] - m["original"]["voiced_share"])
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    name, audio, gl, out = shown
    n = min(len(audio), len(gl), len(out))
    image = figure_rows([(audio[:n], "original"), (gl[:n], f"Griffin-Lim ({GL_ITERATIONS} iterations)"),
                         (out[:n], label)], MEL.sample_rate, title=f"held-out {name}, rebuilt from its mel")
    from PIL import Image

    (folder / "samples").mkdir(exist_ok=True)
    Image.fromarray(image).save(folder / "samples" / "heldout.png")
    import soundfile as sf

    sf.write(folder / "samples" / f"{name}-{key}.flac", out[:n], MEL.sample_rate)
    return metrics
