"""WaveNet (van den Oord et al., 2016) on 8-bit mu-law audio, with its three ways to generate.

    model = from_pretrained(WaveNet, "weights/wavenet-speech")
    codes = FastWaveNet(model).generate(16000, temperature=1.0, generator=generator(0))
    audio = mu_law_decode(codes)                     # float32 in [-1, 1], 16 kHz

The network, as the paper and the book's chapter draw it:

* input: mu-law codes 0..255 (a 256-way one-hot), a causal convolution of width 2;
* ``stacks`` x ``cycle`` residual layers, dilations 1, 2, 4 ... 2**(cycle-1), repeated; each a
  width-2 dilated causal convolution into a gated unit tanh(a) * sigmoid(b), then a 1x1
  convolution back to the residual stream (added) and a 1x1 convolution to the skip sum;
* optional global conditioning (a class, e.g. a MIDI pitch): an embedding added to every
  layer's gate pre-activations;
* head: ReLU, 1x1, ReLU, 1x1 to 256 logits; trained with cross-entropy on the next sample.

Generation, one sample at a time:

* :func:`generate_naive` -- the plain convolutional forward over the whole receptive field for
  every new sample (the definition; thousands of times the necessary work);
* :func:`generate_incremental` -- per-layer buffers of past activations in eager PyTorch
  (Paine et al.'s "Fast WaveNet", as r9y9's ``incremental_forward``);
* ``models.fastwavenet.FastWaveNet`` -- the same buffers in a compiled (numba) loop over
  weights laid out for it: faster than real time on a laptop CPU.

All three draw one uniform number per sample from the request's ``torch.Generator`` and invert
the tempered softmax's CDF with it, so the same seed gives the same audio on every path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MU = 255


# --------------------------------------------------------------------------- mu-law
def mu_law_encode(audio: np.ndarray | torch.Tensor, mu: int = MU):
    """Float audio in [-1, 1] -> integer codes 0..mu (G.711-style companding, then rounding)."""
    if isinstance(audio, torch.Tensor):
        x = audio.float().clamp(-1, 1)
        y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
        return ((y + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)
    x = np.clip(np.asarray(audio, dtype=np.float64), -1, 1)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.clip(np.floor((y + 1) / 2 * mu + 0.5), 0, mu).astype(np.int64)


def mu_law_decode(codes: np.ndarray | torch.Tensor, mu: int = MU):
    """Integer codes 0..mu -> float audio in [-1, 1] (the inverse of :func:`mu_law_encode`)."""
    if isinstance(codes, torch.Tensor):
        y = codes.double() / mu * 2 - 1
        return (torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu).float()
    y = np.asarray(codes, dtype=np.float64) / mu * 2 - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


SILENCE = int(mu_law_encode(np.zeros(1))[0])  # 128: the code of 0.0


# --------------------------------------------------------------------------- network
@dataclass
class WaveNetConfig:
    quantization: int = 256         # mu-law classes
    sample_rate: int = 16000
    residual_channels: int = 32
    gate_channels: int = 32         # per half of the gate: tanh(a) * sigmoid(b)
    skip_channels: int = 64
    head_channels: int = 128
    cycle: int = 10                 # dilations 1 .. 2**(cycle-1)
    stacks: int = 2                 # cycles of dilations
    classes: int = 0                # global conditioning classes (0 = unconditioned)
    class_names: list[str] = field(default_factory=list)
    dataset: str = ""               # what it learned from, for the UI

    @property
    def dilations(self) -> list[int]:
        return [2 ** i for i in range(self.cycle)] * self.stacks

    @property
    def layers(self) -> int:
        return self.cycle * self.stacks

    @property
    def receptive_field(self) -> int:
        """Samples an output sees: 2 for the causal input convolution, plus each dilation."""
        return receptive_field(self.dilations)


def receptive_field(dilations: list[int], kernel: int = 2) -> int:
    return kernel + (kernel - 1) * sum(dilations)


class ResidualLayer(nn.Module):
    def __init__(self, c: WaveNetConfig, dilation: int, last: bool):
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(c.residual_channels, 2 * c.gate_channels, 2, dilation=dilation)
        self.skip = nn.Conv1d(c.gate_channels, c.skip_channels, 1)
        # the last layer's residual output would feed nothing
        self.res = None if last else nn.Conv1d(c.gate_channels, c.residual_channels, 1)

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None):
        z = self.conv(F.pad(h, (self.dilation, 0)))          # causal: left padding only
        if cond is not None:
            z = z + cond[:, :, None]
        a, b = z.chunk(2, dim=1)
        g = torch.tanh(a) * torch.sigmoid(b)
        return (h + self.res(g) if self.res is not None else h), self.skip(g)


class WaveNet(nn.Module):
    model_type = "wavenet"
    config_class = WaveNetConfig

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        c = self.config = config
        # the width-2 causal convolution over one-hot codes, stored as a Conv1d weight
        # (residual, quantization, 2) and computed as two embedding lookups
        self.input_conv = nn.Conv1d(c.quantization, c.residual_channels, 2)
        self.layers = nn.ModuleList(ResidualLayer(c, d, i == c.layers - 1)
                                    for i, d in enumerate(c.dilations))
        self.cond = nn.Embedding(c.classes, c.layers * 2 * c.gate_channels) if c.classes else None
        self.head1 = nn.Conv1d(c.skip_channels, c.head_channels, 1)
        self.head2 = nn.Conv1d(c.head_channels, c.quantization, 1)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """The causal input convolution: tap 0 sees x[t-1] (zero before the start), tap 1 x[t]."""
        w = self.input_conv.weight                                   # (R, Q, 2)
        now = F.embedding(codes, w[:, :, 1].t())                     # (B, T, R)
        before = F.embedding(codes[:, :-1], w[:, :, 0].t())
        before = F.pad(before, (0, 0, 1, 0))
        return (now + before + self.input_conv.bias).transpose(1, 2)  # (B, R, T)

    def conditioning(self, classes: torch.Tensor | None, batch: int) -> list[torch.Tensor | None]:
        if self.cond is None:
            return [None] * self.config.layers
        if classes is None:
            raise ValueError("this WaveNet is conditioned: pass a class per sequence")
        classes = torch.as_tensor(classes, device=self.head2.weight.device).reshape(-1)
        if classes.numel() == 1:
            classes = classes.expand(batch)
        return list(self.cond(classes).chunk(self.config.layers, dim=1))

    def forward(self, codes: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, T) -> logits (B, 256, T); logits[..., t] predicts codes[:, t + 1]."""
        h = self.embed(codes)
        conds = self.conditioning(classes, codes.shape[0])
        skip = 0
        for layer, cond in zip(self.layers, conds):
            h, s = layer(h, cond)
            skip = skip + s
        return self.head2(F.relu(self.head1(F.relu(skip))))


