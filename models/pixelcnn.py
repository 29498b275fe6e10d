"""PixelCNN (van den Oord et al., 2016a; the chapter's masked convolutions) and Gated PixelCNN
(van den Oord et al., 2016b: vertical and horizontal stacks, no blind spot, class-conditional),
on 28x28 grey images with a 256-way softmax per pixel, and the pipeline the tab serves.

    pixels = PixelCNNPipeline.from_pretrained("pixelcnn-gated-mnist")
    images = pixels(16, label=7, generator=generator(0))        # (16, 28, 28) uint8

Sampling draws one uniform number per pixel from the request's generator and inverts the
tempered softmax's CDF with it, so every way of computing the logits gives the same image:
``naive`` runs the whole network for every pixel (the definition); the fast way runs, per row,
only the rows the next one can see, and for the gated model the vertical stack once per row and
the horizontal stack on that row alone for each pixel.
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


@dataclass
class PixelCNNConfig:
    kind: str = "gated"            # "plain" (masked convolutions, the chapter's) or "gated"
    levels: int = 256              # grey levels, one softmax class each (8-bit)
    channels: int = 64
    layers: int = 8                # plain: residual blocks; gated: gated layers after the first
    classes: int = 0               # gated only: class-conditional through the gates (0 = off)
    class_names: list[str] = field(default_factory=list)
    dataset: str = ""
    image_size: int = 28


# ---------------------------------------------------------------- masks


def mask_a(k: int) -> torch.Tensor:
    """Mask A (k x k): every pixel above, and left of the centre in its row; not the centre."""
    m = torch.zeros(k, k)
    m[:k // 2] = 1
    m[k // 2, :k // 2] = 1
    return m


def mask_b(k: int) -> torch.Tensor:
    """Mask B: mask A plus the centre (a pixel may see its own features, never its value)."""
    m = mask_a(k)
    m[k // 2, k // 2] = 1
    return m


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution whose kernel is multiplied by a fixed mask (zero padding keeps the
    image size)."""

    def __init__(self, c_in: int, c_out: int, mask: torch.Tensor, dilation: int = 1):
        k = mask.shape[-1]
        super().__init__(c_in, c_out, tuple(mask.shape), padding=(dilation * (mask.shape[0] // 2),
                                                                  dilation * (k // 2)),
                         dilation=dilation)
        self.register_buffer("mask", mask[None, None].clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding,
                        self.dilation)


class ShiftedConv2d(nn.Conv2d):
    """A causal convolution by padding, not masking: ``vertical`` covers the k // 2 + 1 rows up
    to a pixel's own (all k columns); horizontal covers the k // 2 + 1 pixels up to its own in
    its row. ``strict`` shifts the output one row down (vertical) or one pixel right
    (horizontal), so the pixel itself is left out. No weight is spent on a zero of a mask."""

    def __init__(self, c_in: int, c_out: int, k: int, vertical: bool, strict: bool = False,
                 dilation: int = 1):
        size = (k // 2 + 1, k) if vertical else (1, k // 2 + 1)
        super().__init__(c_in, c_out, size, dilation=dilation)
        d = dilation
        if vertical:   # left, right, top, bottom
            self.pads = (d * (k // 2), d * (k // 2), d * (k // 2) + int(strict), 0)
        else:
            self.pads = (d * (k // 2) + int(strict), 0, 0, 0)
        self.vertical, self.strict = vertical, strict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(F.pad(x, self.pads))
        if self.strict:
            y = y[:, :, :-1] if self.vertical else y[:, :, :, :-1]
        return y


# ---------------------------------------------------------------- the plain PixelCNN


class ResidualBlock(nn.Module):
    """1x1 down to half the channels, a masked 3x3 (B), 1x1 back up; ReLUs; a residual sum."""

    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c // 2, 1), nn.ReLU(),
                                 MaskedConv2d(c // 2, c // 2, mask_b(3)), nn.ReLU(),
                                 nn.Conv2d(c // 2, c, 1))

    def forward(self, x):
        return x + self.net(x)


# ---------------------------------------------------------------- the gated PixelCNN


class GatedLayer(nn.Module):
    """One gated layer: tanh(a) * sigmoid(b) on both stacks; the vertical stack feeds the
    horizontal one (1x1), never the other way; a class embedding is added to both gates."""

    def __init__(self, c: int, k: int = 3, first: bool = False, dilation: int = 1, classes: int = 0):
        super().__init__()
        self.first = first
        c_in = 1 if first else c
        self.vertical = ShiftedConv2d(c_in, 2 * c, k, vertical=True, strict=first, dilation=dilation)
        self.horizontal = ShiftedConv2d(c_in, 2 * c, k, vertical=False, strict=first, dilation=dilation)
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)
        self.cond = nn.Embedding(classes, 4 * c) if classes else None

    def vertical_step(self, v: torch.Tensor, cond: torch.Tensor | None):
        """(the vertical stack's output, its features for the horizontal stack)."""
        feat = self.vertical(v)
        gate = feat if cond is None else feat + cond[0][:, :, None, None]
        a, b = gate.chunk(2, 1)
        return torch.tanh(a) * torch.sigmoid(b), self.v_to_h(feat)

    def horizontal_step(self, h: torch.Tensor, from_v: torch.Tensor, cond: torch.Tensor | None):
        feat = self.horizontal(h) + from_v
        if cond is not None:
            feat = feat + cond[1][:, :, None, None]
        a, b = feat.chunk(2, 1)
        out = self.h_out(torch.tanh(a) * torch.sigmoid(b))
        return out if self.first else h + out

    def conditioning(self, labels: torch.Tensor | None):
        if self.cond is None:
            return None
        return self.cond(labels).chunk(2, 1)

    def forward(self, v, h, labels=None):
        cond = self.conditioning(labels)
        v_out, from_v = self.vertical_step(v, cond)
        return v_out, self.horizontal_step(h, from_v, cond)


# ---------------------------------------------------------------- the model


class PixelCNN(nn.Module):
    """Images (B, 28, 28) of level indices -> logits (B, levels, 28, 28): logits[:, :, i, j]
    is the distribution of pixel (i, j) given the pixels before it in raster order."""

    config_class = PixelCNNConfig
    model_type = "pixelcnn"

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        c = self.config = config
        if c.kind == "plain":
            if c.classes:
                raise ValueError("the plain PixelCNN is unconditional")
            self.first = MaskedConv2d(1, c.channels, mask_a(7))
            self.blocks = nn.ModuleList(ResidualBlock(c.channels) for _ in range(c.layers))
            self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(c.channels, c.channels, mask_b(1)),
                                      nn.ReLU(), nn.Conv2d(c.channels, c.levels, 1))
        elif c.kind == "gated":
            dilations = [1] + [2 if 0 < i < c.layers - 1 and i % 2 == 0 else 1 for i in range(c.layers)]
            self.gated = nn.ModuleList(GatedLayer(c.channels, 7 if i == 0 else 3, first=i == 0,
                                                  dilation=d, classes=c.classes)
                                       for i, d in enumerate(dilations))
            self.head = nn.Sequential(nn.ELU(), nn.Conv2d(c.channels, c.levels, 1))
        else:
            raise ValueError(f"kind is plain or gated, not {c.kind!r}")

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Level indices -> network input in [-1, 1], (B, 1, H, W)."""
        return (x.float() / (self.config.levels - 1) * 2 - 1)[:, None]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        inp = self.scale(x).to(self.head[-1].weight.dtype)
        if self.config.kind == "plain":
            h = self.first(inp)
            for block in self.blocks:
                h = block(h)
            return self.head(h)
        labels = self.labels(labels, len(x))
        v = h = inp
        for layer in self.gated:
            v, h = layer(v, h, labels)
        return self.head(h)

    def labels(self, labels, batch: int) -> torch.Tensor | None:
        if not self.config.classes:
            return None
        if labels is None:
            raise ValueError("this PixelCNN is class-conditional: give a label per image")
        labels = torch.as_tensor(labels, device=self.head[-1].weight.device).reshape(-1)
        return labels.expand(batch) if labels.numel() == 1 else labels

    @property
    def rows_seen(self) -> int:
        """How many rows above a pixel its distribution can depend on (its receptive field)."""
        c = self.config
        if c.kind == "plain":
            return 3 + c.layers
        return 4 + sum(layer.vertical.dilation[0] for layer in self.gated[1:])   # 7x7, then 3x3s


def nats(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of each image in nats (sum over pixels)."""
    return F.cross_entropy(logits.float(), x.long(), reduction="none").flatten(1).sum(1)


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Mean negative log2-likelihood per pixel, in bits of the 8-bit image: a model over fewer
    levels spreads each level's mass evenly over its 256 / levels grey values."""
    return nats(logits, x) / (x[0].numel() * math.log(2)) + math.log2(256 / levels)


def quantise(images: np.ndarray | torch.Tensor, levels: int) -> torch.Tensor:
    """uint8 grey images -> level indices 0..levels-1."""
    x = torch.as_tensor(np.array(images)).long()
    return x * levels // 256


def to_uint8(x: torch.Tensor, levels: int) -> np.ndarray:
    """Level indices -> uint8 grey images (each level at the middle of its grey values)."""
    step = 256 // levels
    return (x.long() * step + step // 2 - (step // 2 if levels == 256 else 0)).clamp(0, 255) \
        .to(torch.uint8).cpu().numpy()


# ---------------------------------------------------------------- sampling


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """One level per row of ``logits`` (B, levels), by inverting the tempered softmax's CDF at
    ``u`` (B,); temperature 0 takes the likeliest."""
    if temperature <= 0:
        return logits.argmax(-1)
    p = torch.softmax(logits.double() / temperature, -1)
    cdf = p.cumsum(-1)
    idx = torch.searchsorted(cdf, (u.double() * cdf[:, -1])[:, None]).squeeze(1)
    return idx.clamp_max(logits.shape[-1] - 1)


@dataclass
class SampleUpdate:
    """The batch so far, after a row."""
    images: np.ndarray      # (B, 28, 28) uint8; pixels not drawn yet are 0
    row: int                # rows done
    rows: int
    done: bool = False

    @property
    def fraction(self) -> float:
        return self.row / self.rows

    @property
    def message(self) -> str:
        return f"row {self.row}/{self.rows}"


def sample_rows(model: PixelCNN, x: torch.Tensor, known: torch.Tensor, u: torch.Tensor,
                temperature: float = 1.0, labels=None, naive: bool = False
                ) -> Iterator[torch.Tensor]:
    """Fill the pixels of ``x`` (B, H, W level indices) where ``known`` is False, in raster
    order, drawing pixel (i, j) with the uniforms ``u[:, i, j]``; yield the batch after each
    row. ``naive`` runs the whole network for every pixel; otherwise only the rows a pixel can
    see (for the gated model: the vertical stacks once per row, the horizontal stacks per pixel
    on its row alone)."""
    x = x.clone()
    B, H, W = x.shape
    labels = model.labels(labels, B)
    gated = model.config.kind == "gated"
    for i in range(H):
        if known[:, i].all():
            yield x
            continue
        with torch.inference_mode():
            top = 0 if naive else max(0, i - model.rows_seen)
            if gated and not naive:
                row_logits = _gated_row(model, x[:, top:i + 1], labels)
            for j in range(W):
                if known[:, i, j].all():
                    continue
                if naive:
                    logits = model(x, labels)[:, :, i, j]
                elif gated:
                    logits = row_logits(x[:, i:i + 1])[:, :, 0, j]
                else:
                    logits = model(x[:, top:i + 1], labels)[:, :, -1, j]
                new = draw(logits, u[:, i, j], temperature)
                x[:, i, j] = torch.where(known[:, i, j], x[:, i, j], new)
        yield x


def sample(model: PixelCNN, x: torch.Tensor, known: torch.Tensor, u: torch.Tensor,
           temperature: float = 1.0, labels=None, naive: bool = False) -> torch.Tensor:
    for x in sample_rows(model, x, known, u, temperature, labels, naive):
        pass
    return x


def _gated_row(model: PixelCNN, band: torch.Tensor, labels):
    """For the last row of ``band``: run every layer's vertical stack once (it sees only the
    rows above), and return the function that runs the horizontal stacks and the head on that
    row's current pixels."""
    inp = model.scale(band).to(model.head[-1].weight.dtype)
    v, from_v, conds = inp, [], []
    for layer in model.gated:
        cond = layer.conditioning(labels)
        v, fv = layer.vertical_step(v, cond)
        from_v.append(fv[:, :, -1:])
        conds.append(cond)

    def run(row: torch.Tensor) -> torch.Tensor:
        h = model.scale(row).to(model.head[-1].weight.dtype)
        for layer, fv, cond in zip(model.gated, from_v, conds):
            h = layer.horizontal_step(h, fv, cond)
        return model.head(h)

    return run


# ---------------------------------------------------------------- the pipeline


class PixelCNNPipeline:
    """A trained PixelCNN as the tab serves it: sample, complete, surprise, receptive field."""

    def __init__(self, model: PixelCNN):
        self.model, self.config = model.eval(), model.config

    @classmethod
    def from_pretrained(cls, name: str) -> "PixelCNNPipeline":
        return cls(from_pretrained(PixelCNN, name))

    def label_tensor(self, label, n: int) -> torch.Tensor | None:
        """One class per image: ``label`` an int (all the same) or a sequence of n ints."""
        if not self.config.classes:
            return None
        if label is None or np.ndim(label) == 0:
            return torch.full((n,), int(label or 0))
        labels = torch.as_tensor(list(label), dtype=torch.long)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} images")
        return labels

    def stream(self, images: np.ndarray | None = None, known: np.ndarray | None = None, *,
               n: int = 16, label: int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, naive: bool = False
               ) -> Iterator[SampleUpdate]:
        """Sample ``n`` images (or complete uint8 ``images`` where ``known`` is False),
        yielding the batch after every row."""
        c = self.config
        if images is None:
            x = torch.zeros(n, c.image_size, c.image_size, dtype=torch.long)
            known_t = torch.zeros_like(x, dtype=torch.bool)
        else:
            x = quantise(images, c.levels)
            known_t = torch.as_tensor(np.asarray(known, dtype=bool)).expand_as(x).clone()
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        for row, current in enumerate(sample_rows(self.model, x, known_t, u, temperature,
                                                  self.label_tensor(label, len(x)), naive), 1):
            yield SampleUpdate(to_uint8(current, c.levels), row, c.image_size, row == c.image_size)

    def __call__(self, n: int = 16, *, label: int | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None, naive: bool = False,
                 callback: Callable[[SampleUpdate], None] | None = None) -> np.ndarray:
        last = None
        for last in self.stream(n=n, label=label, temperature=temperature, generator=generator,
                                naive=naive):
            if callback is not None:
                callback(last)
        return last.images

    @torch.inference_mode()
    def surprise(self, images: np.ndarray, label: int | None = None) -> np.ndarray:
        """Bits each pixel costs under the model (B, 28, 28), in 8-bit units."""
        x = quantise(images, self.config.levels)
        logits = self.model(x, self.label_tensor(label, len(x))).float()
        bits = F.cross_entropy(logits, x, reduction="none") / math.log(2)
        return (bits + math.log2(256 / self.config.levels)).numpy()

    def receptive_field(self, row: int, col: int) -> np.ndarray:
        """Which input pixels reach pixel (row, col)'s distribution: where the gradient of its
        logits with respect to a random input is not zero, (28, 28) booleans."""
        return receptive_field(self.model, row, col)


def receptive_field(model: PixelCNN, row: int, col: int) -> np.ndarray:
    size = model.config.image_size
    g = torch.Generator().manual_seed(0)
    inp = (torch.rand(1, 1, size, size, generator=g) * 2 - 1).requires_grad_(True)
    if model.config.kind == "plain":
        h = model.first(inp)
        for block in model.blocks:
            h = block(h)
    else:
        labels = model.labels(0, 1)
        v = h = inp
        for layer in model.gated:
            v, h = layer(v, h, labels)
    model.head(h)[0, :, row, col].abs().sum().backward()
    return (inp.grad[0, 0].abs() > 0).numpy()
