"""GAN lab: a GAN on 2-D points, trained update by update, and the pictures that show the game
(the discriminator's verdict as a heat map, the generator's mapping as a warped grid, its
gradients as arrows on the fake points), with the measures that say how it is going (modes
covered, Jensen-Shannon divergence on a grid). No Gradio."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import nn

BOX = 3.0                                   # the plane shown: [-BOX, BOX] in x and y
TARGETS = {"ring": "Ring of 8 Gaussians", "two": "Two Gaussians", "line": "Line",
           "spiral": "Spiral", "moons": "Two moons", "drawn": "Your points"}
LOSSES = {"minimax": "Minimax (the original)", "nonsaturating": "Non-saturating",
          "lsgan": "Least squares", "wgan-gp": "Wasserstein + gradient penalty"}
OPTIMISERS = ("adam", "sgd")
DRAWN_SIGMA = 0.12                          # each click on the canvas is a Gaussian blob
MAX_DRAWN = 64


@dataclass
class ToyConfig:
    target: str = "ring"
    loss: str = "nonsaturating"
    optimiser: str = "adam"
    lr_d: float = 1e-3
    lr_g: float = 1e-3
    d_steps: int = 1            # discriminator updates per generator update
    width: int = 128            # hidden units per layer, both networks
    depth: int = 2              # hidden layers, both networks
    noise_dim: int = 2
    batch: int = 256
    gp_weight: float = 0.1      # the WGAN-GP paper's weight for its toy experiments
    head_start: int = 0         # discriminator updates before the game starts
    seed: int = 0
    points: list = field(default_factory=list)   # the centres of "drawn" blobs, (x, y)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}: one of {list(TARGETS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}: one of {list(LOSSES)}")
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"unknown optimiser {self.optimiser!r}: one of {list(OPTIMISERS)}")
        if self.target == "drawn" and not self.points:
            raise ValueError("the drawn target needs at least one point")


# ------------------------------------------------------------------ targets


def modes(config: ToyConfig) -> list[tuple[float, float, float]] | None:
    """(x, y, sigma) of each Gaussian mode of a mixture target; None for the others."""
    if config.target == "ring":
        return [(2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8), 0.05)
                for k in range(8)]
    if config.target == "two":
        return [(-1.4, -0.6, 0.3), (1.4, 0.6, 0.3)]
    if config.target == "drawn":
        return [(float(x), float(y), DRAWN_SIGMA) for x, y in config.points]
    return None


def sample_target(config: ToyConfig, n: int, generator: torch.Generator) -> torch.Tensor:
    """n points of the target distribution, (n, 2)."""
    mix = modes(config)
    if mix is not None:
        m = torch.tensor(mix, dtype=torch.float32)
        pick = torch.randint(0, len(m), (n,), generator=generator)
        return m[pick, :2] + m[pick, 2:] * torch.randn(n, 2, generator=generator)
    u = torch.rand(n, generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    if config.target == "line":
        x = 4 * u - 2
        return torch.stack([x, 0.5 * x], 1) + 0.04 * noise
    if config.target == "spiral":
        t = u.sqrt()                      # equal density along the arm's length
        r, a = 0.3 + 2.2 * t, 3.5 * math.pi * t
        return torch.stack([r * a.cos(), r * a.sin()], 1) + 0.06 * noise
    # two moons (as scikit-learn draws them), centred and scaled to the plane
    upper = torch.rand(n, generator=generator) < 0.5
    a = math.pi * u
    x = torch.where(upper, a.cos(), 1 - a.cos())
    y = torch.where(upper, a.sin(), 0.5 - a.sin())
    return torch.stack([1.6 * (x - 0.5), 1.6 * (y - 0.25)], 1) + 0.07 * noise


# ------------------------------------------------------------------ networks and losses


def mlp(d_in: int, width: int, depth: int, d_out: int, act: type[nn.Module]) -> nn.Sequential:
    layers, d = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, d_out))


class LeakyReLU(nn.LeakyReLU):
    def __init__(self):
        super().__init__(0.2)


def d_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss from its raw outputs on real and fake points (without the
    WGAN-GP penalty, added by the caller): logits for the two log losses, scores otherwise."""
    if loss in ("minimax", "nonsaturating"):       # -log D(x) - log(1 - D(G(z)))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "lsgan":                            # (D(x) - 1)^2 / 2 + D(G(z))^2 / 2
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    if loss == "wgan-gp":                          # the critic: E[D(fake)] - E[D(real)]
        return fake.mean() - real.mean()
    raise ValueError(f"unknown loss {loss!r}")


