"""The app end to end through gradio_client: every named endpoint, bad input, still serving."""
from __future__ import annotations

import re

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tabs.faces import AVAILABLE as FACES
from tabs.text import MODEL_NAMES as TEXT_MODELS
from tabs.wavenet import MODEL_NAMES as WAVENET_MODELS
from tests.conftest import ROOT, skimage_path

EXPECTED = {"/deepdream", "/deepdream_preset", "/deepdream_stop", "/deepdream_zoom", "/latent_grid", "/latent_decode",
            "/latent_encode", "/latent_interpolate", "/style_transfer", "/style_stop",
            "/text_generate", "/text_compare", "/text_distribution", "/text_stop",
            "/text_example_prompt", "/wavenet_generate", "/wavenet_compare", "/wavenet_stop",
            "/wavenet_model_changed"}
FACE_ENDPOINTS = {"/faces_gallery", "/faces_pick", "/faces_arithmetic", "/faces_edit",
                  "/faces_interpolate"}
CDF = "inverse normal CDF (chapter)"

SMALL = dict(layers=["mixed3"], weights_text="", octaves=2, octave_scale=1.4, steps=2,
             step_size=20, max_loss=15, jitter=16, tile_size=512, channel=-1, working_size=200,
             seed=3)


def test_every_named_endpoint_is_listed(client):
    listed = set(client.view_api(return_format="dict")["named_endpoints"])
    assert EXPECTED <= listed
    # the face tab's endpoints exist once its checkpoints do
    assert (FACE_ENDPOINTS <= listed) if FACES else not (FACE_ENDPOINTS & listed)


