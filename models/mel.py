"""The mel front end every vocoder shares (training, the app and the measurements): log-mel
spectrograms, Griffin-Lim back from them, and the edits the tab offers (stretch, shift).

    mel = log_mel(audio)                  # (80, len(audio) // 160 + 1), natural log
    audio = griffin_lim(mel, generator=torch.Generator().manual_seed(0))

Frame k is centred on sample k * hop (reflect padding at the ends) and sees the samples
within half a window (320) of it: a vocoder reading frame k knows that much of the future.
Mel bands are Slaney's (librosa's default), area-normalised.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    win: int = 640          # 40 ms Hann window
    hop: int = 160          # 10 ms: 100 frames a second
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    floor: float = 1e-5     # log(max(mel, floor)): silence reads about -11.5

    def to_dict(self) -> dict:
        return asdict(self)

    def frames(self, samples: int) -> int:
        return samples // self.hop + 1


MEL = MelConfig()


# --------------------------------------------------------------------------- Slaney's mel scale
_F_SP = 200.0 / 3                       # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP      # 15
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    return np.where(f < _MIN_LOG_HZ, f / _F_SP,
                    _MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < _MIN_LOG_MEL, m * _F_SP, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)))


def mel_filters(c: MelConfig = MEL) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangles between n_mels + 2 points evenly spaced in mel, each
    scaled to unit area (2 / bandwidth in Hz), as librosa.filters.mel(htk=False, norm='slaney')."""
    bins = np.linspace(0, c.sample_rate / 2, c.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(c.fmin), hz_to_mel(c.fmax), c.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    tri = np.maximum(0, np.minimum(rising, falling))
    return (tri * (2.0 / (upper - lower))).astype(np.float32)


def band_centres(c: MelConfig = MEL) -> np.ndarray:
    """The centre frequency (Hz) of each mel band."""
    return mel_to_hz(np.linspace(hz_to_mel(c.fmin), hz_to_mel(c.fmax), c.n_mels + 2))[1:-1]


_CACHE: dict = {}


def _basis(c: MelConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (c, str(device))
    if key not in _CACHE:
        with torch.inference_mode(False):   # usable with and without autograd
            _CACHE[key] = (torch.from_numpy(mel_filters(c)).to(device),
                           torch.hann_window(c.win, periodic=True, device=device))
    return _CACHE[key]


def stft(audio: torch.Tensor, c: MelConfig = MEL) -> torch.Tensor:
    """Complex STFT (..., n_fft // 2 + 1, frames), frames centred on multiples of hop."""
    _, window = _basis(c, audio.device)
    shape = audio.shape
    x = audio.reshape(-1, shape[-1]).float()
    pad = c.n_fft // 2
    mode = "reflect" if x.shape[-1] > pad else "constant"
    x = F.pad(x[:, None], (pad, pad), mode=mode)[:, 0]
    spec = torch.stft(x, c.n_fft, c.hop, c.win, window, center=False, return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def log_mel_torch(audio: torch.Tensor, c: MelConfig = MEL) -> torch.Tensor:
    """Differentiable: audio (..., samples) -> log-mel (..., n_mels, samples // hop + 1)."""
    basis, _ = _basis(c, audio.device)
    mag = stft(audio, c).abs()
    return torch.log(torch.clamp(torch.matmul(basis, mag), min=c.floor))


def log_mel(audio: np.ndarray, c: MelConfig = MEL) -> np.ndarray:
    """Float audio (samples,) at c.sample_rate -> log-mel float32 (n_mels, frames)."""
    with torch.inference_mode():
        return log_mel_torch(torch.as_tensor(np.asarray(audio, np.float32)), c).numpy()


# --------------------------------------------------------------------------- Griffin-Lim
def mel_to_magnitude(mel: np.ndarray, c: MelConfig = MEL) -> torch.Tensor:
    """A linear magnitude spectrogram whose mel is close to ``mel``: the least-squares inverse
    of the filterbank, clipped at zero (what a mel spectrogram threw away is not recovered)."""
    basis = mel_filters(c).astype(np.float64)
    power = np.exp(np.asarray(mel, np.float64))
    mag = np.linalg.lstsq(basis, power, rcond=None)[0]
    return torch.from_numpy(np.maximum(mag, 0.0).astype(np.float32))


def griffin_lim(mel: np.ndarray, iterations: int = 60, momentum: float = 0.99,
                c: MelConfig = MEL, generator: torch.Generator | None = None,
                samples: int | None = None) -> np.ndarray:
    """Griffin & Lim (1984) with Perraudin et al.'s momentum ("fast Griffin-Lim"): a phase is
    guessed (random, from ``generator``), and the STFT of its inverse is repeatedly given the
    wanted magnitude back. No learning: the floor every vocoder must beat."""
    mag = mel_to_magnitude(mel, c)
    _, window = _basis(c, "cpu")
    n = samples if samples is not None else (mag.shape[-1] - 1) * c.hop
    phase = torch.rand(mag.shape, generator=generator) * 2 * math.pi
    spec = mag * torch.exp(1j * phase)
    previous = torch.zeros_like(spec)

    def inverse(s):
        return torch.istft(s, c.n_fft, c.hop, c.win, window, center=True, length=n)

    with torch.inference_mode():
        for _ in range(iterations):
            rebuilt = stft(inverse(spec), c)
            accelerated = rebuilt + momentum / (1 + momentum) * (rebuilt - previous)
            previous = rebuilt
            spec = mag * torch.exp(1j * torch.angle(accelerated))
        return inverse(spec).clamp(-1, 1).numpy().astype(np.float32)


# --------------------------------------------------------------------------- edits
def stretch(mel: np.ndarray, factor: float) -> np.ndarray:
    """Speak slower (factor > 1) or faster (< 1): the frames resampled in time, linearly."""
    frames = mel.shape[1]
    new = max(2, int(round(frames * factor)))
    where = np.linspace(0, frames - 1, new)
    lo = np.floor(where).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    w = (where - lo)[None].astype(np.float32)
    return ((1 - w) * mel[:, lo] + w * mel[:, hi]).astype(np.float32)


def shift(mel: np.ndarray, semitones: float, c: MelConfig = MEL) -> np.ndarray:
    """Higher (semitones > 0) or lower: every band reads the band whose frequency is
    2 ** (-semitones / 12) times its own (interpolated on the mel axis), so harmonics and
    formants move together. Bands that would read below 0 Hz or above fmax read silence."""
    centres = band_centres(c)
    source_mel = hz_to_mel(centres * 2.0 ** (-semitones / 12.0))
    grid = hz_to_mel(centres)
    index = np.interp(source_mel, grid, np.arange(c.n_mels), left=-1, right=c.n_mels)
    out = np.full_like(mel, math.log(c.floor))
    inside = (index >= 0) & (index <= c.n_mels - 1)
    lo = np.floor(index[inside]).astype(int)
    hi = np.minimum(lo + 1, c.n_mels - 1)
    w = (index[inside] - lo)[:, None]
    out[inside] = (1 - w) * mel[lo] + w * mel[hi]
    return out.astype(np.float32)


def edit(mel: np.ndarray, start: float, end: float, low: float, high: float, mode: str,
         c: MelConfig = MEL) -> np.ndarray:
    """A box of the spectrogram (seconds ``start``-``end``, Hz ``low``-``high``) erased to
    silence (``mode`` "erase") or painted at the clip's loudest level ("paint": a buzz or whistle
    the vocoder must invent a waveform for)."""
    if mode not in ("erase", "paint"):
        raise ValueError(f"unknown edit {mode!r}: erase or paint")
    out = np.array(mel, np.float32, copy=True)
    frames = np.arange(out.shape[1]) * c.hop / c.sample_rate
    bands = band_centres(c)
    box = np.ix_((bands >= low) & (bands <= high), (frames >= start) & (frames <= end))
    out[box] = math.log(c.floor) if mode == "erase" else float(np.percentile(mel, 99))
    return out
