"""DeepDream on a real photo: the objective rises, octaves, tiling, seeds, bad settings; the tab
through gradio_client."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from models.deepdream import (DeepDreamPipeline, DreamSettings, max_octaves, octave_sizes,
                              tile_bounds, to_tensor)
from tests.conftest import skimage_path, skimage_photo


@pytest.fixture(scope="module")
def pipe(inception):
    return DeepDreamPipeline(inception)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(skimage_photo("chelsea")).resize((240, 160), Image.LANCZOS))


def test_octave_sizes_follow_the_chapter():
    assert octave_sizes(900, 1200, 3, 1.4) == [(459, 612), (643, 857), (900, 1200)]
    assert octave_sizes(512, 384, 1, 1.4) == [(512, 384)]
    assert max_octaves(512, 512, 1.4) == 6  # 512 / 1.4**5 = 95 px >= 80, 1.4**6 would be 68
    assert max_octaves(100, 100, 2.0) == 1


def test_tiles_cover_without_slivers():
    assert tile_bounds(300, 512) == [(0, 300)]
    bounds = tile_bounds(1100, 512)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1100
    assert all(b[0] == a[1] for a, b in zip(bounds, bounds[1:]))
    assert all(256 <= hi - lo <= 512 for lo, hi in bounds)


@pytest.mark.parametrize("layers", [{"mixed3": 1.0}, {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0,
                                                      "mixed7": 2.5}])
def test_each_step_raises_the_objective(pipe, cat, layers):
    s = DreamSettings(layers=layers, jitter=0, step_size=5.0)
    img = to_tensor(cat)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = pipe.objective(img, s).item()
    for _ in range(4):
        img, _ = pipe.step(img, s, gen)
        with torch.no_grad():
            after = pipe.objective(img, s).item()
        assert after > before
        before = after


def test_tiled_and_untiled_gradients_agree(pipe):
    from PIL import Image

    photo = np.asarray(Image.fromarray(skimage_photo("astronaut")).resize((384, 384), Image.LANCZOS))
    img = to_tensor(photo)
    whole, loss_whole = pipe.gradient(img, DreamSettings(layers={"mixed3": 1.0}, tile_size=1024))
    tiled, loss_tiled = pipe.gradient(img, DreamSettings(layers={"mixed3": 1.0}, tile_size=192))
    cosine = F.cosine_similarity(whole.flatten(), tiled.flatten(), dim=0).item()
    assert cosine > 0.7, cosine
    assert loss_tiled == pytest.approx(loss_whole, rel=0.3)
    # the step direction only differs near the tile seams, which move every step
    inner = (slice(None), slice(None), slice(40, 150), slice(40, 150))
    assert F.cosine_similarity(whole[inner].flatten(), tiled[inner].flatten(), dim=0) > 0.9


def test_bf16_convolutions_keep_the_fp32_step(pipe):
    # low precision may only speed the network up: the loss and the step direction must stay
    # those of fp32 (the loss itself is computed in fp32)
    from PIL import Image

    photo = np.asarray(Image.fromarray(skimage_photo("astronaut")).resize((256, 256), Image.LANCZOS))
    img = to_tensor(photo)
    layers = {"mixed4": 1.0, "mixed5": 1.5}
    (g32, l32), (g16, l16) = (pipe.gradient(img, DreamSettings(layers=layers, precision=p))
                              for p in ("fp32", "bf16"))
    assert l16 == pytest.approx(l32, rel=0.02)
    assert F.cosine_similarity(g32.flatten(), g16.flatten(), dim=0) > 0.85


def test_dream_streams_octaves_and_is_seeded(pipe, cat):
    s = DreamSettings(layers={"mixed3": 1.0}, octaves=2, steps=3)
    updates = list(pipe.stream(cat, s, generator=torch.Generator().manual_seed(7), preview_every=1))
    assert [u.image.shape[:2] for u in updates[:3]] == [(114, 171)] * 3
    assert updates[-1].done and updates[-1].image.shape == cat.shape
    assert "octave 2/2, step 3/3" in updates[-1].message
    again = pipe(cat, s, generator=torch.Generator().manual_seed(7))
    other = pipe(cat, s, generator=torch.Generator().manual_seed(8))
    assert np.array_equal(again.image, updates[-1].image)
    assert not np.array_equal(other.image, again.image)
    assert np.abs(again.image.astype(int) - cat.astype(int)).mean() > 2  # it did change


def test_max_loss_stops_an_octave_early(pipe, cat):
    s = DreamSettings(layers={"mixed3": 1.0}, octaves=1, steps=10, max_loss=1e-3)
    updates = list(pipe.stream(cat, s, preview_every=100))
    assert updates[0].step == 1  # the first step already passed the limit


def test_too_many_octaves_are_reduced_with_a_note(pipe, cat):
    s = DreamSettings(layers={"mixed3": 1.0}, octaves=8, steps=1)
    last = list(pipe.stream(cat, s))[-1]
    assert last.octaves == max_octaves(160, 240, 1.4) and "using" in last.note


@pytest.mark.parametrize("bad", [dict(layers={}), dict(layers={"mixed99": 1.0}),
                                 dict(layers={"mixed3": 0.0}), dict(octaves=0), dict(steps=-1),
                                 dict(octave_scale=1.0), dict(octave_scale=float("nan")),
                                 dict(step_size=float("inf")), dict(step_size=-1.0),
                                 dict(layers={"mixed3": 1.0, "mixed4": 1.0}, channel=3),
                                 dict(precision="fp16")])
def test_bad_settings_are_refused(pipe, cat, bad):
    with pytest.raises(ValueError):
        next(pipe.stream(cat, DreamSettings(**bad)))


def test_too_small_image_is_refused(pipe):
    with pytest.raises(ValueError, match="at least"):
        next(pipe.stream(np.zeros((50, 300, 3), np.uint8)))


def test_channel_dreaming_raises_that_channel(pipe, cat):
    s = DreamSettings(layers={"mixed4": 1.0}, channel=11, jitter=0, step_size=5.0)
    img = to_tensor(cat)
    with torch.no_grad():
        before = pipe.model(img, ["mixed4"])["mixed4"][:, 11].mean().item()
    for _ in range(3):
        img, _ = pipe.step(img, s, torch.Generator())
    with torch.no_grad():
        after = pipe.model(img, ["mixed4"])["mixed4"][:, 11].mean().item()
    assert after > before


def test_zoom_animation_frames(pipe, cat):
    from models.deepdream import zoom_in, zoom_stream

    s = DreamSettings(layers={"mixed3": 1.0}, steps=2)
    frames = list(zoom_stream(pipe, cat, s, 3, 1.2, generator=torch.Generator().manual_seed(0)))
    assert [f.octave for f in frames] == [1, 2, 3] and frames[-1].done
    assert all(f.image.shape == cat.shape for f in frames)
    assert "frame 3/3" in frames[-1].message
    # zooming keeps the size and magnifies the centre
    ramp = torch.linspace(0, 1, 100).repeat(1, 3, 100, 1)
    zoomed = zoom_in(ramp, 2.0)
    assert zoomed.shape == ramp.shape
    assert zoomed[..., 0].mean() > ramp[..., 0].mean() + 0.2  # left edge now shows the middle
    with pytest.raises(ValueError):
        next(zoom_stream(pipe, cat, s, 0, 1.2))


# ------------------------------------------------------------------ the tab, through gradio_client
SMALL = dict(layers=["mixed3"], weights_text="", octaves=2, octave_scale=1.4, steps=2,
             step_size=20, max_loss=15, jitter=16, tile_size=512, channel=-1, working_size=200,
             seed=3)


def test_deepdream_end_to_end(client):
    image, status = client.predict(handle_file(skimage_path("chelsea.png")), **SMALL,
                                   api_name="/deepdream")
    assert "Done" in status and "octave 2/2" in status and "resized from 451x300" in status
    out = Image.open(image)
    assert out.format == "PNG" and out.size == (200, 133)
    again, _ = client.predict(handle_file(skimage_path("chelsea.png")), **SMALL, api_name="/deepdream")
    assert list(Image.open(again).getdata()) == list(out.getdata())  # same seed, same dream


def test_deepdream_zoom_animation(client):
    args = {k: v for k, v in SMALL.items() if k not in ("octaves", "steps")}
    frame, status, gif = client.predict(handle_file(skimage_path("chelsea.png")), **args, frames=3,
                                        zoom=1.1, steps_per_frame=2, api_name="/deepdream_zoom")
    assert "Done: frame 3/3" in status
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 3
    assert Image.open(frame).size == animation.size == (200, 133)
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(handle_file(skimage_path("chelsea.png")), **args, frames=500, zoom=1.1,
                       steps_per_frame=2, api_name="/deepdream_zoom")


def test_preset_and_stop_endpoints(client):
    layers, weights = client.predict("Swirls", api_name="/deepdream_preset")
    assert layers == ["mixed2", "mixed3"] and "mixed3: 2" in weights
    assert "Stopped" in client.predict(api_name="/deepdream_stop")


@pytest.mark.parametrize("change,message", [
    (dict(layers=[]), "at least one layer"),
    (dict(layers=["mixed3"], weights_text="mixed3: 0"), "weight 0"),
    (dict(weights_text="mixed3 = lots"), "Could not read the layer weight"),
    # sliders are range-checked by Gradio itself before the handler runs
    (dict(octaves=0), "less than minimum value 1"),
    (dict(octaves=1e9), "greater than maximum value 8"),
    (dict(steps=-5), "less than minimum"),
    (dict(octave_scale=100), "greater than maximum"),
    (dict(working_size=10**6), "greater than maximum"),
    (dict(seed=-1), "less than minimum value 0"),
    (dict(channel=5000), "greater than maximum value 2047"),
    (dict(layers=["mixed3", "mixed4"], channel=3), "exactly one"),
])
def test_bad_settings_get_clear_errors(client, change, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(skimage_path("chelsea.png")), **{**SMALL, **change},
                       api_name="/deepdream")


def test_bad_images_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 64)
    with pytest.raises(AppError, match="Could not read the upload"):
        client.predict(handle_file(str(junk)), **SMALL, api_name="/deepdream")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (40, 40), "red").save(tiny)
    with pytest.raises(AppError, match="at least 80 px"):
        client.predict(handle_file(str(tiny)), **SMALL, api_name="/deepdream")
    cmyk = tmp_path / "cmyk.jpg"
    Image.open(skimage_path("coffee.png")).convert("CMYK").save(cmyk)
    _, status = client.predict(handle_file(str(cmyk)), **SMALL, api_name="/deepdream")
    assert "CMYK image converted to RGB" in status and "Done" in status


def test_every_example_photo_dreams():
    """The tab's example photos (small and short): each dream is a picture, changed from the
    photo and not flat."""
    from tabs import deepdream as tab

    for path in tab.EXAMPLES:
        *_, (image, status) = tab.dream(path, ["mixed3"], "", 1, 1.4, 4, 20, 15, 16, 512, -1, 160, 0,
                                        progress=lambda *a, **k: None)
        photo = np.asarray(Image.open(path).convert("RGB").resize(image.shape[1::-1]), float)
        assert "Done" in status and image.std() > 10
        assert np.abs(image.astype(float) - photo).mean() > 3, path


def test_the_time_budget_shrinks_the_picture_then_the_steps(pipe):
    s = DreamSettings(precision="fp32")
    shape = (512, 384)
    full = pipe.estimate(shape, s)
    assert full > 0 and pipe.within(shape, s, full + 1) == (512, s)
    side, fitted = pipe.within(shape, s, 0.5 * full)
    assert 256 <= side < 512 and fitted.steps == s.steps
    assert pipe.estimate((round(512 * side / 512), round(384 * side / 512)), fitted) <= 0.5 * full
    side, fitted = pipe.within(shape, s, 0.0)
    assert (side, fitted.steps) == (256, 8)
