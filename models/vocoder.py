"""Mel spectrogram -> speech, three ways: Griffin-Lim (no learning), a GAN vocoder (HiFi-GAN
style: the whole clip in one forward pass) and a WaveNet vocoder (one sample at a time, the
mel read as local conditioning). :class:`VocoderPipeline` serves all three.

    gan = GanVocoder.from_pretrained("gan-vocoder-speech")
    audio = gan(log_mel(speech))            # float32, 160 samples per mel frame

The generator (Kong et al. 2020, HiFi-GAN; Kumar et al. 2019, MelGAN): a width-7 convolution
over the mel frames, then for each upsampling factor a transposed convolution and a
multi-receptive-field fusion of dilated residual blocks, then a width-7 convolution to one
channel and tanh. The discriminators that train it (:class:`PeriodDiscriminator`,
:class:`ScaleDiscriminator`) live here too, so a checkpoint's shapes are defined in one file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import from_pretrained
from .mel import MEL, MelConfig, griffin_lim, log_mel

LRELU = 0.1


@dataclass
class GanVocoderConfig:
    sample_rate: int = 16000
    n_mels: int = 80
    hop: int = 160
    channels: int = 128                     # after the first convolution; halved per upsampling
    upsample: tuple = (5, 4, 4, 2)          # product = hop
    resblock_kernels: tuple = (3, 7, 11)
    resblock_dilations: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    dataset: str = ""
    mel: dict = field(default_factory=MEL.to_dict)   # the front end it was trained on

    def __post_init__(self):
        self.upsample = tuple(self.upsample)
        self.resblock_kernels = tuple(self.resblock_kernels)
        self.resblock_dilations = tuple(tuple(d) for d in self.resblock_dilations)
        if math.prod(self.upsample) != self.hop:
            raise ValueError(f"upsampling {self.upsample} does not make a hop of {self.hop}")

    @property
    def mel_config(self) -> MelConfig:
        return MelConfig(**self.mel)


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: for each dilation, a dilated convolution then a plain one, each
    after a leaky ReLU, added back to the input."""

    def __init__(self, channels: int, kernel: int, dilations: tuple):
        super().__init__()
        self.dilated = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d,
                                               padding=_padding(kernel, d)) for d in dilations)
        self.plain = nn.ModuleList(nn.Conv1d(channels, channels, kernel,
                                             padding=_padding(kernel)) for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.dilated, self.plain):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU)), LRELU))
        return x


