"""A convolutional VAE with a two-dimensional latent space (28x28 grey images), and the latent
grid explorer that serves it (:class:`LatentExplorer`).

As in the VAE chapters the studio follows (Keras: two strided convolutions, a small dense layer,
z_mean and z_log_var of size 2, a mirrored transposed-convolution decoder with a sigmoid), a
little wider so that a 2-D code still reconstructs well. The likelihood is Bernoulli per pixel
(binary cross-entropy, summed), the prior N(0, I), the loss the negative ELBO.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import from_pretrained, resolve
from .images import to_mnist_style
from .runtime import device, fast_bf16

# pyplot is imported here, once: a first import from two request threads at the same time
# fails half-initialised (seen with the map and the loss curve drawing at once)
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class VAEConfig:
    latent_dim: int = 2
    channels: tuple[int, int] = (32, 64)
    hidden: int = 256
    # extra capacity (0/1 = the chapter's shape): a 3x3 conv + ReLU after each stride of the
    # encoder and after each upsampling of the decoder, and dense layers between z and the map
    extra_convs: int = 0
    decoder_dense: int = 1
    image_size: int = 28
    dataset: str = "mnist"
    class_names: tuple[str, ...] = tuple(str(i) for i in range(10))

    def __post_init__(self):
        self.channels = tuple(self.channels)
        self.class_names = tuple(self.class_names)


class ConvVAE(nn.Module):
    config_class = VAEConfig
    model_type = "conv_vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        side = config.image_size // 4
        k = config.extra_convs

        def extra(c):
            return [m for _ in range(k) for m in (nn.Conv2d(c, c, 3, padding=1), nn.ReLU())]

        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(), *extra(c1),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(), *extra(c2),
            nn.Flatten(), nn.Linear(c2 * side * side, config.hidden), nn.ReLU(),
        )
        self.to_mean = nn.Linear(config.hidden, config.latent_dim)
        self.to_log_var = nn.Linear(config.hidden, config.latent_dim)
        dense = [nn.Linear(config.latent_dim, config.hidden), nn.ReLU()]
        for _ in range(config.decoder_dense - 1):
            dense += [nn.Linear(config.hidden, config.hidden), nn.ReLU()]
        self.decoder = nn.Sequential(
            *dense,
            nn.Linear(config.hidden, c2 * side * side), nn.ReLU(),
            nn.Unflatten(1, (c2, side, side)),
            nn.ConvTranspose2d(c2, c2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            *extra(c2),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            *extra(c1),
            nn.Conv2d(c1, 1, 3, padding=1),
        )

    # ``conv_dtype`` (e.g. torch.bfloat16) runs only the convolution stacks at that precision; the
    # dense layers next to z stay fp32: a 2-D code is read to a hundredth at |z| ~ 10, which
    # bfloat16's 8-bit mantissa cannot hold (its step there is 0.06)

    def encode(self, x: torch.Tensor, conv_dtype: torch.dtype | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] (N, 1, 28, 28) -> posterior mean and log-variance (N, 2)."""
        with _conv_precision(x, conv_dtype):
            h = self.encoder[:-2](x)  # the convolutions and the flatten
        h = self.encoder[-2:](h.float())
        return self.to_mean(h), self.to_log_var(h)

    def decode_logits(self, z: torch.Tensor, conv_dtype: torch.dtype | None = None) -> torch.Tensor:
        dense = 2 * self.config.decoder_dense + 3  # the dense layers, the projection, unflatten
        h = self.decoder[:dense](z)
        with _conv_precision(h, conv_dtype):
            return self.decoder[dense:](h).float()

    def decode(self, z: torch.Tensor, conv_dtype: torch.dtype | None = None) -> torch.Tensor:
        """Latent points (N, 2) -> images in [0, 1] (N, 1, 28, 28): one batched call."""
        return torch.sigmoid(self.decode_logits(z, conv_dtype))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                conv_dtype: torch.dtype | None = None):
        mean, log_var = self.encode(x, conv_dtype)
        z = reparameterize(mean, log_var, generator)
        return self.decode_logits(z, conv_dtype), mean, log_var


