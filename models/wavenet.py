"""WaveNet (van den Oord et al., 2016) on 8-bit mu-law audio, its three ways to generate, and
the pipeline the tab serves (:class:`WaveNetPipeline`).

    wavenet = WaveNetPipeline.from_pretrained("wavenet-speech")
    audio = wavenet(16000, temperature=1.0, generator=generator(0))   # float32, 16 kHz

The network, as the paper and the book's chapter draw it:

* input: mu-law codes 0..255 (a 256-way one-hot), a causal convolution of width 2;
* ``stacks`` x ``cycle`` residual layers, dilations 1, 2, 4 ... 2**(cycle-1), repeated; each a
  width-2 dilated causal convolution into a gated unit tanh(a) * sigmoid(b), then a 1x1
  convolution back to the residual stream (added) and a 1x1 convolution to the skip sum;
* head: ReLU, 1x1, ReLU, 1x1 to 256 logits; trained with cross-entropy on the next sample.

Generation, one sample at a time:

* :func:`generate_naive` -- the plain convolutional forward over the whole receptive field for
  every new sample (the definition; thousands of times the necessary work);
* :func:`generate_incremental` -- per-layer buffers of past activations in eager PyTorch
  (Paine et al.'s "Fast WaveNet", as r9y9's ``incremental_forward``);
* :class:`FastWaveNet` -- the same buffers in a compiled (numba) loop over weights laid out
  for it (``models/wavenet_kernels.py``): faster than real time on a laptop CPU.

All three draw one uniform number per sample from the request's ``torch.Generator`` and invert
the tempered softmax's CDF with it, so the same seed gives the same audio on every path.
"""
from __future__ import annotations

import copy
import itertools
import math
import os
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import from_pretrained
from .runtime import handed_over, start_single_threaded

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
    dataset: str = ""               # what it learned from, for the UI
    # local conditioning (0 = none): per-frame features, e.g. a piano roll (models/pianoroll),
    # through a small convolutional net into a bias on every layer's gate
    cond_features: int = 0
    cond_channels: int = 64
    cond_hop: int = 160             # samples per frame
    cond_kernel: int = 5            # frames the first conditioning convolution sees
    cond_pad: float = 0.0           # an empty frame's features (a roll: 0; a log-mel: its floor)
    cond_offset: float = 0.0        # features enter the conditioning net as (x - offset) * scale
    cond_scale: float = 1.0         # (a log-mel: about zero mean, unit spread)
    # a fixed per-sample excitation read with the codes (0 = none): e.g. sines at the notes'
    # pitches (models/pianoroll.source), added to the input convolution's output
    source_channels: int = 0

    @property
    def cond_margin(self) -> int:
        """Frames the conditioning net needs on each side of the frames it conditions."""
        return (self.cond_kernel - 1) // 2 + 1

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

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None = None):
        z = self.conv(F.pad(h, (self.dilation, 0)))          # causal: left padding only
        if cond is not None:
            z = z + cond
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
        self.head1 = nn.Conv1d(c.skip_channels, c.head_channels, 1)
        self.head2 = nn.Conv1d(c.head_channels, c.quantization, 1)
        if c.cond_features:
            # valid convolutions: a window's roll comes with cond_margin frames either side
            self.cond_net = nn.Sequential(
                nn.Conv1d(c.cond_features, c.cond_channels, c.cond_kernel, dilation=1), nn.ReLU(),
                nn.Conv1d(c.cond_channels, c.cond_channels, 3), nn.ReLU())
            self.cond_proj = nn.Conv1d(c.cond_channels, c.layers * 2 * c.gate_channels, 1)
        if c.source_channels:
            self.source_proj = nn.Conv1d(c.source_channels, c.residual_channels, 1, bias=False)

    def condition(self, roll: torch.Tensor) -> torch.Tensor:
        """Roll (B, features, frames + 2 * cond_margin) -> per-frame gate biases
        (B, layers, 2 * gate, frames)."""
        c = self.config
        if c.cond_offset or c.cond_scale != 1.0:
            roll = (roll - c.cond_offset) * c.cond_scale
        out = self.cond_proj(self.cond_net(roll))
        return out.view(out.shape[0], c.layers, 2 * c.gate_channels, -1)

    def frame_biases(self, roll: torch.Tensor, samples: int) -> torch.Tensor:
        """Per-sample biases (B, layers, 2G, samples): position t (which predicts sample t + 1)
        gets the frame of sample t + 1."""
        c = self.config
        per_frame = self.condition(roll).flatten(1, 2)                 # (B, L * 2G, frames)
        short = -(-(samples + 1) // c.cond_hop) - per_frame.shape[-1]
        if short > 0:                                  # the last frame holds to the end
            per_frame = F.pad(per_frame, (0, short), mode="replicate")
        up = per_frame.repeat_interleave(c.cond_hop, dim=-1)[..., 1:samples + 1]
        return up.reshape(up.shape[0], c.layers, 2 * c.gate_channels, samples)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """The causal input convolution: tap 0 sees x[t-1] (zero before the start), tap 1 x[t]."""
        w = self.input_conv.weight                                   # (R, Q, 2)
        now = F.embedding(codes, w[:, :, 1].t())                     # (B, T, R)
        before = F.embedding(codes[:, :-1], w[:, :, 0].t())
        before = F.pad(before, (0, 0, 1, 0))
        return (now + before + self.input_conv.bias).transpose(1, 2)  # (B, R, T)

    def forward(self, codes: torch.Tensor, roll: torch.Tensor | None = None,
                source: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, T) -> logits (B, 256, T); logits[..., t] predicts codes[:, t + 1]. A
        conditioned model takes the roll of the T samples' frames (T / cond_hop of them, the
        first at sample 0) with cond_margin frames either side, and (with source_channels) the
        source (B, source_channels, T) of the T samples: position t reads that of sample t + 1."""
        h = self.embed(codes)
        if self.config.source_channels:
            if source is None:
                raise ValueError("this WaveNet reads a source: give it one")
            h = h + self.source_proj(F.pad(source[..., 1:], (0, 1)))
        biases = None
        if self.config.cond_features:
            if roll is None:
                raise ValueError("this WaveNet is conditioned: give it the roll")
            biases = self.frame_biases(roll, codes.shape[1])
        skip = 0
        for i, layer in enumerate(self.layers):
            h, s = layer(h, None if biases is None else biases[:, i])
            skip = skip + s
        return self.head2(F.relu(self.head1(F.relu(skip))))


def bits_per_sample(logits: torch.Tensor, codes: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Cross-entropy in bits of codes[:, t+1] under logits[..., t], from position ``start``."""
    return F.cross_entropy(logits[..., start:-1].float(), codes[:, start + 1:]) / math.log(2)