class GanVocoder(nn.Module):
    model_type = "gan-vocoder"
    config_class = GanVocoderConfig

    def __init__(self, config: GanVocoderConfig):
        super().__init__()
        c = self.config = config
        self.pre = nn.Conv1d(c.n_mels, c.channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        ch = c.channels
        for u in c.upsample:
            self.ups.append(nn.ConvTranspose1d(ch, ch // 2, 2 * u, u, padding=u // 2 + u % 2,
                                               output_padding=u % 2))
            ch //= 2
            self.blocks.append(nn.ModuleList(ResBlock(ch, k, d) for k, d in
                                             zip(c.resblock_kernels, c.resblock_dilations)))
        self.post = nn.Conv1d(ch, 1, 7, padding=3)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) -> (B, frames * hop) in [-1, 1]."""
        x = self.pre(mel)
        for up, blocks in zip(self.ups, self.blocks):
            x = up(F.leaky_relu(x, LRELU))
            x = sum(b(x) for b in blocks) / len(blocks)
        return torch.tanh(self.post(F.leaky_relu(x))).squeeze(1)

    @classmethod
    def from_pretrained(cls, name: str) -> "GanVocoder":
        return from_pretrained(cls, name)

    def __call__(self, mel, *args, **kwargs):
        """A numpy log-mel (n_mels, frames) gives numpy audio (no gradients); tensors pass."""
        if isinstance(mel, np.ndarray):
            with torch.inference_mode():
                out = super().__call__(torch.from_numpy(np.asarray(mel, np.float32))[None])
            return out[0].numpy()
        return super().__call__(mel, *args, **kwargs)


# --------------------------------------------------------------------------- discriminators
def judge(convs: nn.ModuleList, out: nn.Module, x: torch.Tensor):
    """A discriminator's scores (B, positions) and every layer's activations (for feature
    matching): leaky-ReLU convolutions, then a last convolution to one channel."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU)
        features.append(x)
    x = out(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's: the waveform folded into (samples / p, p) and read by 2-D convolutions that
    never mix columns, so it judges every p-th sample's pattern (narrower than the paper's)."""

    def __init__(self, period: int, widths=(16, 64, 128, 256)):
        super().__init__()
        self.period = period
        chans = (1, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0))
                                   for a, b in zip(chans[:-1], chans[1:]))
        self.convs.append(nn.Conv2d(widths[-1], widths[-1], (5, 1), 1, padding=(2, 0)))
        self.out = nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x):
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        return judge(self.convs, self.out, x.view(b, 1, -1, self.period))


class ScaleDiscriminator(nn.Module):
    """MelGAN's: grouped strided 1-D convolutions over the waveform (narrower than the paper's)."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.convs = nn.ModuleList([
            nn.Conv1d(1, w, 15, 1, padding=7),
            nn.Conv1d(w, 4 * w, 41, 4, groups=4, padding=20),
            nn.Conv1d(4 * w, 16 * w, 41, 4, groups=16, padding=20),
            nn.Conv1d(16 * w, 16 * w, 41, 4, groups=16, padding=20),
            nn.Conv1d(16 * w, 16 * w, 5, 1, padding=2)])
        self.out = nn.Conv1d(16 * w, 1, 3, 1, padding=1)

    def forward(self, x):
        return judge(self.convs, self.out, x[:, None])


class Discriminators(nn.Module):
    """Multi-period (2, 3, 5, 7, 11) and multi-scale (1, 1/2, 1/4) discriminators together."""

    def __init__(self, periods=(2, 3, 5, 7, 11), scales: int = 3, width: int = 16):
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p, (width, 4 * width, 8 * width, 16 * width))
                                     for p in periods)
        self.scales = nn.ModuleList(ScaleDiscriminator(width) for _ in range(scales))

    def forward(self, x):
        outs = [d(x) for d in self.periods]
        y = x
        for i, d in enumerate(self.scales):
            if i:
                y = F.avg_pool1d(y[:, None], 4, 2, padding=2)[:, 0]
            outs.append(d(y))
        return outs


# --------------------------------------------------------------------------- losses
def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, device=x.device)
    spec = torch.stft(x.float(), n_fft, hop, win, window, return_complex=True)
    return spec.abs().clamp(min=1e-7)


RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))


def multi_resolution_stft_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Parallel WaveGAN's: spectral convergence + log-magnitude L1, averaged over 3 STFTs."""
    total = 0.0
    for n_fft, hop, win in RESOLUTIONS:
        f, r = stft_magnitude(fake, n_fft, hop, win), stft_magnitude(real, n_fft, hop, win)
        sc = torch.linalg.norm(r - f, dim=(-2, -1)) / torch.linalg.norm(r, dim=(-2, -1)).clamp(min=1e-7)
        total = total + sc.mean() + F.l1_loss(f.log(), r.log())
    return total / len(RESOLUTIONS)