def test_models_are_not_loaded_at_import():
    """Importing the app (as Spaces does) builds the UI but loads no model."""
    import subprocess
    import sys

    code = ("import app, sys; loaded = [m.title for m in app.MODELS if m.loaded]; "
            "print(len(app.MODELS), loaded); sys.exit(1 if loaded else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("[]") and int(out.stdout.split()[0]) >= 4


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


# -- latent grid explorer ---------------------------------------------------------------------
def test_latent_grid_end_to_end(client):
    grid, latent_map, caption = client.predict("MNIST digits", 30, 0.5, -0.5, 2.0, CDF,
                                               api_name="/latent_grid")
    g = Image.open(grid)
    assert g.format == "PNG" and g.size == (840, 840) and g.mode == "L"
    assert "30x30 grid" in caption and "-0.50..+1.50" in caption
    assert Image.open(latent_map).size[0] >= 500
    fashion, _, _ = client.predict("Fashion-MNIST", 4, 0, 0, 3.3, "linear", api_name="/latent_grid")
    assert Image.open(fashion).size == (560, 560)


def test_latent_decode_encode_interpolate(client, tmp_path):
    cell = Image.open(client.predict("MNIST digits", 0.3, -1.2, api_name="/latent_decode"))
    assert cell.size == (280, 280)
    strip = Image.open(client.predict("Fashion-MNIST", -1, -1, 1, 1, 7, api_name="/latent_interpolate"))
    assert strip.size == (7 * 84, 84)
    seven = Image.new("L", (200, 200), 255)  # dark ink on white paper, as people draw
    from PIL import ImageDraw

    ImageDraw.Draw(seven).line([(40, 40), (160, 40), (90, 170)], fill=0, width=14)
    seven.save(tmp_path / "seven.png")
    pair, text = client.predict("MNIST digits", None, handle_file(str(tmp_path / "seven.png")),
                                api_name="/latent_encode")
    assert "z = (" in text and "inverted" in text
    assert Image.open(pair).size == (6 * 28 * 2 + 8, 168)


@pytest.mark.parametrize("args,message", [
    (("MNIST digits", 31, 0, 0, 3.3, CDF), "greater than maximum"),
    (("MNIST digits", 10, 0, 0, 0, CDF), "less than minimum"),
    (("MNIST digits", 10, 0, 0, -2, CDF), "less than minimum"),
    (("MNIST digits", 10, 1e9, 0, 2, CDF), "greater than maximum value 10"),
    (("MNIST digits", 10, 0, 0, 2, "spiral"), "spiral"),
    (("Klingon", 10, 0, 0, 2, CDF), "Klingon"),
])
def test_latent_grid_bad_input(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/latent_grid")


def test_latent_bad_uploads_and_points(client, tmp_path):
    with pytest.raises(AppError, match="Draw something"):
        client.predict("MNIST digits", None, None, api_name="/latent_encode")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 64)
    with pytest.raises(AppError, match="Could not read the upload"):
        client.predict("MNIST digits", None, handle_file(str(junk)), api_name="/latent_encode")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    with pytest.raises(AppError, match="empty"):
        client.predict("MNIST digits", None, handle_file(str(blank)), api_name="/latent_encode")
    with pytest.raises(AppError, match="greater than maximum value 10"):
        client.predict("MNIST digits", 50, 0, api_name="/latent_decode")
    with pytest.raises(AppError, match="Steps must be between|less than minimum"):
        client.predict("MNIST digits", 0, 0, 1, 1, 1, api_name="/latent_interpolate")
    # and the server still answers
    assert Image.open(client.predict("MNIST digits", 0, 0, api_name="/latent_decode")).size == (280, 280)


# -- style transfer ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------- text sampling

TEXT = dict(model_name="tiny-shakespeare", prompt="ROMEO:\n", temperature=0.7, length=60,
            top_k=0, top_p=1.0, seed=4)
needs_text = pytest.mark.skipif("tiny-shakespeare" not in TEXT_MODELS, reason="no text model")


@needs_text
def test_text_generate_streams_and_is_reproducible(client):
    job = client.submit(**TEXT, api_name="/text_generate")
    updates = list(job)
    text, html, status = job.result()
    assert len(updates) >= 2                      # streamed, not one answer at the end
    assert text.startswith("ROMEO:\n") and len(text) == len("ROMEO:\n") + 60
    assert "Done: 60 characters" in status and "nats per character" in status
    assert html.count(' title="') == 60 and "gdl-legend" in html
    again, _, _ = client.predict(**TEXT, api_name="/text_generate")
    assert again == text
    other, _, _ = client.predict(**{**TEXT, "seed": 5}, api_name="/text_generate")
    assert other != text
    greedy, _, _ = client.predict(**{**TEXT, "temperature": 0, "seed": 1}, api_name="/text_generate")
    assert greedy == client.predict(**{**TEXT, "temperature": 0, "seed": 2},
                                    api_name="/text_generate")[0]


@needs_text
def test_text_compare_columns_match_single_streams(client):
    *columns, status = client.predict("tiny-shakespeare", "ROMEO:\n", 40, 0, 1.0, 4,
                                      api_name="/text_compare")
    assert len(columns) == 5 and "Done" in status
    assert all(c.startswith("ROMEO:\n") and len(c) == 47 for c in columns)
    single, _, _ = client.predict(**{**TEXT, "length": 40}, api_name="/text_generate")
    assert columns[2] == single                   # the 0.7 column, same seed
    assert len(set(columns)) >= 3


@needs_text
def test_text_distribution_plot(client):
    plot, status = client.predict("tiny-shakespeare", "ROMEO", 0.5, 5, 0.9,
                                  api_name="/text_distribution")
    assert plot and "Most likely next character" in status and "Entropy" in status


@needs_text
@pytest.mark.parametrize("change,message", [
    (dict(prompt=""), "empty prompt: starting from a new line"),
    (dict(prompt="\U0001F3AC\u00e9t\u00e9 \u201cquoted\u201d"), "e; dropped 3 character(s)"),
    (dict(prompt="x" * 5000), "longer than the model's context"),
    (dict(top_k=100), "no cut"),
])
def test_text_odd_prompts_have_defined_behaviour(client, change, message):
    text, _, status = client.predict(**{**TEXT, "length": 5, **change}, api_name="/text_generate")
    assert message.lower() in status.lower() and "Done" in status
    assert len(text) >= 5


@needs_text
@pytest.mark.parametrize("change,message", [
    (dict(temperature=-1), "less than minimum"),
    (dict(temperature=50), "greater than maximum"),
    (dict(length=10**7), "greater than maximum"),
    (dict(length=0), "less than minimum"),
    (dict(top_p=0), "less than minimum"),
    (dict(top_p=1.5), "greater than maximum"),
    (dict(top_k=-3), "less than minimum"),
    (dict(model_name="gpt-5"), "gpt-5"),
    (dict(prompt="y" * 200_000), "limit is 100,000"),
])
def test_text_bad_settings_get_clear_errors(client, change, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{**TEXT, **change}, api_name="/text_generate")
    assert "Done" in client.predict(**{**TEXT, "length": 3}, api_name="/text_generate")[2]


# ---------------------------------------------------------------- face arithmetic

pytestmark_faces = pytest.mark.skipif(not FACES, reason="no face checkpoints in weights/")

@pytestmark_faces
def test_faces_gallery_is_fixed_by_the_seed(client):
    first, status = client.predict(11, api_name="/faces_gallery")
    again, _ = client.predict(11, api_name="/faces_gallery")
    other, _ = client.predict(12, api_name="/faces_gallery")
    assert "seed 11" in status
    im = Image.open(first)
    assert im.format == "PNG" and im.size == (8 * 98 - 2, 8 * 98 - 2)   # 8x8 faces of 96 px
    same = [Image.open(x).tobytes() for x in (first, again, other)]
    assert same[0] == same[1] != same[2]


@pytestmark_faces
def test_faces_arithmetic_edit_interpolate(client):
    ga, gb, gc, result, around, pixel, status = client.predict(
        11, "1, 2, 3", "#4 5 6", "7", 0.25, api_name="/faces_arithmetic")
    assert [Image.open(g).size[0] for g in (ga, gb, gc)] == [3 * 98 - 2, 3 * 98 - 2, 96]
    assert Image.open(result).size == (256, 256) and Image.open(pixel).size == (256, 256)
    assert Image.open(around).size == (4 * 98 - 2, 2 * 98 - 2)
    assert status.startswith("Group C has one face") and "classifier reads" in status
    before, after, status = client.predict(11, 3, 0, 0, 0, 0, 0, True, api_name="/faces_edit")
    assert Image.open(before).tobytes() == Image.open(after).tobytes()  # no shift, same face
    _, moved, status = client.predict(11, 3, 6, 0, 0, 0, 0, True, api_name="/faces_edit")
    assert Image.open(moved).tobytes() != Image.open(before).tobytes() and "Face #3" in status


def reading(status: str) -> dict[str, float]:
    """The classifier's reading in an edit's status: {'male': 0.03, 'glasses': 0.97, ...}."""
    text = status.split("reads the edited face as:")[1].split(".")[0]
    return {m[0].strip(): float(m[1]) / 100 for m in re.findall(r"([a-z ]+) (\d+)%", text)}


@pytestmark_faces
def test_faces_glasses_for_a_woman_keep_her_a_woman(client):
    """The glasses direction is tied to 'male'; with 'keep the other attributes' (the default)
    a woman gets glasses and stays a woman; without it she is pushed across to 'male'."""
    for face in range(40):   # the first woman without glasses among seed 11's faces
        now = reading(client.predict(11, face, 0, 0, 0, 0, 0, True, api_name="/faces_edit")[2])
        if now["male"] < 0.2 and now["glasses"] < 0.2:
            break
    else:
        pytest.fail("no woman without glasses among the first 40 faces")
    kept = client.predict(11, face, 0, 6, 0, 0, 0, True, api_name="/faces_edit")[2]
    plain = client.predict(11, face, 0, 6, 0, 0, 0, False, api_name="/faces_edit")[2]
    assert "Held on their side: " in kept and "male (no)" in kept and "Held" not in plain
    assert reading(kept)["glasses"] > 0.5 and reading(kept)["male"] < 0.5
    assert reading(plain)["glasses"] > 0.5
    # the checkbox may be left out through the API (it defaults to on)
    assert client.predict(11, face, 0, 6, 0, 0, 0, api_name="/faces_edit")[2] == kept
    strip, gif, status = client.predict(11, 3, 9, 6, api_name="/faces_interpolate")
    assert Image.open(strip).size == (6 * 64, 64)
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 10   # there and back


@pytestmark_faces
@pytest.mark.parametrize("args,message", [
    ((11, "", "1", "2", 0.2), "Group A is empty"),
    ((11, "1", "2, x", "2", 0.2), "'x' is not a face number"),
    ((11, "1", "2", "999", 0.2), "face 999 does not exist"),
    ((11, "1", "2", "3", 50), "greater than maximum"),
    ((11, "1", "2", "3", -1), "less than minimum"),
    ((-5, "1", "2", "3", 0.2), "less than minimum"),
    ((2**40, "1", "2", "3", 0.2), "greater than maximum"),
    ((11, ",".join(["1"] * 40), "2", "3", 0.2), "at most 32"),
])
def test_faces_bad_input(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/faces_arithmetic")
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(11, 3, 500, 0, 0, 0, 0, True, api_name="/faces_edit")
    with pytest.raises(AppError, match="must be true or false"):
        client.predict(11, 3, 1, 0, 0, 0, 0, "maybe", api_name="/faces_edit")
    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio checks dropdowns
        client.predict(11, "frowning dog", api_name="/faces_pick")
    assert "seed 11" in client.predict(11, api_name="/faces_gallery")[1]


# ---------------------------------------------------------------- WaveNet audio

SPEECH = "Speech (LJSpeech, one speaker)"
WAVE = dict(model_name=SPEECH, seconds=2, temperature=1.0, seed=3, upload=None, clip=None,
            primer_seconds=1.0, note=None)
needs_wavenet = pytest.mark.skipif(SPEECH not in WAVENET_MODELS, reason="no speech WaveNet")


def read_wav(path):
    import soundfile as sf

    return sf.read(path, dtype="int16")


@needs_wavenet
def test_wavenet_streams_audio_and_a_seed_reproduces_it(client):
    job = client.submit(**WAVE, api_name="/wavenet_generate")
    updates = list(job)
    audio, plot, wav, status = job.result()
    assert len(updates) >= 3                       # streamed a second at a time, then the end
    assert "Done: 2.0 s" in status and "real time" in status
    data, rate = read_wav(wav)
    assert rate == 16000 and len(data) == 32000
    assert audio and Image.open(plot).size[0] >= 600
    _, _, again, _ = client.predict(**WAVE, api_name="/wavenet_generate")
    assert (read_wav(again)[0] == data).all()
    _, _, other, _ = client.predict(**{**WAVE, "seed": 4}, api_name="/wavenet_generate")
    assert (read_wav(other)[0] != data).mean() > 0.5


@needs_wavenet
def test_wavenet_continues_an_uploaded_primer(client, tmp_path):
    import numpy as np
    import soundfile as sf

    rate = 44100
    t = np.arange(int(rate * 6)) / rate                          # 6 s stereo 24-bit at 44.1 kHz
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "primer.wav"
    sf.write(path, np.stack([tone, tone], 1), rate, subtype="PCM_24")
    _, _, wav, status = client.predict(**{**WAVE, "seconds": 1, "upload": handle_file(str(path)),
                                          "primer_seconds": 1.5}, api_name="/wavenet_generate")
    data, out_rate = read_wav(wav)
    assert out_rate == 16000 and len(data) == 16000 + 24000   # the primer's tail, then 1 s new
    for note in ("last 1.5 s", "mixed to mono", "resampled from 44.1 kHz", "pcm 24"):
        assert note.lower() in status.lower()


@needs_wavenet
@pytest.mark.parametrize("change,message", [
    (dict(seconds=0), "less than minimum"),
    (dict(seconds=-2), "less than minimum"),
    (dict(seconds=10**6), "greater than maximum"),
    (dict(temperature=-0.5), "less than minimum"),
    (dict(temperature=99), "greater than maximum"),
    (dict(seed=-1), "less than minimum"),
    (dict(model_name="WaveNet 2"), "WaveNet 2"),
])
def test_wavenet_bad_settings_get_clear_errors(client, change, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{**WAVE, **change}, api_name="/wavenet_generate")


@needs_wavenet
def test_wavenet_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEfmt this is not audio")
    with pytest.raises(AppError, match="Could not read the upload as audio"):
        client.predict(**{**WAVE, "upload": handle_file(str(junk))}, api_name="/wavenet_generate")
    empty = tmp_path / "empty.wav"
    import numpy as np
    import soundfile as sf

    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AppError, match="empty|no samples"):
        client.predict(**{**WAVE, "upload": handle_file(str(empty))}, api_name="/wavenet_generate")
    *_, status = client.predict(**{**WAVE, "seconds": 0.5}, api_name="/wavenet_generate")
    assert "Done" in status


@needs_wavenet
def test_wavenet_compare_temperatures(client):
    import numpy as np

    audio, plot, status = client.predict(SPEECH, 3, None, None, 1.0, None,
                                         api_name="/wavenet_compare")
    assert "Done: 5 temperatures" in status
    data, rate = read_wav(audio)
    clip, gap = int(1.5 * rate), rate // 4
    assert rate == 16000 and len(data) == 5 * (clip + gap)
    clips = [data[i * (clip + gap):i * (clip + gap) + clip] for i in range(5)]
    assert all(not data[i * (clip + gap) + clip:(i + 1) * (clip + gap)].any() for i in range(5))
    def entropy(c):                                        # bits, of the levels used
        p = np.unique(c, return_counts=True)[1] / len(c)
        return float(-(p * np.log2(p)).sum())

    spread = [entropy(c) for c in clips]                   # T = 0, 0.5, 0.8, 1, 1.3
    assert spread[0] < 1 and spread[0] < spread[1] < spread[3] < spread[4], spread
    assert Image.open(plot).size[1] > 500                  # five spectrogram rows


NOTE_MODEL = "Piano note (pick the pitch)"


@pytest.mark.skipif(NOTE_MODEL not in WAVENET_MODELS, reason="no note WaveNet")
def test_wavenet_note_model_plays_the_pitch_asked_for(client):
    """The pitch-conditioned model asked for A4 plays A4 (measured on the WAV it returns, the
    same measure the card uses for all 88 keys), and the status says what it played."""
    from models.audio import estimate_pitch

    ask = {**WAVE, "model_name": NOTE_MODEL, "note": "MIDI 69", "seconds": 1.5, "seed": 0}
    _, _, wav, status = client.predict(**ask, api_name="/wavenet_generate")
    data, rate = read_wav(wav)
    assert rate == 16000 and len(data) == 24000
    pitch = estimate_pitch(data / 32768, rate)
    assert pitch is not None and abs(pitch - 69) <= 0.5, pitch
    assert "You asked for A4; it played **A4**" in status
    with pytest.raises(AppError, match="MIDI 200"):
        client.predict(**{**ask, "note": "MIDI 200"}, api_name="/wavenet_generate")
    *_, status = client.predict(**{**ask, "seconds": 0.5}, api_name="/wavenet_generate")
    assert "Done" in status                                            # still serving
