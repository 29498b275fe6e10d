"""Audio without torchaudio: read any upload to mono float at a rate, WAV bytes, spectrograms.

Errors a person can act on are ``ValueError`` with a readable message (the tab shows them).
"""
from __future__ import annotations

import io
import math

import numpy as np

MAX_DECODE_SECONDS = 600      # longer uploads are refused before decoding (the tail is used)


class AudioError(ValueError):
    """An upload that cannot be used, with a message for the person who sent it."""


def read_audio(path: str, rate: int, max_seconds: float, head: bool = False
               ) -> tuple[np.ndarray, list[str]]:
    """Mono float32 at ``rate`` of the last ``max_seconds`` of an audio file (``head``: the
    first), and notes on what was done to it (channels mixed, resampled, part taken)."""
    import soundfile as sf

    notes: list[str] = []
    try:
        with sf.SoundFile(path) as f:
            frames, file_rate, channels, subtype = f.frames, f.samplerate, f.channels, f.subtype
            if frames <= 0 or file_rate <= 0:
                raise AudioError("The audio file is empty.")
            keep = int(math.ceil(max_seconds * file_rate))
            if frames > keep and head:
                notes.append(f"the recording is {frames / file_rate:.1f} s long; its first "
                             f"{max_seconds:g} s are used")
            elif frames > keep:
                f.seek(frames - keep)
                notes.append(f"the primer is {frames / file_rate:.1f} s long; WaveNet continues "
                             f"its last {max_seconds:g} s")
            audio = f.read(frames=min(frames, keep), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception:
        audio, file_rate, channels, subtype = _read_with_ffmpeg(path, max_seconds, head)
    if audio.size == 0:
        raise AudioError("The audio file holds no samples.")
    if not np.isfinite(audio).all():
        raise AudioError("The audio holds invalid (NaN or infinite) samples.")
    if channels > 1:
        notes.append(f"{channels} channels mixed to mono")
    audio = audio.mean(axis=1)
    if subtype and subtype not in ("PCM_16", "FLOAT", "DOUBLE") and not subtype.startswith("MPEG"):
        notes.append(f"{subtype.replace('_', ' ').lower()} samples read")
    if file_rate != rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(file_rate), int(rate))
        audio = resample_poly(audio, rate // g, int(file_rate) // g).astype(np.float32)
        notes.append(f"resampled from {file_rate / 1000:g} kHz to {rate / 1000:g} kHz")
    return np.clip(audio, -1, 1).astype(np.float32), notes


def _read_with_ffmpeg(path: str, max_seconds: float, head: bool = False):
    """Formats libsndfile does not read (m4a, webm from some browsers' microphones) via pydub."""
    try:
        from pydub import AudioSegment

        seg = AudioSegment.from_file(path)
    except Exception as exc:
        raise AudioError(f"Could not read the upload as audio ({type(exc).__name__}). Try a WAV, "
                         "FLAC, OGG or MP3 file.") from None
    if len(seg) > MAX_DECODE_SECONDS * 1000:
        raise AudioError(f"The audio is {len(seg) / 1000:.0f} s long; upload at most "
                         f"{MAX_DECODE_SECONDS} s.")
    if len(seg) > max_seconds * 1000:
        seg = seg[:int(max_seconds * 1000)] if head else seg[-int(max_seconds * 1000):]
    samples = np.array(seg.get_array_of_samples(), dtype=np.float32)
    samples = samples.reshape(-1, seg.channels) / float(1 << (8 * seg.sample_width - 1))
    return samples, seg.frame_rate, seg.channels, ""


def normalise(audio: np.ndarray, peak: float = 0.7) -> tuple[np.ndarray, str]:
    """Scale to a peak like the training audio's; silence stays silence."""
    top = float(np.abs(audio).max()) if audio.size else 0.0
    if top < 1e-4:
        return np.zeros_like(audio), "the primer is silent"
    if abs(top - peak) / peak < 0.1:
        return audio, ""
    return (audio * (peak / top)).astype(np.float32), f"primer level scaled by {peak / top:.2g}x"


def to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).round().astype(np.int16)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV: the same scale for every chunk, so the loudness never jumps."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, to_int16(audio), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def spectrogram(audio: np.ndarray, rate: int, window: int = 512, hop: int = 128):
    """Log-magnitude STFT (dB, frequency x time), Hann window, and its time and frequency axes."""
    if len(audio) < window:
        audio = np.pad(audio, (0, window - len(audio)))
    frames = 1 + (len(audio) - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(audio[idx] * np.hanning(window)[None], axis=1)).T
    db = 20 * np.log10(spec + 1e-5)
    times = (np.arange(frames) * hop + window / 2) / rate
    freqs = np.fft.rfftfreq(window, 1 / rate)
    return db, times, freqs