# --------------------------------------------------------------------------- serving
class VocoderPipeline:
    """The three ways back from a log-mel (n_mels, frames) to audio, in audio terms.
    ``wavenet`` is a mel-conditioned :class:`models.wavenet.WaveNetPipeline` (or None)."""

    def __init__(self, gan: GanVocoder | None = None, wavenet=None, mel: MelConfig = MEL):
        self.gan, self.wavenet, self.mel = gan, wavenet, mel
        if gan is not None and gan.config.mel_config != mel:
            raise ValueError("the GAN vocoder was trained on another mel front end")

    @classmethod
    def from_pretrained(cls, gan: str | None, wavenet: str | None,
                        progress: Callable[[float, str], None] | None = None) -> "VocoderPipeline":
        """The GAN and WaveNet vocoders of two checkpoint folders (either may be None)."""
        from .wavenet import WaveNetPipeline

        report = progress or (lambda fraction, message: None)
        report(0.1, "Loading the GAN vocoder")
        g = GanVocoder.from_pretrained(gan) if gan else None
        w = WaveNetPipeline.from_pretrained(wavenet, progress) if wavenet else None
        return cls(g, w)

    def mel_of(self, audio: np.ndarray) -> np.ndarray:
        return log_mel(audio, self.mel)

    def griffin_lim(self, mel: np.ndarray, generator: torch.Generator | None = None,
                    iterations: int = 60) -> np.ndarray:
        return griffin_lim(mel, iterations, c=self.mel, generator=generator,
                           samples=(mel.shape[1] - 1) * self.mel.hop)

    def gan_vocode(self, mel: np.ndarray) -> np.ndarray:
        if self.gan is None:
            raise ValueError("no GAN vocoder loaded")
        audio = self.gan(mel)
        return audio[:(mel.shape[1] - 1) * self.mel.hop]

    def wavenet_stream(self, mel: np.ndarray, temperature: float = 1.0, *,
                       generator: torch.Generator | None = None, chunk: int = 16000,
                       shared: bool = True) -> Iterator[np.ndarray]:
        """The WaveNet vocoder's audio, ``chunk`` samples at a time, as it is written."""
        if self.wavenet is None:
            raise ValueError("no WaveNet vocoder loaded")
        n = (mel.shape[1] - 1) * self.mel.hop
        run = self.wavenet.stream_shared if shared else self.wavenet.stream
        yield from run(n, temperature, generator=generator, chunk=chunk, roll=mel)

    def wavenet_vocode(self, mel: np.ndarray, temperature: float = 1.0, *,
                       generator: torch.Generator | None = None,
                       callback: Callable[[int], None] | None = None) -> np.ndarray:
        parts = []
        for part in self.wavenet_stream(mel, temperature, generator=generator, shared=False):
            parts.append(part)
            if callback is not None:
                callback(sum(map(len, parts)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def mel_figure(mel: np.ndarray, title: str = "", box: tuple | None = None,
               c: MelConfig = MEL) -> np.ndarray:
    """A log-mel spectrogram as an RGB array (time across, mel bands up, labelled in Hz), with
    an edited ``box`` (start s, end s, low Hz, high Hz) outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .mel import band_centres

    plt.rcParams.update({"font.size": 12})
    seconds = max(mel.shape[1] - 1, 1) * c.hop / c.sample_rate
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    db = mel * 20 / math.log(10)
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max(),
              extent=(0, seconds, -0.5, c.n_mels - 0.5))
    centres = band_centres(c)
    ticks = [t for t in (100, 250, 500, 1000, 2000, 4000, 8000) if t <= c.fmax]
    ax.set_yticks(np.interp(ticks, centres, np.arange(c.n_mels)))
    ax.set_yticklabels([f"{t / 1000:g}k" if t >= 1000 else str(t) for t in ticks])
    ax.set_ylabel("frequency (Hz, mel scale)")
    ax.set_xlabel("time (s)")
    if box is not None:
        start, end, low, high = box
        y0, y1 = np.interp([low, high], centres, np.arange(c.n_mels))
        ax.add_patch(plt.Rectangle((start, y0), end - start, y1 - y0, fill=False,
                                   edgecolor="#22d3ee", lw=2, ls="--"))
    if title:
        import textwrap

        ax.set_title(textwrap.fill(title, 85), fontsize=11)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