# --------------------------------------------------------------------------- sampling
def draw(logits: torch.Tensor, temperature: float, u: float, floor: float = 0.0) -> int:
    """One code from 256 logits at a temperature (0 = the likeliest), by inverting the CDF at u;
    each probability first lowered by ``floor``, none below zero (LPCNet's cut)."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    p = torch.softmax(logits.double() / temperature, dim=-1)
    if floor > 0:
        p = (p - floor).clamp(min=0)
        if float(p.sum()) <= 0:
            return int(torch.argmax(logits))
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
                   primer: np.ndarray | None = None, generator: torch.Generator | None = None,
                   floor: float = 0.0) -> np.ndarray:
    """The definition: a full forward over the last receptive field for every new sample; the
    floor applies while the output's moving distance from silence is over SOUNDING codes."""
    from .wavenet_kernels import SOUND_DECAY, SOUNDING

    rf = model.config.receptive_field
    codes = list(prepare_primer(primer, model.config))
    u = uniforms(n, generator)
    sound = 0.0
    for i in range(n):
        window = torch.tensor(codes[-rf:])[None]
        logits = model(window)[0, :, -1]
        codes.append(draw(logits, temperature, float(u[i]), floor if sound > SOUNDING else 0.0))
        sound = SOUND_DECAY * sound + (1 - SOUND_DECAY) * abs(codes[-1] - 127.5)
    return np.array(codes[-n:], dtype=np.int64) if n else np.zeros(0, np.int64)


