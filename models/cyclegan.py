"""CycleGAN (Zhu et al., 2017): two generators translate between two sets of faces that were never
paired (blond <-> black hair, glasses <-> none), held together by cycle consistency, A -> B -> A.
The networks follow the paper's reference code (ResNet-block generators with instance norm,
PatchGAN discriminators), scaled for 64x64 faces on a CPU; :class:`CycleGANPipeline` serves them.

    pipe = CycleGANPipeline.from_pretrained("cyclegan-hair")
    out = pipe(faces, "a2b")        # faces: (N, 64, 64, 3) uint8 -> out.translated, out.cycled
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import from_pretrained, resolve

SIZE = 64
DIRECTIONS = ("a2b", "b2a")


@dataclass
class CycleGANConfig:
    domains: list[str] = field(default_factory=lambda: ["blond hair", "black hair"])
    # CelebA attribute values (+1 / -1) that define each domain, e.g. {"Blond_Hair": 1, "Black_Hair": -1}
    rules: list[dict] = field(default_factory=lambda: [{"Blond_Hair": 1, "Black_Hair": -1},
                                                       {"Black_Hair": 1, "Blond_Hair": -1}])
    ngf: int = 32        # generator width at full resolution (2x and 4x after each downsampling)
    blocks: int = 6      # residual blocks at 16x16 (the reference uses 9 at 256 px, 6 at 128)
    ndf: int = 32        # discriminator width (first layer)
    d_layers: int = 2    # strided layers of the PatchGAN: 2 -> 34x34 patches (3 -> 70x70)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """(N, 3, 64, 64) in [-1, 1] -> same: c7s1-g, d2g, d4g, R4g x blocks, u2g, ug, c7s1-3, tanh."""

    def __init__(self, ngf: int = 32, blocks: int = 6):
        super().__init__()
        g = ngf
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, g, 7), nn.InstanceNorm2d(g), nn.ReLU(True)]
        for m in (1, 2):
            layers += [nn.Conv2d(g * m, g * m * 2, 3, 2, 1), nn.InstanceNorm2d(g * m * 2), nn.ReLU(True)]
        layers += [ResnetBlock(g * 4) for _ in range(blocks)]
        for m in (4, 2):
            layers += [nn.ConvTranspose2d(g * m, g * m // 2, 3, 2, 1, output_padding=1),
                       nn.InstanceNorm2d(g * m // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(g, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """PatchGAN: one real/fake score per overlapping patch (LSGAN: no sigmoid)."""

    def __init__(self, ndf: int = 32, layers: int = 2):
        super().__init__()
        seq = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < layers else 1
            seq += [nn.Conv2d(ch, out, 4, stride, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        seq += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(m: nn.Module) -> None:
    """The reference's 'normal' init: N(0, 0.02) convolutions, zero biases."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class CycleGAN(nn.Module):
    """The two generators the app needs: ``a2b`` (domain A -> B) and ``b2a``."""

    config_class = CycleGANConfig
    model_type = "cyclegan"

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.config = config
        self.a2b = Generator(config.ngf, config.blocks)
        self.b2a = Generator(config.ngf, config.blocks)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return getattr(self, check_direction(direction))(x)


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction is one of {DIRECTIONS}, not {direction!r}")
    return direction


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return x.permute(0, 2, 3, 1).cpu().numpy()


MIN_CROP = 24  # a square smaller than this many pixels of the upload is not a face to work on


