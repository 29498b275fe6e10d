"""Face arithmetic: a DCGAN for 64x64 faces (Radford et al., 2015), a face-attribute
classifier that reads its faces, and the paper's latent arithmetic (averaged group vectors,
A - B + C, spherical interpolation, attribute directions), served by :class:`FacePipeline`.

    faces = FacePipeline.from_pretrained()
    gallery = faces.gallery(seed=0)          # (64, 64, 64, 3) uint8, the same for a seed
    result = faces.arithmetic(0, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .hub import from_pretrained, resolve
from .runtime import Gathered, bf16_cpu, device, generator as seeded, shared_result


@dataclass
class DCGANConfig:
    nz: int = 100        # latent size
    ngf: int = 64        # generator width (the last hidden layer; the first has 8x)
    ndf: int = 64        # discriminator width (the first layer; the last has 8x)
    nc: int = 3          # image channels
    dataset: str = ""


class Generator(nn.Module):
    """z (N, nz) -> image (N, 3, 64, 64) in [-1, 1]: transposed convolutions, batch norm, ReLU,
    tanh, as in the paper."""

    config_class = DCGANConfig
    model_type = "dcgan-generator"

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        g, nz = config.ngf, config.nz

        def up(i, o):
            return [nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True)]

        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, g * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(g * 8), nn.ReLU(True),
            *up(g * 8, g * 4), *up(g * 4, g * 2), *up(g * 2, g),
            nn.ConvTranspose2d(g, config.nc, 4, 2, 1, bias=False), nn.Tanh())
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image -> logit: strided convolutions, batch norm (not on the first layer), LeakyReLU 0.2."""

    config_class = DCGANConfig
    model_type = "dcgan-discriminator"

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        d = config.ndf

        def down(i, o):
            return [nn.Conv2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            nn.Conv2d(config.nc, d, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            *down(d, d * 2), *down(d * 2, d * 4), *down(d * 4, d * 8),
            nn.Conv2d(d * 8, 1, 4, 1, 0, bias=False))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def init_weights(m: nn.Module) -> None:
    """The paper's initialisation: N(0, 0.02) weights, batch-norm scale N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- attribute classifier


@dataclass
class FaceAttrConfig:
    attributes: list[str] = field(default_factory=lambda: ["Smiling", "Male", "Eyeglasses"])
    width: int = 32


class FaceAttributes(nn.Module):
    """A small CNN on 64x64 RGB faces in [-1, 1]: one logit per attribute.  A strided first
    convolution, then three blocks of two 3x3 convolutions (32 -> 16 -> 8 -> 4 px)."""

    config_class = FaceAttrConfig
    model_type = "face-attributes"

    def __init__(self, config: FaceAttrConfig):
        super().__init__()
        self.config = config
        w = config.width

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True),
                    nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True),
                    nn.MaxPool2d(2)]

        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),   # 64 -> 32
            *block(w, 2 * w), *block(2 * w, 4 * w), *block(4 * w, 8 * w))          # 32 -> 4
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(8 * w * 16, len(config.attributes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """P(attribute) for images in [-1, 1], (N, n_attributes); also averages the mirror image."""
        self.eval()
        out = []
        for i in range(0, len(images), batch):
            x = images[i:i + batch].contiguous(memory_format=torch.channels_last)
            logits = self(x) + self(x.flip(-1))
            out.append(torch.sigmoid(logits / 2))
        return torch.cat(out)


# ---------------------------------------------------------------- latent arithmetic


def latents(n: int, generator: torch.Generator, nz: int = 100) -> torch.Tensor:
    """n latent vectors from N(0, I), drawn from the request's generator."""
    return torch.randn((n, nz), generator=generator)


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, batch: int = 256, fast: bool = False) -> torch.Tensor:
    """Images in [-1, 1] for latents z (eval mode: batch norm uses its running statistics).

    ``fast`` runs the convolutions in bfloat16 on CPUs that do it natively (about twice as fast;
    pixels differ by a level or two): for the interactive tab, not for measurements."""
    G.eval()
    dev = next(G.parameters()).device
    low = fast and dev.type == "cpu" and bf16_cpu()
    out = []
    for i in range(0, len(z), batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            out.append(G(z[i:i + batch].to(dev)).float().cpu())
    return torch.cat(out)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def arithmetic(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """mean(A) - mean(B) + mean(C): the paper's averaged-vector arithmetic (works on latents
    (n, nz) and on images (n, 3, H, W) alike)."""
    for name, group in (("A", a), ("B", b), ("C", c)):
        if len(group) == 0:
            raise ValueError(f"group {name} is empty")
    return a.mean(0) - b.mean(0) + c.mean(0)


def neighbours(z: torch.Tensor, n: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` vectors around ``z``: z + scale * noise (the paper's 8 samples around a result)."""
    return z[None] + scale * torch.randn((n, z.numel()), generator=generator)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation (Shoemake; White 2016): along the great circle between z0 and z1,
    with the norm interpolated linearly. ``t`` scalar or (T,) gives (T, nz)."""
    t = torch.as_tensor(t, dtype=z0.dtype).reshape(-1, 1)
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 * u1).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-4:  # (anti)parallel: fall back to the straight line
        return (1 - t) * z0 + t * z1
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)


def attribute_directions(z: torch.Tensor, probs: torch.Tensor, names: list[str],
                         margin: float = 0.25) -> dict[str, torch.Tensor]:
    """For each attribute: mean z of confident positives minus mean z of confident negatives
    (by the classifier's probability), normalised to unit length."""
    out = {}
    for j, name in enumerate(names):
        pos, neg = probs[:, j] > 1 - margin, probs[:, j] < margin
        if pos.sum() < 5 or neg.sum() < 5:
            continue
        d = z[pos].mean(0) - z[neg].mean(0)
        out[name] = d / d.norm()
    return out


DIRECTIONS = "attribute_directions.safetensors"   # beside the generator's weights


def load_directions(path) -> dict[str, torch.Tensor]:
    """The attribute directions exported beside a generator (fp32, one unit vector each)."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path)).items()}


def sides(probs: torch.Tensor, names: list[str]) -> dict[str, bool]:
    """One face's reading (probabilities (n_attributes,)) as attribute -> has it: the ``keep``
    argument of :func:`move_along`."""
    return {n: bool(p > 0.5) for n, p in zip(names, probs.tolist())}


def move_along(z: torch.Tensor, shifts: dict[str, float], directions: dict[str, torch.Tensor],
               keep: dict[str, bool] | None = None) -> tuple[torch.Tensor, list[str]]:
    """``z`` (nz,) moved by ``shifts[name]`` along each attribute's unit direction.

    The directions are entangled (in the shipped generator glasses also point towards "male"),
    so a plain move can carry a face across other attributes. ``keep`` (attribute -> whether the face has it now, as the
    classifier reads it) holds those attributes on their side: each move loses its components
    along kept directions that point *away* from the face's side (projected out until none is
    left, the rest rescaled to unit length), and keeps the ones that point further in, where
    they do no harm (a man given glasses moves along the raw direction). Returns the moved z and
    the kept attributes a move was turned away from."""
    moved, held = z.clone(), []
    side = {k: 1.0 if has else -1.0 for k, has in (keep or {}).items()
            if k in directions and k not in shifts}
    for name, value in shifts.items():
        if not value or name not in directions:
            continue
        d = directions[name] * (1.0 if value > 0 else -1.0)
        against: list[str] = []
        v = d
        while True:
            new = [k for k in side if k not in against and side[k] * float(v @ directions[k]) < -1e-6]
            if not new:
                break
            against += new
            q, _ = torch.linalg.qr(torch.stack([directions[k] for k in against]).T)
            v = d - q @ (q.T @ d)
            if float(v.norm()) < 1e-3:   # the move lies within the kept directions: nothing left
                break
        if float(v.norm()) >= 1e-3:
            moved = moved + abs(value) * v / v.norm()
        held += [k for k in against if k not in held]
    return moved, held


# ---------------------------------------------------------------- groups chosen by the classifier


@dataclass(frozen=True)
class Preset:
    """A - B + C = target, each side described by attribute values (True = has it)."""
    a: dict
    b: dict
    c: dict
    target: dict


PRESETS = {
    "smiling woman - neutral woman + neutral man": Preset(
        a={"Smiling": True, "Male": False}, b={"Smiling": False, "Male": False},
        c={"Smiling": False, "Male": True}, target={"Smiling": True, "Male": True}),
    "man with glasses - man without + woman without": Preset(
        a={"Eyeglasses": True, "Male": True}, b={"Eyeglasses": False, "Male": True},
        c={"Eyeglasses": False, "Male": False}, target={"Eyeglasses": True, "Male": False}),
    "smiling man - neutral man + neutral woman": Preset(
        a={"Smiling": True, "Male": True}, b={"Smiling": False, "Male": True},
        c={"Smiling": False, "Male": False}, target={"Smiling": True, "Male": False}),
    "neutral woman - smiling woman + smiling man": Preset(
        a={"Smiling": False, "Male": False}, b={"Smiling": True, "Male": False},
        c={"Smiling": True, "Male": True}, target={"Smiling": False, "Male": True}),
}


def matches(probs: torch.Tensor, names: list[str], spec: dict, confident: float = 0.8) -> torch.Tensor:
    """Faces the classifier confidently puts in ``spec`` (``confident`` = required probability)."""
    ok = torch.ones(len(probs), dtype=torch.bool)
    for attr, wanted in spec.items():
        p = probs[:, names.index(attr)]
        ok &= (p > confident) if wanted else (p < 1 - confident)
    return ok


def hits(probs: torch.Tensor, names: list[str], spec: dict) -> torch.Tensor:
    """Faces the classifier calls ``spec`` (probability on the right side of 0.5)."""
    return matches(probs, names, spec, confident=0.5)


def pick_groups(probs: torch.Tensor, names: list[str], preset: Preset, k: int = 3,
                levels: tuple[float, ...] = (0.8, 0.65, 0.5)) -> list[torch.Tensor]:
    """The tab's automatic choice for a preset: per group, the ``k`` faces the classifier is
    surest of (the product of the probabilities of the group's attribute values), among the
    faces it puts in the group at the first confidence level of ``levels`` that has ``k`` of
    them.  Raises ``LookupError("A")`` (the group's letter) when no face fits a group."""
    chosen = []
    for label, side in zip("ABC", (preset.a, preset.b, preset.c)):
        for confident in levels:
            found = torch.where(matches(probs, names, side, confident))[0]
            if len(found) >= k:
                break
        if len(found) == 0:
            raise LookupError(label)
        score = torch.ones(len(found))
        for attr, wanted in side.items():
            p = probs[found, names.index(attr)]
            score *= p if wanted else 1 - p
        chosen.append(found[score.argsort(descending=True)[:k]])
    return chosen


# ---------------------------------------------------------------- the pipeline


@dataclass
class Arithmetic:
    """A - B + C: the groups' faces, the result and its neighbours, the same sum on pixels."""
    groups: list[np.ndarray]       # per group (n, 64, 64, 3) uint8
    result: np.ndarray             # (64, 64, 3) uint8
    neighbours: np.ndarray         # (8, 64, 64, 3) uint8
    pixels: np.ndarray             # (64, 64, 3) uint8
    reading: dict[str, float]      # the classifier's probabilities for the result


@dataclass
class Edit:
    """A face before and after a move along attribute directions."""
    before: np.ndarray             # (64, 64, 3) uint8
    after: np.ndarray
    reading: dict[str, float]      # of the edited face
    held: dict[str, bool]          # attributes a move was turned away from -> the face's side
    missing: list[str]             # attributes asked for that have no direction


@dataclass
class FacePipeline:
    """The generator, the classifier that reads its faces, and the attribute directions exported
    beside the generator. Every face is named by (seed, index): a seed's pool of latents is
    drawn from its own generator, so the first 64 of 256 are the same 64 faces."""
    G: Generator
    clf: FaceAttributes
    directions: dict[str, torch.Tensor]

    @classmethod
    def from_pretrained(cls, generator: str = "dcgan-faces", classifier: str = "face-attributes",
                        progress: Callable[[float, str], None] | None = None) -> "FacePipeline":
        report = progress or (lambda fraction, message: None)
        report(0.3, "Loading the DCGAN generator")
        G = from_pretrained(Generator, generator, device=device()).to(memory_format=torch.channels_last)
        report(0.6, "Loading the face-attribute classifier")
        clf = from_pretrained(FaceAttributes, classifier, device="cpu")
        return cls(G, clf, load_directions(resolve(generator) / DIRECTIONS))

    @property
    def attributes(self) -> list[str]:
        return self.clf.config.attributes

    def pool(self, seed: int, n: int = 256) -> torch.Tensor:
        return latents(n, seeded(seed), self.G.config.nz)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        return generate(self.G, z, fast=True)

    def read(self, images: torch.Tensor) -> dict[str, float]:
        return {n: float(p) for n, p in zip(self.attributes, self.clf.probabilities(images)[0])}

    def __post_init__(self):
        # a seed's gallery and its pool's attribute readings are computed once however many
        # visitors ask for them at once (a classroom opens the tab on the default seed), and
        # galleries of different seeds asked for together go through the generator together
        self._gallery = shared_result(16)(Gathered(self._galleries))
        self.readings = shared_result(16)(self._readings)

    def gallery(self, seed: int, n: int = 64) -> np.ndarray:
        """The seed's first ``n`` faces, (n, 64, 64, 3) uint8."""
        return self._gallery(seed, n)

    def _galleries(self, calls: list[tuple[int, int]]) -> list[np.ndarray]:
        """The galleries of several (seed, n) calls in one forward, each as if alone."""
        pools = [self.pool(seed, n) for seed, n in calls]
        faces = to_uint8(self.images(torch.cat(pools)))
        return np.split(faces, np.cumsum([len(p) for p in pools])[:-1])

    def _readings(self, seed: int, n: int = 256) -> torch.Tensor:
        return self.clf.probabilities(self.images(self.pool(seed, n)))

    def pick(self, seed: int, preset: Preset, n: int = 256) -> list[list[int]]:
        """Three faces per group, chosen by the classifier among the seed's ``n``
        (:func:`pick_groups`; ``LookupError`` names a group no face fits)."""
        return [g.tolist() for g in pick_groups(self.readings(seed, n), self.attributes, preset)]

    def arithmetic(self, seed: int, groups: list[list[int]], noise: float = 0.25) -> Arithmetic:
        z = self.pool(seed)
        members = [self.images(z[g]) for g in groups]
        result = arithmetic(*(z[g] for g in groups))
        around = neighbours(result, 8, noise, seeded(seed + 1))
        faces = self.images(torch.cat([result[None], around]))
        pixels = arithmetic(*members).clamp(-1, 1)[None]
        out = to_uint8(faces)
        return Arithmetic([to_uint8(m) for m in members], out[0], out[1:], to_uint8(pixels)[0],
                          self.read(faces[:1]))

    def edit(self, seed: int, face: int, shifts: dict[str, float], keep: bool = True) -> Edit:
        """Face ``face`` of the seed moved by ``shifts`` (attribute -> distance) along the
        directions, keeping the other attributes on their side if ``keep`` (:func:`move_along`)."""
        z = self.pool(seed)[face]
        wanted = {k: v for k, v in shifts.items() if v and k in self.directions}
        missing = [k for k, v in shifts.items() if v and k not in self.directions]
        before = self.images(z[None])
        now = sides(self.clf.probabilities(before)[0], self.attributes) if keep else None
        moved, held = move_along(z, wanted, self.directions, keep=now)
        after = self.images(moved[None])
        faces = to_uint8(torch.cat([before, after]))
        return Edit(faces[0], faces[1], self.read(after), {k: now[k] for k in held}, missing)

    def interpolate(self, seed: int, start: int, end: int, steps: int) -> np.ndarray:
        """(steps, 64, 64, 3) uint8 faces along the great circle from one face to another."""
        z = self.pool(seed)
        return to_uint8(self.images(slerp(z[start], z[end], torch.linspace(0, 1, steps))))