class IncrementalState:
    """Per-layer queues of past layer inputs, eager PyTorch (r9y9's ``incremental_forward``)."""

    def __init__(self, model: WaveNet):
        c = model.config
        self.model = model
        self.queues = [torch.zeros(c.residual_channels, d) for d in c.dilations]
        self.prev = None
        with torch.inference_mode():
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
        for layer, past_inputs in zip(m.layers, self.queues):
            past = past_inputs[:, 0].clone()
            past_inputs[:, :-1] = past_inputs[:, 1:].clone()
            past_inputs[:, -1] = h
            w = layer.conv.weight                                    # (2G, R, 2)
            z = w[:, :, 0] @ past + w[:, :, 1] @ h + layer.conv.bias
            a, b = z.chunk(2)
            g = torch.tanh(a) * torch.sigmoid(b)
            skip = skip + layer.skip.weight[:, :, 0] @ g + layer.skip.bias
            if layer.res is not None:
                h = h + layer.res.weight[:, :, 0] @ g + layer.res.bias
        x = F.relu(m.head1.weight[:, :, 0] @ F.relu(skip) + m.head1.bias)
        return m.head2.weight[:, :, 0] @ x + m.head2.bias


@torch.inference_mode()
def generate_incremental(model: WaveNet, n: int, temperature: float = 1.0, *,
                         primer: np.ndarray | None = None,
                         generator: torch.Generator | None = None) -> np.ndarray:
    state = IncrementalState(model)
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


def teacher_forced_logits(model: WaveNet, codes: np.ndarray) -> np.ndarray:
    """Plain forward over a whole sequence: logits (T, 256) for every next sample."""
    with torch.inference_mode():
        return model(torch.as_tensor(codes)[None])[0].t().float().numpy()