def square_crop(image: np.ndarray, size: float = 1.0, cx: float = 0.5, cy: float = 0.5
                ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A square of side ``size`` x the shorter side, centred at (cx, cy) (fractions of the
    width and height) and moved inside the image, resized to 64x64: the face and its box
    (left, top, right, bottom). Raises ValueError when the square would be under MIN_CROP px."""
    from PIL import Image

    h, w = image.shape[:2]
    side = int(round(min(h, w) * size))
    if side < MIN_CROP:
        raise ValueError(f"a {side} px square is too small to hold a face (at least {MIN_CROP} px)")
    left = int(round(min(max(cx * w - side / 2, 0), w - side)))
    top = int(round(min(max(cy * h - side / 2, 0), h - side)))
    box = (left, top, left + side, top + side)
    face = Image.fromarray(image).crop(box).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(face.convert("RGB"), dtype=np.uint8).copy(), box


@dataclass
class Translation:
    source: np.ndarray      # (N, 64, 64, 3) uint8, as given
    translated: np.ndarray  # A -> B (or B -> A)
    cycled: np.ndarray      # back again: A -> B -> A
    change: np.ndarray      # (N, 64, 64) in [0, 1]: mean absolute change per pixel, source -> translated
    direction: str
    names: tuple[str, str]  # (from, to)


@dataclass
class CycleGANPipeline:
    model: CycleGAN
    name: str = ""

    @classmethod
    def from_pretrained(cls, name: str = "cyclegan-hair", device: str = "cpu") -> "CycleGANPipeline":
        folder = resolve(name)
        return cls(from_pretrained(CycleGAN, folder, device), folder.name)

    @property
    def domains(self) -> list[str]:
        return list(self.model.config.domains)

    @torch.inference_mode()
    def __call__(self, faces: np.ndarray, direction: str = "a2b", batch: int = 64) -> Translation:
        check_direction(direction)
        if faces.ndim == 3:
            faces = faces[None]
        if faces.ndim != 4 or faces.shape[1:] != (SIZE, SIZE, 3) or faces.dtype != np.uint8:
            raise ValueError(f"faces are (N, {SIZE}, {SIZE}, 3) uint8, not {faces.shape} {faces.dtype}")
        back = "b2a" if direction == "a2b" else "a2b"
        there, again = [], []
        for i in range(0, len(faces), batch):
            x = to_tensor(faces[i:i + batch])
            y = self.model(x, direction)
            there.append(y)
            again.append(self.model(y, back))
        y, z = torch.cat(there), torch.cat(again)
        change = (y - to_tensor(faces)).abs().mean(1) / 2
        a, b = self.domains
        names = (a, b) if direction == "a2b" else (b, a)
        return Translation(faces, to_uint8(y), to_uint8(z), change.clamp(0, 1).numpy(), direction, names)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017), the reference's choice: (D(x) - 1)^2 or D(x)^2."""
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


def cycle_loss(x: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
    """L1 between an image and its round trip A -> B -> A."""
    return (x - back).abs().mean()


class ImagePool:
    """The history of generated images a discriminator learns from (Shrivastava et al. 2017):
    until full, a fake goes in and back out; afterwards, with probability one half, it replaces a
    random stored image, which is returned in its place."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, fakes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for img in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(len(self.images), (), generator=generator))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": torch.stack(self.images) if self.images else torch.zeros(0)}

    def load_state_dict(self, state: dict) -> None:
        self.images = [img.clone() for img in state["images"]]


def latent_edit(faces, rules: list[dict], direction: str, seed: int = 0, shift: float = 4.0):
    """The Face arithmetic tab's way to the same change, for comparison: the first face of a
    seed's DCGAN pool that the classifier reads as the source side (and as a woman where it can:
    most faces of both hair domains are), moved ``shift`` along the target attribute's latent
    direction, other attributes held. ``faces`` is a :class:`models.faces.FacePipeline`;
    returns its ``Edit``, or None without a direction or a source-side face."""
    target = rules[1] if check_direction(direction) == "a2b" else rules[0]
    moves = [(name, value) for name, value in target.items() if name in faces.directions]
    if not moves:
        return None
    name, value = moves[0]
    probs = faces.readings(seed)
    source = (probs[:, faces.attributes.index(name)] > 0.5) == (value < 0)
    if "Male" in faces.attributes and name != "Male":
        women = source & (probs[:, faces.attributes.index("Male")] < 0.5)
        source = women if women.any() else source
    if not source.any():
        return None
    face = int(torch.nonzero(source)[0])
    return faces.edit(seed, face, {name: shift * value}, keep=True)
