"""Style transfer: the losses by hand, colour preservation, the optimisation on real images; the
tab through gradio_client."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from models.style import (StylePipeline, StyleSettings, blend_stats, color_stats, gram,
                          match_colors, recolor, rgb_to_yiq, schedule, to_tensor, tv_loss,
                          yiq_to_rgb)
from tests.conftest import skimage_path, skimage_photo


def test_gram_by_hand():
    f = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).reshape(1, 2, 1, 2)  # 2 channels, 1x2 map
    expected = torch.tensor([[1 * 1 + 2 * 2, 1 * 0 + 2 * 3], [6.0, 0 + 9.0]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram(f)[0], expected)


def test_gram_gradient_matches_autograd_on_the_plain_product():
    # the one-product backward must equal autograd's F @ F^T rule, also for a non-symmetric
    # upstream gradient (a weighted sum), and pass a numerical gradient check
    f = torch.randn(2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 5, 5, dtype=torch.float64)
    ours, = torch.autograd.grad((gram(f) * weights).sum(), f)
    flat = f.reshape(2, 5, 12)
    plain, = torch.autograd.grad(((flat @ flat.transpose(1, 2) / 60) * weights).sum(), f)
    torch.testing.assert_close(ours, plain)
    assert torch.autograd.gradcheck(gram, (f,))


def test_gram_of_bf16_channels_last_features_is_the_fp32_gram_with_a_matching_gradient():
    # VGG's activations in a bf16 run are channels-last bf16: the Gram is computed in fp32 on
    # that layout, and the gradient comes back in the input's dtype and layout (a gradient in
    # another layout makes autograd's accumulation of the tapped activation's two gradients slow)
    f = torch.randn(1, 6, 5, 7).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    f.requires_grad_(True)
    weights = torch.randn(1, 6, 6)
    g = gram(f)
    assert g.dtype == torch.float32
    ours, = torch.autograd.grad((g * weights).sum(), f)
    assert ours.dtype == torch.bfloat16 and ours.is_contiguous(memory_format=torch.channels_last)
    wide = f.detach().float().requires_grad_(True)
    flat = wide.reshape(1, 6, 35)
    plain_gram = flat @ flat.transpose(1, 2) / (6 * 35)
    plain, = torch.autograd.grad((plain_gram * weights).sum(), wide)
    torch.testing.assert_close(g, plain_gram)
    torch.testing.assert_close(ours.float(), plain, rtol=1e-2, atol=1e-3)


def test_tv_loss_by_hand():
    img = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    # vertical diffs: (0, -1) -> mean 0.5; horizontal diffs: (1, 0) -> mean 0.5
    assert tv_loss(img).item() == pytest.approx(1.0)
    assert tv_loss(torch.ones(1, 3, 5, 5)).item() == 0


def test_yiq_round_trip_and_colour_matching():
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-5, rtol=1e-5)
    style = to_tensor(skimage_photo("coffee"), "cpu")
    content = to_tensor(skimage_photo("astronaut"), "cpu")
    matched = match_colors(style, content)
    mean = lambda t: t[0].reshape(3, -1).mean(1)  # noqa: E731
    torch.testing.assert_close(mean(matched), mean(content), atol=0.03, rtol=0)
    assert (mean(style) - mean(content)).abs().max() > 0.05  # they did differ before


def test_recolor_gives_the_target_palette():
    # the start image: the content's pixels moved to the style's colour mean and covariance
    source = to_tensor(skimage_photo("astronaut"), "cpu")
    target = to_tensor(skimage_photo("coffee"), "cpu")
    mu, cov = color_stats(target)
    out_mu, out_cov = color_stats(recolor(source, mu, cov))
    torch.testing.assert_close(out_mu, mu, atol=0.02, rtol=0)
    torch.testing.assert_close(out_cov, cov, atol=0.1 * cov.abs().max().item(), rtol=0)
    assert (color_stats(source)[0] - mu).abs().max() > 0.05  # they did differ before


def test_blend_stats_are_the_stats_of_the_pooled_pixels():
    a, b = torch.rand(1, 3, 40, 30), torch.rand(1, 3, 40, 30) ** 3
    pooled = torch.cat([a, b], dim=-1)           # equal pixel counts: equal weights
    for got, want in zip(blend_stats([a, b], [2.0, 2.0]), color_stats(pooled)):
        torch.testing.assert_close(got, want, atol=2e-4, rtol=0)
    for got, want in zip(blend_stats([a, b], [1.0, 0.0]), color_stats(a)):
        torch.testing.assert_close(got, want)


def test_the_recoloured_start_is_nearer_the_style(pipe):
    # the default start spends no evaluations on colour: its first loss is already lower than
    # the plain photo's, and it still ends lower after the same number of evaluations
    runs = {init: pipe(small("astronaut"), [small("coffee")],
                       StyleSettings(size=96, steps=10, coarse_to_fine=False, init=init)).losses
            for init in ("recolor", "content")}
    assert runs["recolor"][0] < 0.8 * runs["content"][0]
    assert runs["recolor"][-1] < runs["content"][-1]


def test_schedule_is_coarse_to_fine():
    plan = schedule(512, 40, True)
    assert [s for s, _ in plan] == [128, 256, 512]
    assert plan[0][1] > plan[1][1] > plan[2][1] >= 1
    assert schedule(512, 40, False) == [(512, 40)]
    assert schedule(200, 40, True) == [(200, 40)]


@pytest.fixture(scope="module")
def pipe(vgg):
    from models.backbones import load_vgg19

    return StylePipeline(load_vgg19("relu5_2"))


def small(name, side=96):
    im = Image.fromarray(skimage_photo(name)).convert("RGB")
    im.thumbnail((side, side))
    return np.asarray(im)


def test_optimisation_lowers_the_loss_on_real_images(pipe):
    s = StyleSettings(size=96, steps=12, coarse_to_fine=False)
    updates = list(pipe.stream(small("chelsea"), [small("coffee")], s, every=1))
    losses = updates[-1].losses
    assert updates[-1].done and len(losses) >= 12
    assert losses[-1] < 0.5 * losses[0]
    assert updates[-1].image.shape == (64, 96, 3)


def test_bf16_convolutions_keep_the_fp32_objective(pipe):
    # low precision may only speed VGG up: the loss, its gradient and the run's progress must
    # stay the fp32 ones (Grams and losses are computed in fp32)
    from models.style import StyleLoss

    s = StyleSettings(size=96, coarse_to_fine=False)
    content = to_tensor(small("chelsea"), "cpu")
    style = [to_tensor(small("coffee"), "cpu")]
    img = (content + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0)))
    img = img.clamp(0, 1).requires_grad_(True)
    values, grads = [], []
    twin = pipe.bf16_vgg()  # bf16 convolution weights for the objective, made once
    assert twin is pipe.bf16_vgg() and twin is not pipe.vgg
    convs = [m for m in twin.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert twin.mean.dtype == torch.float32  # the input normalisation is not rounded
    assert all(p.dtype == torch.float32 for p in pipe.vgg.parameters())  # targets stay fp32
    for low in (False, True):
        objective = StyleLoss(pipe.vgg, content, style, [1.0], s, bf16_vgg=twin if low else None)
        wanted = torch.bfloat16 if low else torch.float32  # VGG's activations; the Grams are fp32
        assert all(f.dtype == wanted for f in objective.features(img).values())
        loss = objective(img)
        assert loss.dtype == torch.float32
        values.append(loss.item())
        grads.append(torch.autograd.grad(loss, img)[0].flatten())
    assert values[1] == pytest.approx(values[0], rel=0.02)
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99
    finals = [pipe(small("chelsea"), [small("coffee")],
                   StyleSettings(size=96, steps=15, coarse_to_fine=False, precision=p)).losses[-1]
              for p in ("fp32", "bf16")]
    assert finals[1] == pytest.approx(finals[0], rel=0.05)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_both_optimisers_and_the_seed(pipe, optimizer):
    s = StyleSettings(size=64, steps=6, optimizer=optimizer, init="noise", coarse_to_fine=False)
    a = pipe(small("rocket", 64), [small("coffee", 64)], s, generator=torch.Generator().manual_seed(1))
    b = pipe(small("rocket", 64), [small("coffee", 64)], s, generator=torch.Generator().manual_seed(1))
    c = pipe(small("rocket", 64), [small("coffee", 64)], s, generator=torch.Generator().manual_seed(2))
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert a.losses[-1] < a.losses[0]


def test_lbfgs_spends_every_evaluation_on_a_new_image(pipe):
    # the pipeline runs L-BFGS in chunks so that progress streams; a chunk must not end on an
    # evaluation that the next chunk repeats (that wasted one evaluation in ten)
    seen = []
    stiffness = torch.logspace(0, 4, 192).reshape(1, 3, 8, 8)  # far from converged in 25 steps

    def objective(img):
        seen.append(img.detach().clone())
        return (stiffness * (img - 0.5) ** 2).sum() + torch.cos(6 * img).sum()

    img = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    s = StyleSettings(optimizer="lbfgs")
    yielded = list(pipe._optimise(img, objective, 25, s, lambda loss, image: None))
    assert yielded == [10, 20, 25] and len(seen) == 25
    assert all(not torch.equal(a, b) for a, b in zip(seen, seen[1:]))


def test_luminance_transfer_keeps_the_content_chrominance(pipe):
    content = small("astronaut", 80)

    def chroma_change(mode):
        s = StyleSettings(size=80, steps=10, preserve_color=mode, coarse_to_fine=False,
                          style_weight=100.0)
        out = pipe(content, [small("coffee", 80)], s)
        iq = lambda im: rgb_to_yiq(to_tensor(im, "cpu"))[:, 1:]  # noqa: E731
        return (iq(out.image) - iq(content)).abs().mean().item()

    kept, changed = chroma_change("luminance"), chroma_change("none")
    assert kept < 0.006, kept        # I and Q are the content's, up to rounding and clipping
    assert kept < 0.25 * changed, (kept, changed)


def test_blending_two_styles_mixes_their_grams(pipe):
    s = StyleSettings(size=64, steps=1, coarse_to_fine=False, style_blend=(3.0, 1.0))
    from models.style import StyleLoss

    a, b = to_tensor(small("coffee", 64), "cpu"), to_tensor(small("rocket", 64), "cpu")
    both = StyleLoss(pipe.vgg, a, [a, b], [3.0, 1.0], s)
    only_a = StyleLoss(pipe.vgg, a, [a], [1.0], s)
    only_b = StyleLoss(pipe.vgg, a, [b], [1.0], s)
    for name in s.style_layers:
        torch.testing.assert_close(both.gram_targets[name],
                                   0.75 * only_a.gram_targets[name] + 0.25 * only_b.gram_targets[name])


@pytest.mark.parametrize("bad", [dict(style_weight=float("nan")), dict(tv_weight=-1.0),
                                 dict(size=10), dict(steps=0), dict(optimizer="sgd"),
                                 dict(preserve_color="sepia"), dict(style_blend=(0.0,)),
                                 dict(style_blend=(1.0, 1.0)), dict(style_scale=10.0),
                                 dict(precision="fp16"), dict(init="photo")])
def test_bad_settings_are_refused(pipe, bad):
    with pytest.raises(ValueError):
        next(pipe.stream(small("rocket", 64), [small("coffee", 64)], StyleSettings(**bad)))


def test_no_style_is_refused(pipe):
    with pytest.raises(ValueError, match="style image"):
        next(pipe.stream(small("rocket", 64), [], StyleSettings()))


# ------------------------------------------------------------------ the tab, through gradio_client
STYLE = dict(weight_a=1, style_b=None, weight_b=1, style_c=None, weight_c=1, size=128,
             strength=5, iterations=6, optimizer="L-BFGS (fast convergence)", init="content image",
             colours="off", coarse=True, content_weight=1, style_weight=0, tv_weight=1,
             content_layer="relu4_2", style_scale=1, seed=0)


def test_style_transfer_end_to_end(client):
    image, status, plot = client.predict(handle_file(skimage_path("chelsea.png")),
                                         handle_file(skimage_path("coffee.png")), **STYLE,
                                         api_name="/style_transfer")
    out = Image.open(image)
    assert out.format == "PNG" and out.size == (128, 85)
    assert "Done" in status and "stage 1/1" in status and "resized" not in status
    assert plot is not None
    assert "Stopped" in client.predict(api_name="/style_stop")


@pytest.mark.parametrize("change,message", [
    (dict(weight_a=0), "all zero"),
    (dict(size=4096), "greater than maximum"),
    (dict(style_weight=-5), "less than minimum"),
    (dict(colours="sepia"), "sepia|Unknown choice"),
    (dict(content_layer="relu9_9"), "relu9_9|Content layer"),
])
def test_style_bad_settings(client, change, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(skimage_path("chelsea.png")), handle_file(skimage_path("coffee.png")),
                       **{**STYLE, **change}, api_name="/style_transfer")


def test_style_needs_a_style_image_and_reads_odd_modes(client, tmp_path):
    with pytest.raises(AppError, match="at least one style image"):
        client.predict(handle_file(skimage_path("chelsea.png")), None, **STYLE,
                       api_name="/style_transfer")
    grey16 = tmp_path / "grey16.png"
    import numpy as np

    Image.fromarray((np.asarray(Image.open(skimage_path("coffee.png")).convert("L"), np.uint16) * 257)).save(grey16)
    palette = tmp_path / "palette.png"
    Image.open(skimage_path("chelsea.png")).convert("P").save(palette)
    _, status, _ = client.predict(handle_file(str(palette)), handle_file(str(grey16)),
                                  **STYLE, api_name="/style_transfer")
    assert "scaled to 8 bits" in status and "Done" in status


def test_every_example_pair_is_stylised():
    """The tab's example pairs (small and short): each output is a picture, not flat, and not
    the photo left as it was."""
    from tabs import style as tab

    for content, style in tab.EXAMPLES:
        *_, (image, status, _) = tab.stylise(
            content, style, 1, None, 1, None, 1, 128, 5, 10, list(tab.OPTIMIZERS)[0],
            list(tab.INITS)[0], "off", True, 1, 0, 1, "relu4_2", 1, 0, progress=lambda *a, **k: None)
        photo = np.asarray(Image.open(content).convert("RGB").resize(image.shape[1::-1]), float)
        assert "Done" in status and image.std() > 10
        assert np.abs(image.astype(float) - photo).mean() > 5, content


def test_the_time_budget_estimates_from_a_measurement_and_cuts_iterations_then_size(pipe):
    s = StyleSettings(precision="fp32")
    per_pixel = pipe.seconds_per_pixel(s)                  # measured once, then kept
    assert 0 < per_pixel and pipe.seconds_per_pixel(s) == per_pixel
    shape = (400, 600)
    assert pipe.estimate(shape, replace(s, steps=200)) > 1.9 * pipe.estimate(shape, s) - 2
    generous = pipe.estimate(shape, s) + 1
    assert pipe.within(shape, s, generous) == s            # fits: unchanged
    fewer = pipe.within(shape, s, 0.6 * pipe.estimate(shape, s))
    assert fewer.size == s.size and 40 <= fewer.steps < s.steps
    assert pipe.estimate(shape, fewer) <= 0.6 * pipe.estimate(shape, s)
    tiny = pipe.within(shape, s, 0.0)                      # cannot fit: the floor, not less
    assert (tiny.size, tiny.steps) == (256, 20)
    timed = time.perf_counter()
    pipe(small("astronaut"), [small("gravel")], StyleSettings(size=96, steps=6, precision="fp32",
                                                                coarse_to_fine=False))
    took = time.perf_counter() - timed
    guess = pipe.estimate((96, 96), StyleSettings(size=96, steps=6, precision="fp32",
                                                  coarse_to_fine=False))
    assert 0.2 * took < guess < 5 * took + 1               # the right order of magnitude