# --------------------------------------------------------------------------- fast generation
# Paine et al. (2016): each residual layer keeps a ring buffer of its past inputs, so a new
# sample costs one step of every layer and the head, never a pass over the receptive field.
# The loop is compiled by numba (models/wavenet_kernels.py); the weights are laid out for it
# once (rows contiguous, the two taps of each dilated convolution side by side, the input
# convolution as two lookup tables). The state lives in the object: one object per request.
class FastWaveNet:
    """One generation's state plus the model's weights in the compiled loop's layout."""

    def __init__(self, model: WaveNet):
        from . import wavenet_kernels   # numba compiles (or loads its cache) on first use

        self._k = wavenet_kernels
        c = self.config = model.config
        f32 = lambda t: np.ascontiguousarray(t.detach().float().cpu().numpy(), dtype=np.float32)  # noqa: E731
        w = model.input_conv.weight
        self.emb0 = f32(w[:, :, 0].t())
        self.emb1 = f32(w[:, :, 1].t() + model.input_conv.bias)
        R, G = c.residual_channels, c.gate_channels
        # every matrix transposed, (inputs, outputs): the loops go input by input
        self.wd = f32(torch.stack([torch.cat([lay.conv.weight[:, :, 0], lay.conv.weight[:, :, 1]],
                                             1).t() for lay in model.layers]))
        self.bd = f32(torch.stack([lay.conv.bias for lay in model.layers]))
        zeros_r = torch.zeros(G, R)
        self.wr = f32(torch.stack([lay.res.weight[:, :, 0].t() if lay.res is not None else zeros_r
                                   for lay in model.layers]))
        self.br = f32(torch.stack([lay.res.bias if lay.res is not None else torch.zeros(R)
                                   for lay in model.layers]))
        self.ws = f32(torch.stack([lay.skip.weight[:, :, 0].t() for lay in model.layers]))
        self.bs = f32(sum(lay.skip.bias for lay in model.layers))
        self.wh1, self.bh1 = f32(model.head1.weight[:, :, 0].t()), f32(model.head1.bias)
        self.wh2, self.bh2 = f32(model.head2.weight[:, :, 0].t()), f32(model.head2.bias)
        self.dil = np.array(c.dilations, dtype=np.int64)
        self.model = model
        H = max(1, c.source_channels)
        self.wsrc = (f32(model.source_proj.weight[:, :, 0].t()) if c.source_channels
                     else np.zeros((H, R), np.float32))
        self._new_state()

    def _new_state(self) -> None:
        c = self.config
        L, R, G = c.layers, c.residual_channels, c.gate_channels
        size = 1 << int(max(c.dilations)).bit_length()        # a power of two > max dilation
        self.hist = np.zeros((L, size, R), np.float32)
        self.scratch = (np.zeros(2 * R, np.float32), np.zeros(2 * G, np.float32),
                        np.zeros(G, np.float32), np.zeros(c.skip_channels, np.float32),
                        np.zeros(c.head_channels, np.float32), np.zeros(c.quantization, np.float32))
        # t, previous code, next code to feed, the roll's first sample, samples per frame,
        # the source's first sample
        self.state = np.array([0, -1, -1, 0, max(1, c.cond_hop), 0], np.int64)
        self.floor = 0.0                      # LPCNet's cut of unlikely codes while sounding
        self.sound = np.zeros(1, np.float64)   # the output's moving distance from silence
        self.cb = np.zeros((1, L, 2 * G), np.float32)        # no roll: zero gate biases
        self.roll: np.ndarray | None = None
        self.src = np.zeros((1, max(1, c.source_channels)), np.float32)   # no source: zeros

    def fresh(self) -> "FastWaveNet":
        """A new generation's state that shares this one's weights (laid out once per model;
        read only by the loop)."""
        new = copy.copy(self)
        new._new_state()
        return new

    @property
    def weights(self) -> tuple:
        return (self.emb0, self.emb1, self.wd, self.bd, self.wr, self.br, self.ws, self.bs,
                self.wh1, self.bh1, self.wh2, self.bh2, self.dil, self.hist, *self.scratch, self.cb,
                self.wsrc, self.src)

    def set_source(self, source: np.ndarray) -> None:
        """A source-reading model's source (source_channels, samples), sample 0 at the first
        generated sample (or, teacher forcing from a reset, at the first code fed)."""
        c = self.config
        source = np.asarray(source, np.float32)
        if not c.source_channels or source.ndim != 2 or source.shape[0] != c.source_channels:
            raise ValueError(f"a source is ({c.source_channels}, samples), not {source.shape}")
        self.src = np.ascontiguousarray(source.T) if source.shape[1] else np.zeros_like(self.src)

    def set_roll(self, roll: np.ndarray, source: np.ndarray | None = None) -> None:
        """A conditioned model's roll (features, frames), frame 0 at the first generated sample:
        its gate biases are computed here once, so each sample only adds a row. A model that
        reads a source takes it here too."""
        c = self.config
        if not c.cond_features:
            raise ValueError("this WaveNet is not conditioned")
        if c.source_channels:
            if source is None:
                raise ValueError("this WaveNet reads a source with its roll")
            self.set_source(source)
        roll = np.asarray(roll, np.float32)
        if roll.ndim != 2 or roll.shape[0] != c.cond_features:
            raise ValueError(f"a roll is ({c.cond_features}, frames), not {roll.shape}")
        m = c.cond_margin
        # m + 1 empty frames before the roll, so that row 0 sees nothing but silence (the
        # primer, and all before it) as a roll with empty frames in front would
        padded = np.pad(roll, ((0, 0), (2 * m + 1, m)), constant_values=c.cond_pad)
        with torch.inference_mode():
            rows = self.model.condition(torch.from_numpy(padded)[None])[0]
        self.cb = np.ascontiguousarray(rows.permute(2, 0, 1).float().numpy())
        self.roll = roll

    @property
    def samples_fed(self) -> int:
        return int(self.state[0])

    def reset(self) -> None:
        self.hist[:] = 0
        self.state[:3] = (0, -1, -1)
        self.state[5] = 0
        self.sound[:] = 0

    def feed(self, codes: np.ndarray, record: bool = False) -> np.ndarray:
        """Teacher-force codes through the buffers; with ``record``, the logits after each one."""
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        out = np.zeros((len(codes) if record else 0, self.config.quantization), np.float32)
        self._k._feed(codes, self.state, *self.weights, out)
        return out

    def prime(self, primer: np.ndarray | None = None) -> None:
        """Start a generation: feed all of the primer (or silence) except its last code, which
        is fed by the first generated step."""
        codes = prepare_primer(primer, self.config)
        self.reset()
        # the roll starts with the first generated sample; cb's row 0 is m + 1 frames earlier
        lead = (self.config.cond_margin + 1) * self.state[4]
        self.state[3] = len(codes) - lead if self.roll is not None else 0
        self.state[5] = len(codes)            # the first generated sample
        self.feed(codes[:-1])
        self.state[2] = codes[-1]

    def step_codes(self, n: int, temperature: float, u: np.ndarray) -> np.ndarray:
        if self.state[2] < 0:
            self.prime()
        out = np.zeros(n, np.int64)
        self._k._generate(n, np.ascontiguousarray(u[:n], dtype=np.float64), float(temperature),
                          float(self.floor), self.sound, self.state, *self.weights, out)
        return out

    def stream(self, n: int, temperature: float = 1.0, *, generator: torch.Generator | None = None,
               chunk: int = 16000) -> Iterator[np.ndarray]:
        """Yield the n new codes in chunks (the uniforms are drawn up front: chunking does not
        change the audio)."""
        u = uniforms(n, generator)
        for start in range(0, n, chunk):
            yield self.step_codes(min(chunk, n - start), temperature, u[start:start + chunk])

    def generate(self, n: int, temperature: float = 1.0, *, primer: np.ndarray | None = None,
                 generator: torch.Generator | None = None, floor: float = 0.0) -> np.ndarray:
        self.prime(primer)
        self.floor = floor
        parts = list(self.stream(n, temperature, generator=generator, chunk=max(n, 1)))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class _Voice:
    """One request in :class:`WaveRounds`: its primed state, uniforms and output so far."""

    def __init__(self, fast: FastWaveNet, n: int, temperature: float, u: np.ndarray, chunk: int):
        self.fast, self.n, self.temperature, self.u, self.chunk = fast, n, temperature, u, chunk
        self.done_codes = 0
        self.first = max(1, chunk // 10)             # the first piece: a tenth of a chunk
        self.handed = 0                               # codes handed out so far
        self.pending: list[np.ndarray] = []          # codes not yet handed out
        self.out: queue.SimpleQueue = queue.SimpleQueue()
        self.gone = threading.Event()

    def publish(self, codes: np.ndarray) -> None:
        self.pending.append(codes)
        self.done_codes += len(codes)
        # a tenth of a chunk first: with many streams sharing the loop, the first sound comes soon
        wanted = self.chunk if self.handed else self.first
        if sum(map(len, self.pending)) >= wanted or self.done_codes >= self.n:
            codes = np.concatenate(self.pending)
            self.handed += len(codes)
            self.out.put(codes)
            self.pending = []
        if self.done_codes >= self.n:
            self.out.put(None)


class WaveRounds:
    """Open generations of one model take turns on one core, ``round`` samples each per turn,
    so many visitors all hear their first sound within seconds. Each turn is the stream's own
    compiled loop on its own state: its audio is exactly what it gets alone (docs/wavenet.md)."""

    def __init__(self, round_samples: int = 800, max_streams: int = 64):
        self.round, self.max_streams = round_samples, max_streams
        self.voices: list[_Voice] = []
        self.waiting: list[_Voice] = []
        self.wake = threading.Condition()
        self.turns = 0
        # below the server's own threads: encoding a visitor's first second of audio and
        # answering the page come before the next turn (32 visitors at once: docs/wavenet.md)
        start_single_threaded(self._work, "wavenet-rounds", nice=5)

    def stream(self, fast: FastWaveNet, n: int, temperature: float, u: np.ndarray,
               chunk: int) -> Iterator[np.ndarray]:
        """The codes of a primed ``fast`` state, ``chunk`` at a time (the last may be shorter)."""
        if n <= 0:
            return
        voice = _Voice(fast, n, float(temperature), u, chunk)
        with self.wake:
            self.waiting.append(voice)
            self.wake.notify()
        try:
            yield from handed_over(voice.out.get() for _ in itertools.count())
        finally:
            voice.gone.set()

    @property
    def active(self) -> int:
        return len(self.voices) + len(self.waiting)

    def _work(self) -> None:
        while True:
            with self.wake:
                while not self.voices and not self.waiting:
                    self.wake.wait()
                self.voices = [v for v in self.voices if not v.gone.is_set() and v.done_codes < v.n]
                room = self.max_streams - len(self.voices)
                # newcomers first, their first turn as long as their first piece: a visitor
                # waits at most for the turn in progress and the newcomers ahead of them
                self.voices = self.waiting[:room] + self.voices
                self.waiting = self.waiting[room:]
                voices = list(self.voices)
            for v in voices:
                if v.gone.is_set():
                    continue
                try:
                    start = v.done_codes
                    turn = min(self.round if start else max(self.round, v.first), v.n - start)
                    codes = v.fast.step_codes(turn, v.temperature, v.u[start:start + turn])
                    self.turns += 1
                    v.publish(codes)
                except Exception as exc:      # never leave a visitor waiting on a dead worker
                    v.out.put(exc)
                    v.done_codes = v.n


# --------------------------------------------------------------------------- the pipeline
class WaveNetPipeline:
    """A WaveNet and its compiled generation loop, in audio terms: float audio in [-1, 1] at the
    model's rate in (the primer) and out."""

    def __init__(self, model: WaveNet):
        self.model, self.config = model.eval(), model.config
        self._rounds: list[WaveRounds] | None = None
        self._lock = threading.Lock()
        self._layout: FastWaveNet | None = None               # the weights, laid out once
        self._silence: tuple[np.ndarray, np.ndarray] | None = None   # state after the silence

    def rounds(self) -> WaveRounds:
        """The least busy of this model's :class:`WaveRounds`, one per core (started on first
        use)."""
        with self._lock:
            if self._rounds is None:
                self._rounds = [WaveRounds() for _ in range(max(1, min(4, os.cpu_count() or 1)))]
            return min(self._rounds, key=lambda r: r.active)

    def stream_shared(self, n: int, temperature: float = 1.0, *, primer: np.ndarray | None = None,
                      generator: torch.Generator | None = None, chunk: int = 16000,
                      roll: np.ndarray | None = None, source: np.ndarray | None = None,
                      floor: float = 0.0) -> Iterator[np.ndarray]:
        """As :meth:`stream`, taking turns with every other open shared stream."""
        fast = self.primed(primer, roll, source, floor)
        for codes in self.rounds().stream(fast, n, temperature, uniforms(n, generator), chunk):
            yield mu_law_decode(codes)

    @classmethod
    def from_pretrained(cls, name: str, progress: Callable[[float, str], None] | None = None
                        ) -> "WaveNetPipeline":
        report = progress or (lambda fraction, message: None)
        report(0.3, f"Loading {name}")
        pipeline = cls(from_pretrained(WaveNet, name))
        report(0.6, "Compiling the fast generation loop (first use only)")
        FastWaveNet(pipeline.model).generate(64, generator=torch.Generator().manual_seed(0))
        return pipeline

    @staticmethod
    def heard(audio: np.ndarray) -> np.ndarray:
        """Audio as the model hears it: through 8-bit mu-law."""
        return mu_law_decode(mu_law_encode(audio))

    def primed(self, primer: np.ndarray | None, roll: np.ndarray | None,
               source: np.ndarray | None = None, floor: float = 0.0) -> FastWaveNet:
        """A fast state with the roll (conditioned models: (features, frames), frame 0 at the
        first new sample), the source where the model reads one, and the primer fed; ``floor``:
        each probability lowered by it while the output sounds (0: plain sampling)."""
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"a floor is a probability under 1, not {floor}")
        with self._lock:
            if self._layout is None:
                self._layout = FastWaveNet(self.model)
        fast = self._layout.fresh()
        fast.floor = float(floor)
        if roll is not None:
            fast.set_roll(roll, source)
        if primer is not None or roll is not None:
            fast.prime(None if primer is None else mu_law_encode(primer))
            return fast
        # most visitors start from silence: its buffers are computed once and copied
        if self._silence is None:
            first = self._layout.fresh()
            first.prime(None)
            self._silence = first.hist, first.state
        fast.hist[:], fast.state[:] = self._silence
        return fast

    def stream(self, n: int, temperature: float = 1.0, *, primer: np.ndarray | None = None,
               generator: torch.Generator | None = None, chunk: int = 16000,
               roll: np.ndarray | None = None, source: np.ndarray | None = None,
               floor: float = 0.0) -> Iterator[np.ndarray]:
        """``n`` new samples after the primer (or silence), ``chunk`` at a time; the chunking
        does not change the audio. A conditioned model reads ``roll`` (and ``source``)."""
        fast = self.primed(primer, roll, source, floor)
        for codes in fast.stream(n, temperature, generator=generator, chunk=chunk):
            yield mu_law_decode(codes)

    def __call__(self, n: int, temperature: float = 1.0, *, primer: np.ndarray | None = None,
                 generator: torch.Generator | None = None,
                 callback: Callable[[int], None] | None = None,
                 roll: np.ndarray | None = None, source: np.ndarray | None = None,
                 floor: float = 0.0) -> np.ndarray:
        parts = []
        for part in self.stream(n, temperature, primer=primer, generator=generator, roll=roll,
                                source=source, floor=floor):
            parts.append(part)
            if callback is not None:
                callback(sum(map(len, parts)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