def band_energy(audio: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Share of the spectral energy between lo and hi Hz (for the card's checks)."""
    db, _, freqs = spectrogram(audio, rate)
    power = (10 ** (db / 10)).sum(axis=1)
    band = (freqs >= lo) & (freqs < hi)
    return float(power[band].sum() / max(power.sum(), 1e-12))


SILENT, UNVOICED, VOICED = 0, 1, 2


def frame_kinds(audio: np.ndarray, rate: int, frame_ms: float = 40, hop_ms: float = 10,
                threshold: float = 0.5, min_rms: float = 1e-3) -> tuple[np.ndarray, int, int]:
    """Label each ``frame_ms`` frame (every ``hop_ms``) ``SILENT`` (RMS below ``min_rms``,
    -60 dBFS), ``VOICED`` (its normalised autocorrelation peaks above ``threshold`` at a lag of
    2.5-14 ms, a voice's 70-400 Hz) or ``UNVOICED`` (hiss, fricatives, clicks).
    Returns (labels, frame length, hop) in samples; frame i starts at ``i * hop``."""
    audio = np.asarray(audio, dtype=np.float64)
    frame, hop = int(rate * frame_ms / 1000), int(rate * hop_ms / 1000)
    if len(audio) < frame:
        return np.zeros(0, np.int64), frame, hop
    idx = np.arange(frame)[None, :] + hop * np.arange(1 + (len(audio) - frame) // hop)[:, None]
    frames = audio[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    audible = np.sqrt((frames ** 2).mean(axis=1)) >= min_rms
    kinds = np.full(len(frames), SILENT, np.int64)
    if audible.any():
        spec = np.fft.rfft(frames[audible], 2 * frame, axis=1)
        ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :frame]
        lo, hi = int(rate / 400), int(rate / 70)
        peak = (ac[:, lo:hi] / ac[:, :1]).max(axis=1)
        kinds[audible] = np.where(peak > threshold, VOICED, UNVOICED)
    return kinds, frame, hop


def voiced_share(audio: np.ndarray, rate: int, frame_ms: float = 40, hop_ms: float = 10,
                 threshold: float = 0.5, min_rms: float = 1e-3) -> tuple[int, float]:
    """How much of a recording is voiced: (audible frames, share of them that are periodic at a
    voice's pitch), by :func:`frame_kinds`. Vowels and voiced consonants are periodic; hiss,
    fricatives and clicks are not. Real LJSpeech clips score 0.4-0.55."""
    kinds, _, _ = frame_kinds(audio, rate, frame_ms, hop_ms, threshold, min_rms)
    audible = int((kinds != SILENT).sum())
    return audible, float((kinds == VOICED).sum() / audible) if audible else 0.0


def figure(audio: np.ndarray, rate: int, primer: int = 0, title: str = "") -> np.ndarray:
    """Waveform over spectrogram (primer shaded) as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})       # readable when a phone scales the figure down
    t = np.arange(len(audio)) / rate
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.6), dpi=100, sharex=True,
                                      gridspec_kw=dict(height_ratios=[1, 2]))
    step = max(1, len(audio) // 8000)           # enough points to draw, not every sample
    top.plot(t[::step], audio[::step], lw=0.5, color="#4f46e5")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    top.set_ylim(-max(0.05, 1.15 * peak), max(0.05, 1.15 * peak))   # the signal, not +-1
    top.set_ylabel("amplitude")
    db, times, freqs = spectrogram(audio, rate)
    vmax = float(db.max()) if db.size else 0.0
    bottom.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                  extent=(0, max(len(audio) / rate, 1e-3), 0, freqs[-1] / 1000))
    bottom.set_ylabel("frequency (kHz)")
    bottom.set_xlabel("time (s)")
    if primer:
        for ax in (top, bottom):
            ax.axvspan(0, primer / rate, color="#22c55e", alpha=0.18, lw=0)
            ax.axvline(primer / rate, color="#16a34a", lw=1.2)
        top.text(primer / rate / 2, 0.85, "primer", ha="center", fontsize=10, color="#166534",
                 transform=top.get_xaxis_transform())
    if title:
        top.set_title(title, fontsize=12)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def figure_rows(rows: list[tuple[np.ndarray, str]], rate: int, title: str = "") -> np.ndarray:
    """One spectrogram per row (same colour scale), each labelled, as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    specs = [spectrogram(audio, rate) for audio, _ in rows]
    vmax = max(float(db.max()) for db, _, _ in specs)
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.5 * len(rows) + 0.6), dpi=100,
                             sharex=True, squeeze=False)
    for ax, (audio, label), (db, _, freqs) in zip(axes[:, 0], rows, specs):
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                  extent=(0, max(len(audio) / rate, 1e-3), 0, freqs[-1] / 1000))
        ax.set_ylabel("kHz")
        ax.text(0.01, 0.93, label, transform=ax.transAxes, va="top", fontsize=11, color="white",
                bbox=dict(facecolor="black", alpha=0.55, lw=0, pad=2))
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        axes[0, 0].set_title(title, fontsize=12)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
