"""The app end to end through gradio_client: every named endpoint, bad input, still serving."""
from __future__ import annotations

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests.conftest import skimage_path

EXPECTED = {"/deepdream", "/deepdream_preset", "/deepdream_stop"}

SMALL = dict(layers=["mixed3"], weights_text="", octaves=2, octave_scale=1.4, steps=2,
             step_size=20, max_loss=15, jitter=16, tile_size=512, channel=-1, working_size=200,
             seed=3)


def test_every_named_endpoint_is_listed(client):
    assert EXPECTED <= set(client.view_api(return_format="dict")["named_endpoints"])


def test_models_are_not_loaded_at_import():
    from tabs import deepdream

    # the session's app has not dreamed yet when this runs first; loading is lazy by design
    assert deepdream.PIPELINE._factory is not None


def test_deepdream_end_to_end(client):
    image, status = client.predict(handle_file(skimage_path("chelsea.png")), **SMALL,
                                   api_name="/deepdream")
    assert "Done" in status and "octave 2/2" in status and "resized from 451x300" in status
    out = Image.open(image)
    assert out.format == "PNG" and out.size == (200, 133)
    again, _ = client.predict(handle_file(skimage_path("chelsea.png")), **SMALL, api_name="/deepdream")
    assert list(Image.open(again).getdata()) == list(out.getdata())  # same seed, same dream


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