def bits_per_sample(logits: torch.Tensor, codes: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Cross-entropy in bits of codes[:, t+1] under logits[..., t], from position ``start``."""
    return F.cross_entropy(logits[..., start:-1].float(), codes[:, start + 1:]) / math.log(2)


# --------------------------------------------------------------------------- sampling
def draw(logits: torch.Tensor, temperature: float, u: float) -> int:
    """One code from 256 logits at a temperature (0 = the likeliest), by inverting the CDF at u."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    p = torch.softmax(logits.double() / temperature, dim=-1)
    cdf = torch.cumsum(p, dim=-1)
    return min(int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])],
                                                        dtype=cdf.dtype))[0]), p.numel() - 1)


def uniforms(n: int, generator: torch.Generator | None) -> np.ndarray:
    """The per-sample uniform numbers of a request (float64, from its own generator)."""
    return torch.rand(n, generator=generator, dtype=torch.float64).numpy()


def prepare_primer(primer: np.ndarray | None, config: WaveNetConfig) -> np.ndarray:
    """The codes every generation starts from: the primer, preceded by silence up to one
    receptive field (the model was trained on windows with full context, so it is given one)."""
    primer = np.zeros(0, np.int64) if primer is None else np.asarray(primer, dtype=np.int64)
    pad = max(0, config.receptive_field - len(primer))
    return np.concatenate([np.full(pad, SILENCE, np.int64), primer])


