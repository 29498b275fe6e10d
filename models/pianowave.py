"""The piano WaveNet's pipeline: notes in (models/pianoroll.py), audio out, written sample by
sample by a WaveNet conditioned on the piano roll; and the pitch check the tab and the card use
(YIN, de Cheveigne & Kawahara 2002: no library, so the app needs none)."""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Iterator

import numpy as np
import torch

from .pianoroll import FPS, KEYS, Note, Tuning, frames_for, hz_of, snap, source, to_roll
from .wavenet import WaveNetPipeline

TAIL = 1.0                       # seconds of release after the last note ends
TUNING_NAME = "source.json"      # the partials the source imitates, beside the model


def note_key_name(pitch: int) -> str:
    """60 -> 'C4', 61 -> 'C#4' (sharps: the names the note language reads)."""
    return ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][pitch % 12] + \
        str(pitch // 12 - 1)


def cents(f: float, pitch: float) -> float:
    """How far ``f`` Hz is from MIDI ``pitch``, in cents (100 to a semitone)."""
    return 1200 * np.log2(f / hz_of(pitch))


def yin(audio: np.ndarray, rate: int, fmin: float = 27.0, fmax: float = 4400.0,
        window: int = 1024, hop: int = 160, threshold: float = 0.15
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-wise pitch (Hz), aperiodicity (the normalised difference at the chosen period, 0 is
    perfectly periodic) and RMS, by YIN: the first dip of the cumulative mean normalised
    difference under ``threshold`` (or within 0.1 of its minimum), refined by a parabola."""
    lo, hi = max(2, int(rate / fmax)), int(np.ceil(rate / fmin))
    span = window + hi + 1
    audio = np.asarray(audio, np.float64)
    if len(audio) < span:
        audio = np.pad(audio, (0, span - len(audio)))
    starts = np.arange(0, len(audio) - span + 1, hop)
    frames = np.lib.stride_tricks.sliding_window_view(audio, span)[starts]
    n = 1 << int(np.ceil(np.log2(span + window)))
    spec_a = np.fft.rfft(frames[:, :window], n)
    spec_b = np.fft.rfft(frames, n)
    r = np.fft.irfft(np.conj(spec_a) * spec_b, n)[:, :hi + 1]            # sum x_j x_{j+tau}
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    e0 = sq[:, window:window + 1]
    lags = np.arange(hi + 1)
    e_tau = sq[:, lags + window] - sq[:, lags]
    d = np.maximum(e0 + e_tau - 2 * r, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    f0 = np.zeros(len(frames))
    aperiodic = np.ones(len(frames))
    for i, row in enumerate(cmnd):
        # the first dip under the threshold, or nearly as deep as the deepest (a note whose
        # strings beat is more periodic over two periods than one: that is an octave error)
        limit = max(threshold, float(row[lo:hi].min()) + 0.1)
        tau = lo + int(np.flatnonzero(row[lo:hi] < limit)[0])
        while tau + 1 < hi and row[tau + 1] < row[tau]:          # down to the dip's bottom
            tau += 1
        a, b, c = row[tau - 1], row[tau], row[min(tau + 1, hi)]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c > 0 else 0.0
        f0[i] = rate / (tau + float(np.clip(shift, -0.5, 0.5)))
        aperiodic[i] = b
    rms = np.sqrt((frames[:, :window] ** 2).mean(axis=1))
    return f0, aperiodic, rms


def note_pitch(audio: np.ndarray, rate: int, start: float = 0.05, end: float = 0.45
               ) -> tuple[float | None, float]:
    """The pitch (Hz) of one note held from ``start`` to ``end`` seconds (the median over its
    periodic, audible frames), and the share of those frames that were periodic; None when
    nothing in it is periodic."""
    part = np.asarray(audio, np.float64)[int(start * rate):int(end * rate)]
    if len(part) == 0:
        return None, 0.0
    f0, aperiodic, rms = yin(part, rate)
    audible = rms > max(1e-3, 0.1 * float(rms.max(initial=0.0)))
    periodic = audible & (aperiodic < 0.3)
    if not periodic.any():
        return None, 0.0
    f = float(np.median(f0[periodic]))
    if f > 400:              # a period of under 40 samples: the spectrum's peak is finer
        f = spectral_peak(part, rate, f) or f
    return f, float(periodic.sum() / max(audible.sum(), 1))


def spectral_peak(audio: np.ndarray, rate: int, near: float) -> float | None:
    """The strongest spectral peak within a quarter tone of ``near`` Hz (parabola on the log
    magnitude of a zero-padded Hann spectrum), or None when the band holds no peak."""
    n = 1 << 17
    mag = np.log(np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n)) + 1e-12)
    lo, hi = (int(near * 2 ** (s / 24) * n / rate) for s in (-1, 1))
    if hi - lo < 3:
        return None
    k = lo + int(np.argmax(mag[lo:hi]))
    if k in (lo, hi - 1):
        return None
    a, b, c = mag[k - 1], mag[k], mag[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return (k + shift) * rate / n


def notes_key(notes: list[Note]) -> str:
    """A short name for exactly these notes (times to the millisecond): the file name of a
    render made ahead of time (examples/piano/renders/<key>.flac)."""
    rows = [[n.pitch, round(n.start, 3), round(n.end, 3), n.velocity] for n in notes]
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()[:16]


def roll_figure(notes: list[Note], seconds: float, title: str = "") -> np.ndarray:
    """The piano roll as a picture (RGB array): a bar per note, darker for harder, over time,
    with the C of each octave named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    lo = min((n.pitch for n in notes), default=60) - 2
    hi = max((n.pitch for n in notes), default=72) + 2
    cmap = plt.get_cmap("Purples")
    for n in notes:
        ax.add_patch(plt.Rectangle((n.start, n.pitch - 0.4), max(n.end - n.start, 0.01), 0.8,
                                   color=cmap(0.35 + 0.65 * n.velocity / 127), lw=0))
    ax.set_xlim(0, max(seconds, 0.1))
    ax.set_ylim(lo - 0.5, hi + 0.5)
    cs = [p for p in range(lo, hi + 1) if p % 12 == 0]
    ax.set_yticks(cs, [f"C{p // 12 - 1}" for p in cs])
    ax.grid(axis="y", color="#e5e7eb", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_title(title or f"{len(notes)} notes", fontsize=12)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


# LPCNet's floor (Valin and Skoglund 2019): while the output sounds, every code's probability
# is lowered by this much, so the unlikely codes that add up to hiss are not drawn; from
# silence it is off, or no note would start (docs/pianowave.md: keys in tune 16% -> 32%)
FLOOR = 0.02
ATTACK = 8.0     # each note's source starts this many times louder (models.pianoroll.source)


def level(attack: float) -> float:
    """What a performance is scaled by so the attack changes how notes start, not how loud the
    piece is: with it the model plays about sqrt(attack) times louder (docs/pianowave.md)."""
    return float(attack) ** -0.5


class PianoPipeline:
    """A piano-roll conditioned WaveNet in note terms: ``notes`` (seconds from the start) in,
    float audio at the model's rate out, ``TAIL`` seconds past the last release. Notes are
    played on the 4 ms grid the training renders used (models.pianoroll.snap); ``floor``:
    each probability lowered by it while the output sounds (:data:`FLOOR`); ``attack``: each
    note's sine source starts that many times stronger than in training and falls back over
    ATTACK_TIME, so a note starts at its pitch (:data:`ATTACK`; 1 = as trained), and the audio
    is scaled by :func:`level` to keep the loudness of the music."""

    def __init__(self, wavenet: WaveNetPipeline, tuning: Tuning | None = None):
        if wavenet.config.cond_features != 3 * KEYS or wavenet.config.cond_hop * FPS != \
                wavenet.config.sample_rate:
            raise ValueError("not a piano-roll WaveNet (264 features, 100 frames a second)")
        self.wavenet, self.config, self.tuning = wavenet, wavenet.config, tuning

    @classmethod
    def from_pretrained(cls, name: str, progress: Callable[[float, str], None] | None = None
                        ) -> "PianoPipeline":
        from .hub import resolve

        tuning = resolve(name) / TUNING_NAME
        return cls(WaveNetPipeline.from_pretrained(name, progress),
                   Tuning.load(tuning) if tuning.is_file() else None)

    @property
    def rate(self) -> int:
        return self.config.sample_rate

    def roll(self, notes: list[Note]) -> np.ndarray:
        """The (264, frames) conditioning of ``notes``: onsets, sounding, velocities."""
        return to_roll(snap(notes), frames_for(notes, TAIL)).reshape(3 * KEYS, -1)

    def samples(self, notes: list[Note]) -> int:
        return frames_for(notes, TAIL) * self.config.cond_hop

    def source(self, notes: list[Note], n: int, attack: float = ATTACK) -> np.ndarray | None:
        """The sines at the notes' pitches the model reads with the roll (if it reads them)."""
        h = self.config.source_channels // 2
        return source(snap(notes), 0, n, self.rate, h, self.tuning, attack) if h else None

    def perform(self, notes: list[Note], n: int, temperature: float = 1.0, *,
                generator: torch.Generator | None = None, floor: float = FLOOR,
                attack: float = ATTACK) -> np.ndarray:
        """Exactly ``n`` samples of the notes (a roll of whole frames covering them)."""
        roll = to_roll(snap(notes), -(-n // self.config.cond_hop)).reshape(3 * KEYS, -1)
        return level(attack) * self.wavenet(n, temperature, generator=generator, roll=roll,
                                            source=self.source(notes, n, attack), floor=floor)

    def stream(self, notes: list[Note], temperature: float = 1.0, *,
               generator: torch.Generator | None = None, chunk: int = 16000,
               shared: bool = False, floor: float = FLOOR, attack: float = ATTACK
               ) -> Iterator[np.ndarray]:
        """The performance ``chunk`` samples at a time (the chunking does not change it); with
        ``shared``, taking turns with every other open stream of this model."""
        run = self.wavenet.stream_shared if shared else self.wavenet.stream
        n = self.samples(notes)
        gain = np.float32(level(attack))
        for part in run(n, temperature, generator=generator, chunk=chunk, roll=self.roll(notes),
                        source=self.source(notes, n, attack), floor=floor):
            yield gain * part

    def __call__(self, notes: list[Note], temperature: float = 1.0, *,
                 generator: torch.Generator | None = None,
                 callback: Callable[[int], None] | None = None, floor: float = FLOOR,
                 attack: float = ATTACK) -> np.ndarray:
        parts: list[np.ndarray] = []
        for part in self.stream(notes, temperature, generator=generator, floor=floor,
                                attack=attack):
            parts.append(part)
            if callback is not None:
                callback(sum(map(len, parts)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
