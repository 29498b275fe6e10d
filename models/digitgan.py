"""The chapters' GANs on 28x28 images: the simple MLP GAN (784-1024-512-256 discriminator, 100-256-
512-1024-784 generator) and a small DCGAN, trained round by round (one discriminator update, one
generator update, non-saturating loss, one-sided label smoothing) live in the GAN lab or by
``train/digitgan.py``; and a pipeline over a shipped generator. No Gradio."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ganlab import Record, plot_history
from .hub import WEIGHTS_DIR, from_pretrained
from .images import grid as image_grid

KINDS = {"mlp": "Simple GAN (MLPs)", "dcgan": "DCGAN (convolutions)"}
GRID = 64                     # the fixed-noise grid: 8 x 8 samples that keep their noise


@dataclass
class DigitGANConfig:
    kind: str = "mlp"
    dataset: str = "mnist"
    noise_dim: int = 100
    width: int = 256          # the MLPs' narrowest layer (the chapter's 256-512-1024)
    channels: int = 32        # the DCGAN's: generator 4c-2c-1, discriminator 2c-4c
    lr_d: float = 2e-4
    lr_g: float = 2e-4
    batch: int = 64
    smooth: float = 0.9       # one-sided label smoothing: the target for real images
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}: one of {list(KINDS)}")


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class Generator(nn.Module):
    """Noise (N, noise_dim) -> images in [-1, 1], (N, 1, 28, 28)."""

    model_type = "digit-gan-generator"
    config_class = DigitGANConfig

    def __init__(self, config: DigitGANConfig):
        super().__init__()
        self.config = config
        z, w, c = config.noise_dim, config.width, config.channels
        if config.kind == "mlp":
            self.net = nn.Sequential(nn.Linear(z, w), _leaky(), nn.Linear(w, 2 * w), _leaky(),
                                     nn.Linear(2 * w, 4 * w), _leaky(), nn.Linear(4 * w, 784), nn.Tanh())
        else:
            self.net = nn.Sequential(
                nn.Linear(z, 4 * c * 49), nn.Unflatten(1, (4 * c, 7, 7)), nn.BatchNorm2d(4 * c), nn.ReLU(),
                nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.BatchNorm2d(2 * c), nn.ReLU(),
                nn.ConvTranspose2d(2 * c, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


class Discriminator(nn.Module):
    """Images (N, 1, 28, 28) -> a logit per image (N,)."""

    def __init__(self, config: DigitGANConfig):
        super().__init__()
        w, c = config.width, config.channels
        if config.kind == "mlp":
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 4 * w), _leaky(), nn.Dropout(0.3),
                                     nn.Linear(4 * w, 2 * w), _leaky(), nn.Dropout(0.3),
                                     nn.Linear(2 * w, w), _leaky(), nn.Dropout(0.3), nn.Linear(w, 1))
        else:
            self.net = nn.Sequential(
                nn.Conv2d(1, 2 * c, 4, 2, 1), _leaky(),
                nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.BatchNorm2d(4 * c), _leaky(),
                nn.Flatten(), nn.Linear(4 * c * 49, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def init_weights(module: nn.Module) -> None:
    """The DCGAN paper's N(0, 0.02) for convolutions; PyTorch's defaults for the MLPs."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, 1, 28, 28) -> uint8 (N, 28, 28)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()


def sheet(images: torch.Tensor, cols: int = 8, cell: int = 56) -> np.ndarray:
    """A grid of samples, enlarged, white background lines between them (RGB uint8)."""
    return image_grid(list(to_uint8(images)), cols=cols, cell=cell, gap=2)