def _conv_precision(like: torch.Tensor, dtype: torch.dtype | None):
    return torch.autocast(like.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def reparameterize(mean: torch.Tensor, log_var: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mean + sigma * eps, eps ~ N(0, I): differentiable in mean and log_var.  eps is drawn
    on the generator's device and moved, so a CPU generator seeds a GPU run the same way."""
    where = generator.device if generator is not None else mean.device
    eps = torch.randn(mean.shape, generator=generator, device=where, dtype=mean.dtype)
    return mean + torch.exp(0.5 * log_var) * eps.to(mean.device)


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over latent dimensions."""
    return -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1)


def negative_elbo(logits: torch.Tensor, x: torch.Tensor, mean: torch.Tensor,
                  log_var: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction nats, KL nats), each the mean over the batch."""
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = kl_divergence(mean, log_var)
    return (rec + beta * kl).mean(), rec.mean(), kl.mean()


def grid_points(center: tuple[float, float], span: float, n: int, spacing: str = "cdf") -> np.ndarray:
    """An n x n grid of latent points, rows top to bottom (z2 decreasing), columns left to right.

    ``cdf``: the chapter's spacing, points at the inverse normal CDF of evenly spaced
    probabilities, so each cell holds equal prior mass; the window ``center +- span/2`` is then
    measured in probability units mapped through the CDF.  ``linear``: evenly spaced in z.
    """
    from scipy.stats import norm

    if spacing == "cdf":
        axes = []
        for c in center:
            # the window spans `span` standard units around c, split into n equal-mass cells
            lo, hi = norm.cdf(c - span / 2), norm.cdf(c + span / 2)
            probs = lo + (np.arange(n) + 0.5) / n * (hi - lo)
            axes.append(norm.ppf(np.clip(probs, 1e-12, 1 - 1e-12)))
    else:
        axes = [c + (np.arange(n) + 0.5) / n * span - span / 2 for c in center]
    xs, ys = axes
    zz = np.stack(np.meshgrid(xs, ys[::-1]), axis=-1)  # rows: top = largest z2
    return zz.reshape(-1, 2).astype(np.float32)



def for_serving(model: ConvVAE) -> ConvVAE:
    """Eval mode, channels-last weights (the bf16 grid decode runs about 1.6x faster with them)."""
    return model.eval().to(memory_format=torch.channels_last)


@torch.no_grad()
def decode_points(model: ConvVAE, points: np.ndarray, fast: bool = False) -> np.ndarray:
    """Latent points (M, 2) -> uint8 images (M, 28, 28), in one batched decoder call.

    ``fast`` runs the decoder's convolutions in bfloat16 where the hardware does that natively
    (the dense layers next to z stay fp32; 1.6-1.9x faster for a 30 x 30 grid here; pixels
    differ from fp32's by 0.1-0.2 grey levels on average, a few percent on one pixel in a
    thousand): for the tab's grids and strips, not for measurements."""
    dev = next(model.parameters()).device
    z = torch.as_tensor(np.asarray(points, dtype=np.float32), device=dev)
    images = model.decode(z, torch.bfloat16 if fast and fast_bf16(dev) else None)[:, 0]
    return (images.clamp(0, 1) * 255).round().byte().cpu().numpy()


@torch.no_grad()
def encode_points(model: ConvVAE, images: np.ndarray) -> np.ndarray:
    """Float images (M, 28, 28) in [0, 1] -> posterior means (M, 2)."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=next(model.parameters()).device)
    mean, _ = model.encode(x[:, None])
    return mean.cpu().numpy()


def line_points(a: tuple[float, float], b: tuple[float, float], steps: int) -> np.ndarray:
    """Evenly spaced points from a to b (both ends included)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)


class LatentMap:
    """The encoded test set as a scatter (rendered once), with overlays drawn per request:
    the grid's window, a clicked point, an encoded drawing, an interpolation line.
    ``to_latent`` maps a click on the picture back to z."""

    def __init__(self, z: np.ndarray, labels: np.ndarray, class_names, size=(640, 560), dpi=100):
        from PIL import Image

        lim = float(np.ceil(np.percentile(np.abs(z), 99.5) + 0.5))
        self.limits = (-lim, lim)
        fig = plt.figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
        ax = fig.add_axes([0.08, 0.08, 0.66, 0.86])
        cmap = plt.get_cmap("tab10")
        for k, name in enumerate(class_names):
            pts = z[labels == k]
            ax.scatter(pts[:, 0], pts[:, 1], s=1.2, color=cmap(k), label=name, rasterized=True)
        ax.set_xlim(*self.limits), ax.set_ylim(*self.limits)
        ax.set_xlabel("z[0]"), ax.set_ylabel("z[1]")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=8, frameon=False,
                  fontsize=9)
        fig.canvas.draw()
        self.base = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        x0, y0, x1, y1 = ax.get_window_extent().extents
        height = self.base.size[1]
        self.box = (x0, height - y1, x1, height - y0)  # pixel box of the axes, top-left origin
        plt.close(fig)

    def to_pixel(self, z0: float, z1: float) -> tuple[float, float]:
        lo, hi = self.limits
        left, top, right, bottom = self.box
        return (left + (z0 - lo) / (hi - lo) * (right - left),
                bottom - (z1 - lo) / (hi - lo) * (bottom - top))

    def to_latent(self, x: float, y: float) -> tuple[float, float] | None:
        left, top, right, bottom = self.box
        if not (left <= x <= right and top <= y <= bottom):
            return None
        lo, hi = self.limits
        return (lo + (x - left) / (right - left) * (hi - lo),
                lo + (bottom - y) / (bottom - top) * (hi - lo))

    def draw(self, window=None, points=(), line=None) -> np.ndarray:
        """window: (x0, y0, x1, y1) in z; points: [(z0, z1, label)]; line: ((a0, a1), (b0, b1))."""
        from PIL import ImageDraw

        img = self.base.copy()
        d = ImageDraw.Draw(img)
        if window is not None:
            (px0, py0), (px1, py1) = self.to_pixel(window[0], window[3]), self.to_pixel(window[2], window[1])
            d.rectangle([px0, py0, px1, py1], outline=(0, 0, 0), width=2)
        if line is not None:
            d.line([self.to_pixel(*line[0]), self.to_pixel(*line[1])], fill=(220, 0, 120), width=3)
            for end, tag in zip(line, "AB"):
                x, y = self.to_pixel(*end)
                d.text((x + 6, y - 6), tag, fill=(220, 0, 120))
        for z0, z1, label in points:
            x, y = self.to_pixel(z0, z1)
            d.ellipse([x - 6, y - 6, x + 6, y + 6], outline=(0, 0, 0), width=3, fill=(255, 255, 0))
            d.text((x + 8, y + 4), label, fill=(0, 0, 0))
        return np.asarray(img)