def g_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the discriminator's raw outputs on its points."""
    if loss == "minimax":                          # log(1 - D(G(z))): flat where D is sure
        return -F.softplus(fake).mean()
    if loss == "nonsaturating":                    # -log D(G(z))
        return F.softplus(-fake).mean()
    if loss == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    if loss == "wgan-gp":
        return -fake.mean()
    raise ValueError(f"unknown loss {loss!r}")


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """(|grad D(x_hat)| - 1)^2 at random points between real and fake ones (Gulrajani et al.)."""
    t = torch.rand(len(real), 1, generator=generator)
    x = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def verdict(loss: str, out: torch.Tensor) -> torch.Tensor:
    """What the discriminator says about a point, on the scale it was trained on: a probability
    of "real" for the log losses, the least-squares target (0 fake, 1 real), the raw critic
    score for WGAN."""
    return torch.sigmoid(out) if loss in ("minimax", "nonsaturating") else out


# ------------------------------------------------------------------ measures


@dataclass
class Measures:
    js_bits: float                       # Jensen-Shannon divergence on a 40x40 grid, 0..1 bits
    modes: int | None = None             # how many modes the target has (mixtures only)
    covered: int | None = None           # modes holding at least 1% of the fake points
    quality: float | None = None         # share of fake points within 3 sigma of some mode
    area: float | None = None            # non-mixtures: share of the target's cells reached

    def summary(self) -> str:
        parts = [f"JS divergence {self.js_bits:.2f} bits"]
        if self.modes is not None:
            parts.insert(0, f"modes covered {self.covered}/{self.modes}")
            parts.append(f"{100 * self.quality:.0f}% of fakes on a mode")
        else:
            parts.insert(0, f"target area covered {100 * self.area:.0f}%")
        return ", ".join(parts)


def histogram(points: np.ndarray, bins: int) -> np.ndarray:
    h, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, range=[[-BOX, BOX]] * 2)
    return h / max(1, len(points))


def js_divergence(real: np.ndarray, fake: np.ndarray, bins: int = 40) -> float:
    """Between the two point sets' histograms on a bins x bins grid of the plane, in bits
    (0: the same histogram, 1: no cell in common). Points off the plane fall out of both."""
    p, q = histogram(real, bins).ravel(), histogram(fake, bins).ravel()
    p, q = p / max(p.sum(), 1e-12), q / max(q.sum(), 1e-12)
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def measure(config: ToyConfig, real: np.ndarray, fake: np.ndarray) -> Measures:
    js = js_divergence(real, fake)
    mix = modes(config)
    if mix is None:
        bins = 30
        target, reached = histogram(real, bins) > 0.002, histogram(fake, bins) > 0
        return Measures(js, area=float((target & reached).sum() / max(1, target.sum())))
    centres = np.array([m[:2] for m in mix])
    sigmas = np.array([m[2] for m in mix])
    d = np.linalg.norm(fake[:, None, :] - centres[None], axis=2) / sigmas    # (n, modes)
    near = d.argmin(1)
    on = d.min(1) <= 3
    counts = np.bincount(near[on], minlength=len(mix))
    return Measures(js, modes=len(mix), covered=int((counts >= 0.01 * len(fake)).sum()),
                    quality=float(on.mean()))


# ------------------------------------------------------------------ the game


@dataclass
class Record:
    step: int
    d_loss: float
    g_loss: float
    d_real: float        # the discriminator's mean verdict on real points
    d_fake: float        # ... and on fake ones
    g_push: float        # the mean length of the generator loss's gradient at a fake point