@torch.inference_mode()
def generate_naive(model: WaveNet, n: int, temperature: float = 1.0, *,
                   primer: np.ndarray | None = None, cls: int | None = None,
                   generator: torch.Generator | None = None) -> np.ndarray:
    """The definition: a full forward over the last receptive field for every new sample."""
    rf = model.config.receptive_field
    codes = list(prepare_primer(primer, model.config))
    u = uniforms(n, generator)
    classes = None if cls is None else torch.tensor([cls])
    for i in range(n):
        window = torch.tensor(codes[-rf:])[None]
        logits = model(window, classes)[0, :, -1]
        codes.append(draw(logits, temperature, float(u[i])))
    return np.array(codes[-n:], dtype=np.int64) if n else np.zeros(0, np.int64)


class IncrementalState:
    """Per-layer queues of past layer inputs, eager PyTorch (r9y9's ``incremental_forward``)."""

    def __init__(self, model: WaveNet, cls: int | None):
        c = model.config
        self.model = model
        self.queues = [torch.zeros(c.residual_channels, d) for d in c.dilations]
        self.prev = None
        with torch.inference_mode():
            conds = model.conditioning(None if cls is None else torch.tensor([cls]), 1)
            self.conds = [None if x is None else x[0] for x in conds]
            w = model.input_conv.weight
            self.tap0, self.tap1 = w[:, :, 0], w[:, :, 1]

    @torch.inference_mode()
    def step(self, code: int) -> torch.Tensor:
        """Feed x[t]; return the logits for x[t+1]."""
        m = self.model
        h = self.tap1[:, code] + m.input_conv.bias
        if self.prev is not None:
            h = h + self.tap0[:, self.prev]
        self.prev = code
        skip = 0
        for layer, queue, cond in zip(m.layers, self.queues, self.conds):
            past = queue[:, 0].clone()
            queue[:, :-1] = queue[:, 1:].clone()
            queue[:, -1] = h
            w = layer.conv.weight                                    # (2G, R, 2)
            z = w[:, :, 0] @ past + w[:, :, 1] @ h + layer.conv.bias
            if cond is not None:
                z = z + cond
            a, b = z.chunk(2)
            g = torch.tanh(a) * torch.sigmoid(b)
            skip = skip + layer.skip.weight[:, :, 0] @ g + layer.skip.bias
            if layer.res is not None:
                h = h + layer.res.weight[:, :, 0] @ g + layer.res.bias
        x = F.relu(m.head1.weight[:, :, 0] @ F.relu(skip) + m.head1.bias)
        return m.head2.weight[:, :, 0] @ x + m.head2.bias


@torch.inference_mode()
def generate_incremental(model: WaveNet, n: int, temperature: float = 1.0, *,
                         primer: np.ndarray | None = None, cls: int | None = None,
                         generator: torch.Generator | None = None) -> np.ndarray:
    state = IncrementalState(model, cls)
    primer = prepare_primer(primer, model.config)
    for code in primer[:-1]:
        state.step(int(code))
    u = uniforms(n, generator)
    out = np.zeros(n, np.int64)
    code = int(primer[-1])
    for i in range(n):
        code = draw(state.step(code), temperature, float(u[i]))
        out[i] = code
    return out


def teacher_forced_logits(model: WaveNet, codes: np.ndarray, cls: int | None = None) -> np.ndarray:
    """Plain forward over a whole sequence: logits (T, 256) for every next sample."""
    with torch.inference_mode():
        classes = None if cls is None else torch.tensor([cls])
        return model(torch.as_tensor(codes)[None], classes)[0].t().float().numpy()