LATENTS = "test_latents.safetensors"   # the encoded test set, exported beside the weights


class LatentExplorer:
    """A 2-D VAE with the map of where its test set lands (``LATENTS``), as the tab serves it."""

    def __init__(self, model: ConvVAE, latent_map: LatentMap):
        self.model, self.map = model, latent_map

    @classmethod
    def from_pretrained(cls, name: str) -> "LatentExplorer":
        from safetensors.numpy import load_file

        folder = resolve(name)
        model = for_serving(from_pretrained(ConvVAE, folder, device()))
        latents = load_file(str(folder / LATENTS))
        return cls(model, LatentMap(latents["z"].astype(np.float32), latents["labels"],
                                    model.config.class_names))

    def grid(self, center: tuple[float, float], span: float, n: int, spacing: str = "cdf"
             ) -> np.ndarray:
        """The n x n window's images (n*n, 28, 28) uint8, in one batched decode."""
        return decode_points(self.model, grid_points(center, span, n, spacing), fast=True)

    def decode(self, points: np.ndarray, fast: bool = False) -> np.ndarray:
        return decode_points(self.model, points, fast=fast)

    def encode(self, gray: np.ndarray) -> tuple[np.ndarray, tuple[float, float], list[str]]:
        """Any grey picture -> (its MNIST-style 28x28 version, its z, what was done to it)."""
        x, notes = to_mnist_style(gray)
        z0, z1 = (float(v) for v in encode_points(self.model, x[None])[0])
        return x, (z0, z1), notes
