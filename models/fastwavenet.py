"""Fast WaveNet generation (Paine et al., 2016) in a compiled loop: faster than real time on CPU.

Each residual layer keeps a ring buffer of its past inputs, so a new sample costs one step of
every layer (two taps of its dilated convolution, its gate, its 1x1 convolutions) and the head,
never a pass over the receptive field.  The loop is compiled by numba; the weights are laid out
for it once (rows contiguous, the two taps of each dilated convolution side by side, the input
convolution as two lookup tables, the conditioning folded into the biases).

    fast = FastWaveNet(model, cls=None)
    fast.prime(primer_codes)                     # or nothing: one receptive field of silence
    for chunk in fast.stream(48000, temperature=1.0, generator=gen, chunk=16000):
        play(mu_law_decode(chunk))

The state (buffers, time, last code) lives in the object: one object per request.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .wavenet import WaveNet, prepare_primer, uniforms


class FastWaveNet:
    """One generation's state plus the model's weights in the compiled loop's layout."""

    def __init__(self, model: WaveNet, cls: int | None = None):
        from . import wavenet_kernels   # numba compiles (or loads its cache) on first use

        self._k = wavenet_kernels
        c = self.config = model.config
        f32 = lambda t: np.ascontiguousarray(t.detach().float().cpu().numpy(), dtype=np.float32)  # noqa: E731
        w = model.input_conv.weight
        self.emb0 = f32(w[:, :, 0].t())
        self.emb1 = f32(w[:, :, 1].t() + model.input_conv.bias)
        L, R, G, S = c.layers, c.residual_channels, c.gate_channels, c.skip_channels
        self.wd = f32(torch.stack([torch.cat([lay.conv.weight[:, :, 0], lay.conv.weight[:, :, 1]], 1)
                                   for lay in model.layers]))
        bd = torch.stack([lay.conv.bias for lay in model.layers])
        with torch.no_grad():
            conds = model.conditioning(None if cls is None else torch.tensor([cls]), 1)
        if conds[0] is not None:
            bd = bd + torch.stack([x[0] for x in conds])
        self.bd = f32(bd)
        zeros_r = torch.zeros(R, G)
        self.wr = f32(torch.stack([lay.res.weight[:, :, 0] if lay.res is not None else zeros_r
                                   for lay in model.layers]))
        self.br = f32(torch.stack([lay.res.bias if lay.res is not None else torch.zeros(R)
                                   for lay in model.layers]))
        self.ws = f32(torch.stack([lay.skip.weight[:, :, 0] for lay in model.layers]))
        self.bs = f32(sum(lay.skip.bias for lay in model.layers))
        self.wh1, self.bh1 = f32(model.head1.weight[:, :, 0]), f32(model.head1.bias)
        self.wh2, self.bh2 = f32(model.head2.weight[:, :, 0]), f32(model.head2.bias)
        self.dil = np.array(c.dilations, dtype=np.int64)
        size = 1 << int(max(c.dilations)).bit_length()        # a power of two > max dilation
        self.hist = np.zeros((L, size, R), np.float32)
        self.scratch = (np.zeros(2 * R, np.float32), np.zeros(2 * G, np.float32),
                        np.zeros(G, np.float32), np.zeros(S, np.float32),
                        np.zeros(c.head_channels, np.float32), np.zeros(c.quantization, np.float32))
        self.state = np.array([0, -1, -1], np.int64)         # t, previous code, next code to feed

    @property
    def weights(self) -> tuple:
        return (self.emb0, self.emb1, self.wd, self.bd, self.wr, self.br, self.ws, self.bs,
                self.wh1, self.bh1, self.wh2, self.bh2, self.dil, self.hist, *self.scratch)

    @property
    def samples_fed(self) -> int:
        return int(self.state[0])

    def reset(self) -> None:
        self.hist[:] = 0
        self.state[:] = (0, -1, -1)

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
        self.feed(codes[:-1])
        self.state[2] = codes[-1]

    def step_codes(self, n: int, temperature: float, u: np.ndarray) -> np.ndarray:
        if self.state[2] < 0:
            self.prime()
        out = np.zeros(n, np.int64)
        self._k._generate(n, np.ascontiguousarray(u[:n], dtype=np.float64), float(temperature),
                  self.state, *self.weights, out)
        return out

    def stream(self, n: int, temperature: float = 1.0, *, generator: torch.Generator | None = None,
               chunk: int = 16000) -> Iterator[np.ndarray]:
        """Yield the n new codes in chunks (the uniforms are drawn up front: chunking does not
        change the audio)."""
        u = uniforms(n, generator)
        for start in range(0, n, chunk):
            yield self.step_codes(min(chunk, n - start), temperature, u[start:start + chunk])

    def generate(self, n: int, temperature: float = 1.0, *, primer: np.ndarray | None = None,
                 generator: torch.Generator | None = None) -> np.ndarray:
        self.prime(primer)
        parts = list(self.stream(n, temperature, generator=generator, chunk=max(n, 1)))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
