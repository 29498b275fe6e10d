"""Neural style transfer (Gatys, Ecker & Bethge 2015) on the original VGG19 weights.

The paper's loss, each term made relative so the weights mean the same for every image, size
and layer: content (one deep layer's features, relu4_2 by default) over the content's own
energy; style (Gram matrices of relu1_1 ... relu5_1) over each target Gram's energy, averaged
over the layers; total variation. L-BFGS or Adam changes the pixels, coarse to fine, from the
photo recoloured to the style's palette. Speed comes from a truncated VGG, targets computed once
per scale, bf16 convolutions where they are native (Grams and losses in fp32) and a Gram with a
one-product backward on the activations' own layout; colour preservation as Gatys et al. 2016.
What each of these bought, and what did not: docs/style.md.

``StylePipeline.stream`` yields ``StyleUpdate``s (the best image so far) while it works.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import VGG19, VGG19_LAYERS, load_vgg19
from .runtime import check_precision, device, reuse_freed_memory, use_bf16

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu3_2", "relu4_2", "relu5_2")
INITS = ("recolor", "content", "noise")
# L-BFGS curvature pairs kept (torch's default is 100): as few evaluations to the tutorial's loss,
# less time per step (docs/style.md)
LBFGS_HISTORY = 25

# RGB <-> YIQ (NTSC), for luminance-only transfer
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


@dataclass
class StyleSettings:
    size: int = 512                       # longest side of the result
    steps: int = 100                      # evaluations at the first stage (see schedule)
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    content_layer: str = "relu4_2"
    style_layers: tuple[str, ...] = STYLE_LAYERS
    optimizer: str = "lbfgs"              # or "adam"
    init: str = "recolor"                 # the content in the style's colours; "content"; "noise"
    preserve_color: str = "none"          # "luminance" or "histogram"
    coarse_to_fine: bool = True
    style_scale: float = 1.0              # style image size relative to the result
    adam_lr: float = 0.02
    style_blend: tuple[float, ...] = ()   # weights of several style images (default equal)
    stage_steps: tuple[int, ...] = ()     # evaluations per stage, overriding the halving rule
    precision: str = "auto"               # VGG's convolutions: "bf16", "fp32", or "auto" = bf16
                                          # where the hardware does it natively (losses: fp32)

    def validate(self, n_styles: int) -> None:
        numbers = [self.content_weight, self.style_weight, self.tv_weight, self.style_scale,
                   self.adam_lr, *self.style_blend]
        if any(not math.isfinite(v) for v in numbers):
            raise ValueError("weights must be finite numbers")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0:
            raise ValueError("loss weights must not be negative")
        if self.size < 64 or self.steps < 1:
            raise ValueError("size must be at least 64 px and steps at least 1")
        if self.optimizer not in ("lbfgs", "adam") or self.init not in INITS:
            raise ValueError("optimizer is lbfgs or adam; init is recolor, content or noise")
        check_precision(self.precision)
        if self.preserve_color not in ("none", "luminance", "histogram"):
            raise ValueError("colour preservation is none, luminance or histogram")
        if self.content_layer not in VGG19_LAYERS or not set(self.style_layers) <= set(VGG19_LAYERS):
            raise ValueError("unknown VGG19 layer")
        if not self.style_layers:
            raise ValueError("choose at least one style layer")
        if n_styles < 1:
            raise ValueError("give at least one style image")
        if self.style_blend:
            if len(self.style_blend) != n_styles:
                raise ValueError("one blend weight per style image")
            if min(self.style_blend) < 0 or sum(self.style_blend) <= 0:
                raise ValueError("style blend weights must be >= 0 and not all zero")
        if not 0.1 <= self.style_scale <= 4:
            raise ValueError("style scale must be between 0.1 and 4")


@dataclass
class StyleUpdate:
    image: np.ndarray                     # HxWx3 uint8, best so far at the current stage's size
    stage: int
    stages: int
    step: int
    steps: int
    loss: float
    size: tuple[int, int]
    losses: list[float] = field(default_factory=list)  # full history, for the loss curve
    done: bool = False
    costs: tuple[float, ...] = ()         # each stage's share of the work (steps x pixels)

    @property
    def fraction(self) -> float:
        """Of the work done (by cost, so a time-left estimate holds across stages)."""
        if not self.costs:
            return ((self.stage - 1) + self.step / self.steps) / self.stages
        return sum(self.costs[:self.stage - 1]) + self.costs[self.stage - 1] * self.step / self.steps

    @property
    def message(self) -> str:
        return (f"stage {self.stage}/{self.stages} ({self.size[1]}x{self.size[0]} px), "
                f"step {self.step}/{self.steps}, loss {self.loss:.4g}")


# -- losses ---------------------------------------------------------------------------------------
class _Gram(torch.autograd.Function):
    """Unnormalised Gram matrix (N, C, C), in fp32 or wider, of (N, C, H, W) features of any
    float dtype, NCHW or channels-last. The backward is one product with the symmetrised
    incoming gradient (exact; autograd's rule runs two), on the features' own layout and dtype,
    so a channels-last bf16 activation gets a channels-last bf16 gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        wide = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 -> fp32; fp64 stays
        ctx.channels_last = (x.is_contiguous(memory_format=torch.channels_last)
                             and not x.is_contiguous())
        if ctx.channels_last:  # (N, HW, C) view of (N, H, W, C) memory
            f = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        else:                  # (N, C, HW)
            f = x.reshape(n, c, h * w)
        fw = f.to(wide)
        g = fw.transpose(1, 2) @ fw if ctx.channels_last else fw @ fw.transpose(1, 2)
        ctx.save_for_backward(f)
        ctx.shape = x.shape
        return g

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        n, c, h, w = ctx.shape
        sym = (grad + grad.transpose(1, 2)).to(f.dtype)
        if ctx.channels_last:
            return (f @ sym).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return (sym @ f).reshape(n, c, h, w)


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix (fp32 or wider) of (N, C, H, W) features, normalised by C*H*W: (N, C, C)."""
    n, c, h, w = features.shape
    return _Gram.apply(features) / (c * h * w)


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between horizontally and vertically neighbouring pixels."""
    return ((img[..., 1:, :] - img[..., :-1, :]).pow(2).mean()
            + (img[..., :, 1:] - img[..., :, :-1]).pow(2).mean())


class StyleLoss:
    """Targets computed once for one size; ``__call__`` is the whole objective.

    Given ``bf16_vgg`` (the pipeline's bf16 copy of ``vgg``), the features come from it under
    bfloat16 autocast while the targets, the Grams and the losses stay fp32 (Grams in bf16 lose
    the small differences L-BFGS needs late in a run)."""

    def __init__(self, vgg: VGG19, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 blend: Sequence[float], s: StyleSettings, bf16_vgg: VGG19 | None = None):
        self.vgg, self.s, self.bf16_vgg = vgg, s, bf16_vgg
        self.layers = list(dict.fromkeys([*s.style_layers, s.content_layer]))
        with torch.no_grad():  # targets in fp32, whatever the precision of the run
            self.content_target = self.vgg(content, self.layers)[s.content_layer]
            self.content_scale = 1.0 / (self.content_target.pow(2).mean() + 1e-8)
            total = float(sum(blend))
            self.gram_targets = {name: 0 for name in s.style_layers}
            for style, weight in zip(styles, blend):
                feats = self.vgg(style, self.layers)
                for name in s.style_layers:
                    self.gram_targets[name] = self.gram_targets[name] + gram(feats[name]) * (weight / total)
            self.style_scales = {name: 1.0 / (len(s.style_layers) * (g.pow(2).mean() + 1e-8))
                                 for name, g in self.gram_targets.items()}

    def features(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.bf16_vgg is None:
            return self.vgg(img, self.layers)
        with torch.autocast(img.device.type, dtype=torch.bfloat16):
            return self.bf16_vgg(img, self.layers)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        s = self.s
        feats = self.features(img)  # bf16 with bf16_vgg; gram() computes in fp32
        content = (F.mse_loss(feats[s.content_layer].float(), self.content_target)
                   * self.content_scale)
        style = sum(F.mse_loss(gram(feats[n]), self.gram_targets[n]) * self.style_scales[n]
                    for n in s.style_layers)
        return s.content_weight * content + s.style_weight * style + s.tv_weight * tv_loss(img)


# -- colour ------------------------------------------------------------------------------------------
def rgb_to_yiq(img: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB2YIQ.to(img), img)


def yiq_to_rgb(img: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _YIQ2RGB.to(img), img)


def luminance(img: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated three times, so VGG sees a grey image."""
    return rgb_to_yiq(img)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and spread (Gatys 2016)."""
    mu_s, sd_s = style_y.mean(), style_y.std() + 1e-6
    return ((style_y - mu_s) / sd_s * content_y.std() + content_y.mean()).clamp(0, 1)


def color_stats(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3, 1) and covariance (3, 3) of an image's pixel colours."""
    x = img[0].reshape(3, -1)
    ridge = 1e-5 * torch.eye(3, dtype=x.dtype, device=x.device)
    return x.mean(1, keepdim=True), torch.cov(x) + ridge


def blend_stats(images: Sequence[torch.Tensor], weights: Sequence[float]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour mean and covariance of the weighted mixture of several images' pixels."""
    total = float(sum(weights))
    stats = [(w / total, *color_stats(im)) for im, w in zip(images, weights)]
    mu = sum(w * m for w, m, _ in stats)
    second = sum(w * (c + m @ m.T) for w, m, c in stats)
    return mu, second - mu @ mu.T


def recolor(img: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Affine colour transfer: ``img``'s pixel colours get mean ``mu`` and covariance ``cov``
    (symmetric matrix square roots, as in Gatys et al. 2016's colour histogram matching)."""
    def sqrtm(m, inverse=False):
        vals, vecs = torch.linalg.eigh(m)
        vals = vals.clamp_min(1e-8).sqrt()
        return vecs @ torch.diag(1 / vals if inverse else vals) @ vecs.T

    mu_i, cov_i = color_stats(img)
    x = img[0].reshape(3, -1)
    out = sqrtm(cov) @ sqrtm(cov_i, inverse=True) @ (x - mu_i) + mu
    return out.reshape_as(img[0])[None].clamp(0, 1)


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style image recoloured to the content's palette (colour preservation)."""
    return recolor(style, *color_stats(content))


# -- the pipeline ----------------------------------------------------------------------------------
def to_tensor(image: np.ndarray, device) -> torch.Tensor:
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).to(device).permute(2, 0, 1)[None]
    return x.float().contiguous() / 255  # plain NCHW strides: L-BFGS flattens with view()


def to_uint8(img: torch.Tensor) -> np.ndarray:
    return img[0].clamp(0, 1).permute(1, 2, 0).mul(255).round().byte().cpu().numpy()


def resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def fit(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    h, w = shape
    scale = longest / max(h, w)
    return max(16, round(h * scale)), max(16, round(w * scale))


def schedule(size: int, steps: int, coarse_to_fine: bool) -> list[tuple[int, int]]:
    """(longest side, evaluations) per stage, smallest first.

    Coarse-to-fine runs at a quarter (if that is at least 128 px), a half and the full size;
    ``steps`` evaluations at the first stage and half as many at each finer one. A stage at
    half the size costs a quarter as much, so the full-size refinement is most of the bill.
    """
    if not coarse_to_fine or size < 256:
        return [(size, steps)]
    sizes = [size // 4, size // 2, size] if size // 4 >= 128 else [size // 2, size]
    return [(side, max(1, steps // 2**i)) for i, side in enumerate(sizes)]


class StylePipeline:
    def __init__(self, vgg: VGG19):
        # channels-last weights: oneDNN's bf16 convolutions skip two layout copies of every
        # activation. The image stays NCHW-contiguous, as L-BFGS flattens it with view().
        # (Module.to works in place: the VGG passed in is converted, not copied.)
        self.vgg = vgg.to(memory_format=torch.channels_last)
        self.device = next(vgg.parameters()).device
        self._bf16_vgg: VGG19 | None = None
        self._probe: dict[bool, float] = {}
        reuse_freed_memory()

    @classmethod
    def from_pretrained(cls, progress: Callable[[float, str], None] | None = None) -> "StylePipeline":
        """The original VGG19 (``models.backbones``), up to the deepest layer a loss may use."""
        return cls(load_vgg19(CONTENT_LAYERS[-1], progress=progress, device=device()))

    def bf16_vgg(self) -> VGG19:
        """A copy of the VGG with bf16 convolution weights (channels-last), made on first use, so
        autocast does not cast every weight again on each evaluation. The targets keep the fp32
        VGG; the normalisation buffers stay fp32 in both."""
        if self._bf16_vgg is None:
            twin = copy.deepcopy(self.vgg)
            for module in twin.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(torch.bfloat16)
            self._bf16_vgg = twin
        return self._bf16_vgg

    def stream(self, content: np.ndarray, styles: Sequence[np.ndarray],
               settings: StyleSettings | None = None, *, generator: torch.Generator | None = None,
               every: int = 10, should_stop: Callable[[], bool] | None = None
               ) -> Iterator[StyleUpdate]:
        s = settings or StyleSettings()
        s.validate(len(styles))
        if s.content_layer not in self.vgg.layer_names or not set(s.style_layers) <= set(self.vgg.layer_names):
            raise ValueError("the loaded VGG19 is truncated before a requested layer")
        blend = list(s.style_blend) or [1.0] * len(styles)
        gen = generator or torch.Generator().manual_seed(0)
        content_full = to_tensor(content, self.device)
        style_full = [to_tensor(im, self.device) for im in styles]
        if s.preserve_color == "histogram":
            style_full = [match_colors(st, content_full) for st in style_full]
        plan = schedule(s.size, s.steps, s.coarse_to_fine)
        if s.stage_steps:
            if len(s.stage_steps) != len(plan) or min(s.stage_steps) < 1:
                raise ValueError(f"stage_steps needs {len(plan)} positive counts")
            plan = [(side, n) for (side, _), n in zip(plan, s.stage_steps)]
        img = None
        losses: list[float] = []
        work = [n * math.prod(fit(content_full.shape[-2:], side)) for side, n in plan]
        costs = tuple(w / sum(work) for w in work)
        for stage, (longest, steps) in enumerate(plan, start=1):
            size = fit(content_full.shape[-2:], longest)
            content = resize(content_full, size)
            styles_now = [resize(st, fit(st.shape[-2:], round(longest * s.style_scale)))
                          for st in style_full]
            if s.preserve_color == "luminance":
                content_y = luminance(content)
                styles_now = [match_luminance(luminance(st), content_y) for st in styles_now]
                target_content = content_y
            else:
                target_content = content
            objective = StyleLoss(self.vgg, target_content, styles_now, blend, s,
                                  bf16_vgg=self.bf16_vgg() if self.low_precision(s) else None)
            if img is None:
                if s.init == "noise":
                    img = torch.rand(target_content.shape, generator=gen).to(self.device)
                elif s.init == "recolor":
                    img = recolor(target_content, *blend_stats(styles_now, blend))
                else:
                    img = target_content.clone()
            else:
                img = resize(img, size)
            img = img.detach().requires_grad_(True)
            best = [math.inf, img.detach().clone()]

            def track(loss: float, current: torch.Tensor) -> None:
                losses.append(loss)
                if loss < best[0]:  # the image this loss was measured on
                    best[0], best[1] = loss, current.detach().clone()

            for step in self._optimise(img, objective, steps, s, track):
                stop = should_stop is not None and should_stop()
                if step % every == 0 or step == steps or stop:
                    yield StyleUpdate(self._show(best[1], content, s), stage, len(plan), step,
                                      steps, best[0], size, list(losses), costs=costs)
                if stop:
                    return
            img = best[1]
        yield StyleUpdate(self._show(img, content, s), len(plan), len(plan), plan[-1][1],
                          plan[-1][1], best[0], size, losses, done=True, costs=costs)

    def low_precision(self, s: StyleSettings) -> bool:
        return use_bf16(s.precision, self.device)

    def seconds_per_pixel(self, s: StyleSettings) -> float:
        """One objective evaluation (forward and backward) per output pixel on this machine at
        this precision: measured once, on a 256 x 256 picture (per pixel, smaller pictures cost
        a little more, so estimates of larger ones err on the long side)."""
        key = self.low_precision(s)
        if key not in self._probe:
            with torch.no_grad():
                picture = torch.rand((1, 3, 256, 256), generator=torch.Generator().manual_seed(0))
            objective = StyleLoss(self.vgg, picture, [picture], [1.0], s,
                                  bf16_vgg=self.bf16_vgg() if key else None)
            x = picture.clone().requires_grad_(True)
            objective(x).backward()                     # warm-up: allocations, oneDNN plans
            start = time.perf_counter()
            for _ in range(2):
                x.grad = None
                objective(x).backward()
            self._probe[key] = (time.perf_counter() - start) / 2 / 256**2
        return self._probe[key]

    def estimate(self, shape: tuple[int, int], s: StyleSettings) -> float:
        """Seconds the settings should take here for a content picture of ``shape`` (h, w): the
        evaluations times their measured cost, plus the targets, copies and optimiser's own
        work (15% and a second, from the default run on two machines; docs/style.md)."""
        per_pixel = self.seconds_per_pixel(s)
        evaluations = sum(steps * per_pixel * math.prod(fit(shape, side))
                          for side, steps in schedule(s.size, s.steps, s.coarse_to_fine))
        return 1.15 * evaluations + 1.0

    def within(self, shape: tuple[int, int], s: StyleSettings, seconds: float) -> StyleSettings:
        """The settings made small enough to finish in about ``seconds`` here: fewer steps
        first (to 40; L-BFGS from the recoloured photo has done most of its work by then), then
        a smaller picture (to 256 px), then fewer steps (to 20); unchanged if they fit already."""
        while self.estimate(shape, s) > seconds and s.steps > 40:
            s = replace(s, steps=max(40, int(s.steps * 0.9)))
        while self.estimate(shape, s) > seconds and s.size > 256:
            s = replace(s, size=max(256, s.size - 32))
        while self.estimate(shape, s) > seconds and s.steps > 20:
            s = replace(s, steps=max(20, int(s.steps * 0.9)))
        return s

    def __call__(self, content, styles, settings=None, *, generator=None) -> StyleUpdate:
        last = None
        for last in self.stream(content, styles, settings, generator=generator, every=10**9):
            pass
        return last

    @staticmethod
    def _show(img: torch.Tensor, content: torch.Tensor, s: StyleSettings) -> np.ndarray:
        if s.preserve_color == "luminance":  # the result's luminance with the content's colours
            yiq = rgb_to_yiq(content)
            yiq = torch.cat([img[:, :1], yiq[:, 1:]], 1)
            return to_uint8(yiq_to_rgb(yiq))
        return to_uint8(img)

    def _optimise(self, img: torch.Tensor, objective: StyleLoss, steps: int, s: StyleSettings,
                  track: Callable[[float, torch.Tensor], None]) -> Iterator[int]:
        """Run ``steps`` objective evaluations; ``track(loss, image)`` sees each one; yields the
        number of evaluations done so far."""
        if s.optimizer == "adam":
            opt = torch.optim.Adam([img], lr=s.adam_lr)
            for step in range(1, steps + 1):
                opt.zero_grad(set_to_none=True)
                loss = objective(img)
                loss.backward()
                track(loss.item(), img)
                opt.step()
                with torch.no_grad():
                    img.clamp_(0, 1)
                yield step
            return
        opt = torch.optim.LBFGS([img], lr=1.0, max_iter=steps, history_size=LBFGS_HISTORY,
                                tolerance_grad=0.0, tolerance_change=0.0)
        done = 0

        def closure():
            nonlocal done
            with torch.no_grad():  # every evaluation sees a valid image (as the tutorial does)
                img.clamp_(0, 1)
            opt.zero_grad(set_to_none=True)
            loss = objective(img)
            loss.backward()
            track(loss.item(), img)
            done += 1
            return loss

        # one LBFGS.step runs several iterations; run it in chunks so progress streams. A call
        # of max_iter=k evaluates at its start and after each of its first k-1 steps (k
        # evaluations), and its last step is evaluated by the next call. max_eval must not stop
        # it earlier: with max_eval=k the call ended after k-1 steps, and the next one
        # evaluated the same point again (one evaluation in ten wasted).
        while done < steps:
            before = done
            chunk = min(10, steps - done)
            opt.param_groups[0]["max_iter"] = chunk
            opt.param_groups[0]["max_eval"] = 2 * chunk
            opt.step(closure)
            with torch.no_grad():
                img.clamp_(0, 1)
            if done == before:
                break
            yield done