class ToyGAN:
    """A generator and a discriminator (MLPs) playing on one 2-D target. ``step()`` is one
    round: ``d_steps`` discriminator updates, then one generator update."""

    def __init__(self, config: ToyConfig):
        self.config = config
        self.generator = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G = mlp(config.noise_dim, config.width, config.depth, 2, nn.ReLU)
            self.D = mlp(2, config.width, config.depth, 1, LeakyReLU)
        self.opt_g = self._optimiser(self.G, config.lr_g)
        self.opt_d = self._optimiser(self.D, config.lr_d)
        self.steps = 0            # rounds played
        self.history: list[Record] = []
        self.last = dict(d_loss=math.nan, g_loss=math.nan, d_real=math.nan, d_fake=math.nan, g_push=math.nan)
        # what the pictures show does not move between frames: the same noise and real points
        self.show_z = self.noise(400)
        self.show_real = sample_target(config, 400, self.generator)
        for _ in range(config.head_start):
            self.d_update()

    def _optimiser(self, net: nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.config.optimiser == "adam":
            return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
        return torch.optim.SGD(net.parameters(), lr=lr)

    def tune(self, **changes) -> None:
        """Change a setting mid-game: learning rates, D steps, the loss and the batch take
        effect at the next update; the networks, noise and optimiser kind need a new game."""
        fixed = {"target", "optimiser", "width", "depth", "noise_dim", "seed", "points", "head_start"}
        if fixed & set(changes):
            raise ValueError(f"{sorted(fixed & set(changes))} need a new game")
        self.config = dataclasses.replace(self.config, **changes)
        for opt, lr in ((self.opt_d, self.config.lr_d), (self.opt_g, self.config.lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=self.generator)

    def real(self, n: int) -> torch.Tensor:
        return sample_target(self.config, n, self.generator)

    def d_update(self) -> None:
        c = self.config
        real = self.real(c.batch)
        with torch.no_grad():
            fake = self.G(self.noise(c.batch))
        out_real, out_fake = self.D(real), self.D(fake)
        loss = d_loss(c.loss, out_real, out_fake)
        total = loss
        if c.loss == "wgan-gp":
            total = loss + c.gp_weight * gradient_penalty(self.D, real, fake, self.generator)
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        self.opt_d.step()
        with torch.no_grad():
            self.last.update(d_loss=total.item(), d_real=verdict(c.loss, out_real).mean().item(),
                             d_fake=verdict(c.loss, out_fake).mean().item())

    def g_update(self) -> None:
        c = self.config
        fake = self.G(self.noise(c.batch))
        fake.retain_grad()
        loss = g_loss(c.loss, self.D(fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        # how hard the loss pushes each fake point (the arrows): vanishes when D is sure
        self.last.update(g_loss=loss.item(), g_push=float(fake.grad.norm(dim=1).mean()) * c.batch)
        self.steps += 1
        self.history.append(Record(self.steps, **self.last))

    def step(self, rounds: int = 1) -> None:
        for _ in range(rounds):
            for _ in range(self.config.d_steps):
                self.d_update()
            self.g_update()

    def stream(self, rounds: int, every: int = 100, should_stop=lambda: False):
        """Play ``rounds`` rounds, yielding the game after every ``every`` and at the end."""
        done = 0
        while done < rounds and not should_stop():
            k = min(every, rounds - done)
            self.step(k)
            done += k
            yield self

    @torch.no_grad()
    def fake(self, n: int) -> torch.Tensor:
        return self.G(self.noise(n))

    def measure(self, n: int = 2000) -> Measures:
        gen = torch.Generator().manual_seed(12345)     # the same real points every time
        real = sample_target(self.config, n, gen).numpy()
        fake = self.G(torch.randn(n, self.config.noise_dim, generator=gen)).detach().numpy()
        return measure(self.config, real, fake)

    # -------------------------------------------------------------- pictures

    def field(self, size: int = 480, heat: bool = True, grid: bool = True, arrows: bool = True,
              points: bool = True) -> np.ndarray:
        """The plane: the discriminator's verdict (green: real, purple: fake), the generator's
        mapping of a noise grid, real (green) and fake (purple) points, and arrows showing where
        the generator's gradient pushes the fake points. (size, size, 3) uint8."""
        c = self.config
        if heat:
            n = 96
            xs = (np.arange(n) + 0.5) / n * 2 * BOX - BOX
            gx, gy = np.meshgrid(xs, xs[::-1])
            with torch.no_grad():
                v = verdict(c.loss, self.D(torch.tensor(np.stack([gx, gy], -1).reshape(-1, 2),
                                                        dtype=torch.float32))).numpy().reshape(n, n)
            if c.loss == "wgan-gp":          # a critic's scores have no fixed scale
                lo, hi = np.percentile(v, 2), np.percentile(v, 98)
                v = (v - lo) / max(hi - lo, 1e-6)
            im = Image.fromarray(heat_colours(np.clip(v, 0, 1))).resize((size, size), Image.Resampling.BILINEAR)
        else:
            im = Image.new("RGB", (size, size), (250, 250, 250))
        draw = ImageDraw.Draw(im, "RGBA")

        def px(p: np.ndarray) -> np.ndarray:
            return np.stack([(p[:, 0] + BOX) / (2 * BOX) * size, (BOX - p[:, 1]) / (2 * BOX) * size], 1)

        if grid:
            for line in self.manifold():
                draw.line([tuple(q) for q in px(line)], fill=(60, 60, 60, 110), width=1)
        with torch.enable_grad():
            xg = self.G(self.show_z).detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(g_loss(c.loss, self.D(xg)), xg)
        xy, push = px(xg.detach().numpy()), -grad.numpy() * np.array([1, -1])   # y grows down
        if points:       # the real points on top: where fakes cover them, both stay visible
            for x, y in xy:
                draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=(120, 40, 160, 200))
            for x, y in px(self.show_real.numpy()):
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(10, 110, 50, 230))
        if arrows:
            norms = np.linalg.norm(push, axis=1)
            scale = 0.12 * size / max(float(norms.max()), 1e-12)
            for (x, y), d in list(zip(xy, push * scale))[::5]:
                if np.hypot(*d) > 1.5:
                    arrow(draw, x, y, x + d[0], y + d[1])
        if c.target == "drawn":
            for x, y in px(np.array(c.points, dtype=float).reshape(-1, 2)):
                draw.line((x - 5, y, x + 5, y), fill=(0, 0, 0, 255), width=2)
                draw.line((x, y - 5, x, y + 5), fill=(0, 0, 0, 255), width=2)
        return np.asarray(im)

    @torch.no_grad()
    def manifold(self, lines: int = 13, span: float = 2.0, points: int = 50) -> list[np.ndarray]:
        """Where the generator sends a square grid of noise (the first two noise numbers from
        -span to span sigma, the others 0): a list of polylines in the plane."""
        k = self.config.noise_dim
        t = torch.linspace(-span, span, points)
        out = []
        if k == 1:
            return [self.G(t[:, None]).numpy()]
        for v in torch.linspace(-span, span, lines):
            for axis in (0, 1):
                z = torch.zeros(points, k)
                z[:, axis], z[:, 1 - axis] = t, v
                out.append(self.G(z).numpy())
        return out

    def curves(self, width: int = 480, height: int = 220) -> np.ndarray:
        """The losses and the discriminator's mean verdicts over the rounds so far."""
        return plot_history(self.history, self.config.loss, width, height)


def heat_colours(v: np.ndarray) -> np.ndarray:
    """0 (fake) purple through white to 1 (real) green, light enough for points on top."""
    fake, mid, real = (np.array(c, dtype=np.float32) for c in ((200, 170, 225), (250, 250, 250), (165, 220, 180)))
    v = v[..., None]
    rgb = np.where(v < 0.5, fake + (mid - fake) * (v / 0.5), mid + (real - mid) * ((v - 0.5) / 0.5))
    return rgb.astype(np.uint8)


def arrow(draw: ImageDraw.ImageDraw, x0, y0, x1, y1, colour=(30, 30, 30, 230)) -> None:
    draw.line((x0, y0, x1, y1), fill=colour, width=2)
    a = math.atan2(y1 - y0, x1 - x0)
    for side in (2.6, -2.6):
        draw.line((x1, y1, x1 + 6 * math.cos(a + side), y1 + 6 * math.sin(a + side)), fill=colour, width=2)


def plot_history(history: list[Record], loss: str, width: int, height: int) -> np.ndarray:
    """Two small line charts side by side, drawn with PIL (fast enough for every frame)."""
    history = list(history)      # a snapshot: the game may play on meanwhile
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=12)
    half = width // 2
    verdict_name = {"wgan-gp": "critic score", "lsgan": "D output"}.get(loss, "D(x)")
    panels = [("losses", [("D", (90, 90, 200), [r.d_loss for r in history]),
                          ("G", (200, 110, 40), [r.g_loss for r in history])]),
              (f"{verdict_name}: real, fake", [("real", (20, 130, 60), [r.d_real for r in history]),
                                               ("fake", (120, 40, 160), [r.d_fake for r in history])])]
    for k, (title, series) in enumerate(panels):
        x0, x1, y0, y1 = k * half + 38, (k + 1) * half - 8, 38, height - 22
        draw.text((x0, 3), title, fill="black", font=font)
        for j, (name, colour, _) in enumerate(series):          # the legend, above the chart
            draw.line((x0 + 60 * j, 28, x0 + 60 * j + 14, 28), fill=colour, width=3)
            draw.text((x0 + 60 * j + 18, 21), name, fill=colour, font=font)
        draw.rectangle((x0, y0, x1, y1), outline=(180, 180, 180))
        values = np.array([v for _, _, vs in series for v in vs if math.isfinite(v)])
        if not len(values):
            continue
        lo, hi = float(np.percentile(values, 1)), float(np.percentile(values, 99))
        if loss in ("minimax", "nonsaturating") and k == 1:
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        for value in (lo, hi):
            y = y1 - (value - lo) / (hi - lo) * (y1 - y0)
            draw.text((k * half + 2, y - 7), f"{value:.2g}", fill=(90, 90, 90), font=font)
        n = len(history)
        draw.text((x1 - 60, y1 + 4), f"round {history[-1].step:,}", fill=(90, 90, 90), font=font)
        for j, (name, colour, vs) in enumerate(series):
            ys = np.clip(np.array(vs, dtype=float), lo, hi)
            idx = np.linspace(0, n - 1, min(n, x1 - x0)).astype(int)
            pts = [(x0 + i / max(1, n - 1) * (x1 - x0), y1 - (ys[i] - lo) / (hi - lo) * (y1 - y0))
                   for i in idx if math.isfinite(ys[i])]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
    return np.asarray(im)


# ------------------------------------------------------------------ named experiments


@dataclass(frozen=True)
class Experiment:
    title: str
    changes: dict            # ToyConfig fields changed from the defaults
    rounds: int              # how long it takes to show what it shows
    lesson: str


EXPERIMENTS = {
    "default": Experiment("A GAN learns the ring", {}, 2000,
        "The defaults: non-saturating loss, Adam, 2 noise numbers, two hidden layers of 128. "
        "Within a couple of thousand rounds the fakes sit on all eight modes. The grid shows "
        "the generator stretching one sheet of noise over all of them: the thin bridges between "
        "modes are the price of a continuous map."),
    "collapse": Experiment("Mode collapse", dict(noise_dim=64, lr_d=1e-4, lr_g=1e-4), 3000,
        "The setting in which Metz et al. (2017, Unrolled GANs) show collapse: 64 noise numbers, "
        "learning rate 1e-4. The generator puts nearly all its points on one mode; the "
        "discriminator learns to reject that mode, and the generator hops to another. It covers "
        "one mode at a time, never all eight."),
    "collapse-cure": Experiment("Mode collapse, cured: Wasserstein loss + gradient penalty",
        dict(noise_dim=64, lr_d=5e-4, lr_g=5e-4, loss="wgan-gp", d_steps=5), 1500,
        "The same networks and noise with the WGAN-GP loss (Gulrajani et al., 2017): a critic "
        "trained 5 times per round with its gradient kept near 1 gives the generator a useful "
        "direction everywhere, including towards modes it is missing. All eight modes fill in."),
    "strong-d": Experiment("A discriminator that wins too fast",
        dict(d_steps=5, lr_d=2e-2), 2000,
        "Five discriminator updates per round at twenty times the generator's learning rate. "
        "The discriminator reshapes its verdict faster than the generator's points can follow: "
        "they are pushed from one spot it dislikes to the next, and most modes stay empty."),
    "vanishing": Experiment("Vanishing gradients with the minimax loss",
        dict(target="two", loss="minimax", optimiser="sgd", lr_d=0.05, lr_g=0.05, head_start=1000), 400,
        "Plain SGD, and the discriminator trained 1,000 updates before the game starts, so it "
        "rejects the first fakes with near certainty. The original minimax loss, log(1 - D(G(z))), "
        "is flat there: the first arrows are a tiny fraction of their length under the "
        "non-saturating loss, the fakes sit still while the discriminator relaxes, and then they "
        "drift onto one of the two modes. (Adam hides much of this by rescaling small gradients.)"),
    "vanishing-cure": Experiment("... and the non-saturating fix",
        dict(target="two", loss="nonsaturating", optimiser="sgd", lr_d=0.05, lr_g=0.05, head_start=1000), 400,
        "The same start with the generator maximising log D(G(z)) instead (Goodfellow et al., "
        "2014): the same fixed point, but steep exactly where the discriminator is sure. The "
        "fakes move at once and reach both modes."),
}


def experiment_config(name: str, **overrides) -> ToyConfig:
    return ToyConfig(**{**EXPERIMENTS[name].changes, **overrides})