class DigitGAN:
    """A generator and a discriminator learning one image set, round by round. ``images`` are
    uint8 (N, 28, 28), kept as they are (games on one server share the array); each batch is
    scaled to [-1, 1]."""

    def __init__(self, config: DigitGANConfig, images: np.ndarray, bf16: bool = False):
        self.config = config
        self.bf16 = bf16          # bfloat16 autocast for the updates (where the CPU has it natively)
        self.data = torch.from_numpy(np.require(images, np.uint8, "CW"))
        self.generator = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G, self.D = Generator(config), Discriminator(config)
            if config.kind == "dcgan":
                init_weights(self.G), init_weights(self.D)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
        self.steps = 0
        self.seconds = 0.0        # spent in updates
        self.history: list[Record] = []
        self.fixed = self.noise(GRID)     # the grid's noise: the same 64 samples all game long

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=self.generator)

    def tune(self, lr_d: float, lr_g: float) -> None:
        """New learning rates, from the next round on."""
        self.config = dataclasses.replace(self.config, lr_d=lr_d, lr_g=lr_g)
        for opt, lr in ((self.opt_d, lr_d), (self.opt_g, lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr

    def step(self, rounds: int = 1) -> None:
        """``rounds`` rounds: one discriminator update on a real and a fake batch, then one
        generator update with the non-saturating loss."""
        c = self.config
        self.G.train(), self.D.train()
        start = time.perf_counter()
        for _ in range(rounds):
            pick = torch.randint(0, len(self.data), (c.batch,), generator=self.generator)
            real = self.data[pick].float().div(127.5).sub(1).unsqueeze(1)
            z = self.noise(c.batch)
            with (torch.random.fork_rng(devices=[]),     # dropout drawn from the game's generator
                  torch.autocast("cpu", torch.bfloat16, enabled=self.bf16)):
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
                fake = self.G(z)
                out_real, out_fake = self.D(real), self.D(fake.detach())
                d_loss = (F.binary_cross_entropy_with_logits(out_real, torch.full_like(out_real, c.smooth))
                          + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
                self.opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                self.opt_d.step()
                out = self.D(fake)
                g_loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
                self.opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                self.opt_g.step()
            self.steps += 1
            self.history.append(Record(self.steps, d_loss.item(), g_loss.item(),
                                       torch.sigmoid(out_real).mean().item(),
                                       torch.sigmoid(out_fake).mean().item(), math.nan))
        self.seconds += time.perf_counter() - start

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.G.eval()
        z = torch.randn(n, self.config.noise_dim, generator=generator or self.generator)
        return torch.cat([self.G(z[i:i + 500]) for i in range(0, n, 500)])

    @torch.no_grad()
    def grid(self, cell: int = 56) -> np.ndarray:
        self.G.eval()
        return sheet(self.G(self.fixed), cols=8, cell=cell)

    def curves(self, width: int = 480, height: int = 220) -> np.ndarray:
        """The losses and D's mean verdicts, averaged over about 1% of the rounds so far (one
        batch's values jump too much to read)."""
        return plot_history(smoothed(self.history), "nonsaturating", width, height)

    @property
    def epochs(self) -> float:
        return self.steps * self.config.batch / len(self.data)

    def state(self) -> dict:
        """Everything to resume (tensors only: safe to save as safetensors)."""
        return {**{f"G.{k}": v for k, v in self.G.state_dict().items()},
                **{f"D.{k}": v for k, v in self.D.state_dict().items()}}


def smoothed(history: list[Record], share: float = 0.01) -> list[Record]:
    """Running means over a window of ``share`` of the rounds (at least one), thinned to at
    most 1,000 records for the chart."""
    history = list(history)
    if len(history) < 3:
        return history
    window = max(1, int(len(history) * share))
    values = np.array([[r.d_loss, r.g_loss, r.d_real, r.d_fake] for r in history])
    sums = np.cumsum(np.vstack([np.zeros((1, 4)), values]), axis=0)
    lo = np.maximum(0, np.arange(len(history)) - window + 1)
    means = (sums[1:] - sums[lo]) / (np.arange(len(history)) - lo + 1)[:, None]
    keep = np.unique(np.linspace(0, len(history) - 1, min(len(history), 1000)).astype(int))
    return [Record(history[i].step, *map(float, means[i]), math.nan) for i in keep]


# ------------------------------------------------------------------ shipped generators


def shipped_name(kind: str, dataset: str) -> str:
    return f"gan-{kind}-{dataset}"


def shipped_available(kind: str, dataset: str) -> bool:
    return (WEIGHTS_DIR / shipped_name(kind, dataset) / "model.safetensors").is_file()


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between noise vectors (keeps them at a typical length)."""
    cos = (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    t = t[:, None]
    if float(so.abs().min()) < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


class DigitGANPipeline:
    """A trained generator: samples for a seed, and a walk between two seeds' noise."""

    def __init__(self, G: Generator):
        self.G = G.eval()
        self.config = G.config

    @classmethod
    def from_pretrained(cls, name_or_path) -> "DigitGANPipeline":
        return cls(from_pretrained(Generator, name_or_path))

    def noise(self, seed: int, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def __call__(self, seed: int = 0, n: int = 64) -> torch.Tensor:
        return self.G(self.noise(seed, n))

    @torch.no_grad()
    def interpolate(self, seed_a: int, seed_b: int, steps: int = 10, rows: int = 4) -> torch.Tensor:
        """``rows`` walks, each from seed_a's k-th sample to seed_b's k-th, ``steps`` images long
        (row-major: rows x steps images)."""
        a, b = self.noise(seed_a, rows), self.noise(seed_b, rows)
        t = torch.linspace(0, 1, steps)
        z = torch.cat([slerp(a[k:k + 1].expand(steps, -1), b[k:k + 1].expand(steps, -1), t)
                       for k in range(rows)])
        return self.G(z)
