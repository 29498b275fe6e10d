"""PixelCNN: masks and causality, the blind spot, the likelihood's units, fast sampling equal to
the definition, training and measuring, the shipped models; the tab through gradio_client."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from models.hub import WEIGHTS_DIR, from_pretrained
from models.pixelcnn import (PixelCNN, PixelCNNConfig, PixelCNNPipeline, bits_per_dim, draw,
                             mask_a, mask_b, quantise, receptive_field, sample, to_uint8)
from tabs.pixelcnn import CHECKPOINTS, MODEL_NAMES

SHIPPED = [folder for folder in CHECKPOINTS.values() if (WEIGHTS_DIR / folder / "README.md").is_file()]


def tiny(kind: str, seed: int = 0, layers: int = 4, double: bool = True) -> PixelCNN:
    torch.manual_seed(seed)
    model = PixelCNN(PixelCNNConfig(kind=kind, channels=8, layers=layers,
                                    classes=10 if kind == "gated" else 0)).eval()
    return model.double() if double else model


def labels_for(model, n=2):
    return torch.arange(n) % 10 if model.config.classes else None


# ------------------------------------------------------------------ masks and causality
def test_masks_a_and_b():
    a, b = mask_a(5), mask_b(5)
    assert a[:2].all() and a[2, :2].all() and not a[2, 2:].any() and not a[3:].any()
    assert torch.equal(b - a, torch.zeros(5, 5).index_put_((torch.tensor([2]), torch.tensor([2])),
                                                           torch.tensor(1.0)))


@pytest.mark.parametrize("kind", ["plain", "gated"])
@pytest.mark.parametrize("pixel", [(0, 0), (10, 12), (13, 27), (27, 27)])
def test_no_output_sees_its_own_pixel_or_any_after_it(kind, pixel):
    """Change one input pixel: every output up to and including that pixel stays the same,
    and a later one reacts (for a pixel that has a later one)."""
    model = tiny(kind)
    x = torch.randint(0, 256, (2, 28, 28), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, pixel[0], pixel[1]] = (y[:, pixel[0], pixel[1]] + 128) % 256
    with torch.no_grad():
        diff = (model(y, labels_for(model)) - model(x, labels_for(model))).abs().amax(1)[0].flatten()
    k = pixel[0] * 28 + pixel[1]
    assert (diff[:k + 1] == 0).all()
    if k + 1 < 784:
        assert diff[k + 1:].max() > 0


def test_the_gated_model_has_no_blind_spot_and_the_plain_one_has():
    row, col = 14, 14
    plain = receptive_field(tiny("plain", layers=6, double=False), row, col)
    gated = receptive_field(tiny("gated", layers=6, double=False), row, col)
    for field in (plain, gated):
        assert not field[row, col:].any() and not field[row + 1:].any()   # never the future
        assert field[row, col - 1] and field[row - 1, col]
    # up and to the right: the plain stack misses a wedge the gated one sees
    wedge = [(row - 1, col + k) for k in range(2, 6)] + [(row - 2, col + k) for k in range(4, 8)]
    assert not all(plain[r, c] for r, c in wedge)
    assert all(gated[r, c] for r, c in wedge)
    # and everything above within its reach, in every column
    assert gated[row - 4:row, col - 8:col + 9].all()


# ------------------------------------------------------------------ the likelihood's unit
def test_bits_per_dimension_by_hand():
    x = torch.randint(0, 256, (3, 28, 28))
    uniform = torch.zeros(3, 256, 28, 28)
    torch.testing.assert_close(bits_per_dim(uniform, x), torch.full((3,), 8.0))
    sure = torch.full((3, 256, 28, 28), -1e4).scatter(1, x[:, None], 0.0)
    torch.testing.assert_close(bits_per_dim(sure, x), torch.zeros(3))
    # four levels: uniform over them is 2 bits, plus 6 bits for the 64 grey values in each
    q = quantise(x.numpy().astype(np.uint8), 4)
    assert q.max() <= 3
    torch.testing.assert_close(bits_per_dim(torch.zeros(3, 4, 28, 28), q, levels=4), torch.full((3,), 8.0))
    assert (to_uint8(quantise(np.arange(256, dtype=np.uint8)[None], 256), 256) == np.arange(256)).all()


def test_the_vae_bound_uses_a_normalised_distribution_over_grey_levels():
    """The VAE's Bernoulli output read as an 8-bit distribution sums to one over the levels."""
    t = torch.tensor([-8.0, -1.0, 0.0, 2.0, 30.0])[:, None]
    k = torch.arange(256, dtype=torch.float32) / 255
    log_p = k * t - torch.logsumexp(k * t, -1, keepdim=True)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(5))


# ------------------------------------------------------------------ sampling
def test_draw_inverts_the_cdf_and_temperature_zero_is_the_argmax():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7]]))
    for u, want in ((0.05, 0), (0.15, 1), (0.31, 2), (0.999, 2)):
        assert int(draw(logits, torch.tensor([u]), 1.0)) == want
    assert int(draw(logits, torch.tensor([0.0]), 0.0)) == 2


@pytest.mark.parametrize("kind", ["plain", "gated"])
def test_fast_sampling_equals_the_definition_for_a_seed(kind):
    """Computing only the rows a pixel can see (and, gated, the vertical stack once per row)
    gives the same logits, hence the same images, as the whole network per pixel."""
    model = tiny(kind, layers=5)
    x = torch.zeros(2, 28, 28, dtype=torch.long)
    known = torch.zeros_like(x, dtype=torch.bool)
    known[:, :3] = True                                        # a completion: three rows given
    x[:, :3] = torch.randint(0, 256, (2, 3, 28), generator=torch.Generator().manual_seed(2))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    fast = sample(model, x, known, u, 1.0, labels_for(model))
    naive = sample(model, x, known, u, 1.0, labels_for(model), naive=True)
    assert torch.equal(fast, naive)
    assert torch.equal(fast[:, :3], x[:, :3])                  # the given pixels stay
    other = sample(model, x, known, torch.rand(x.shape, dtype=torch.float64), 1.0, labels_for(model))
    assert not torch.equal(other, fast)


def test_the_pipeline_streams_rows_and_a_seed_reproduces_the_images():
    pipe = PixelCNNPipeline(tiny("gated", double=False))
    updates = list(pipe.stream(n=3, label=[1, 2, 3], generator=torch.Generator().manual_seed(0)))
    assert [u.row for u in updates] == list(range(1, 29)) and updates[-1].done
    assert updates[-1].images.shape == (3, 28, 28) and updates[-1].images.dtype == np.uint8
    assert not updates[0].images[:, 1:].any()                   # rows not drawn yet are 0
    again = pipe(3, label=[1, 2, 3], generator=torch.Generator().manual_seed(0))
    assert np.array_equal(again, updates[-1].images)
    with pytest.raises(ValueError, match="labels"):
        pipe(3, label=[1, 2], generator=torch.Generator().manual_seed(0))
    bits = pipe.surprise(again, [1, 2, 3])
    assert bits.shape == (3, 28, 28) and (bits > 0).all()


# ------------------------------------------------------------------ training and measuring
def test_tiny_training_run_resumes_and_measures(tmp_path):
    from train.card import render
    from train.pixelcnn import add_judge, main, measure

    out, run = tmp_path / "p", tmp_path / "run"
    main(["--kind", "gated", "--tiny", "--out", str(out), "--run-dir", str(run)])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20] and all(0 < r["val_bits"] < 9 for r in log)
    main(["--kind", "gated", "--tiny", "--steps", "30", "--out", str(out), "--run-dir", str(run)])
    assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()] == [10, 20, 30]
    model = from_pretrained(PixelCNN, out)
    assert model.config.kind == "gated" and model.config.classes == 10
    # a fresh machine (no runs/) carries on from the exported checkpoint and its record
    before = json.loads((out / "config.json").read_text())["training"]
    main(["--kind", "gated", "--tiny", "--steps", "40", "--out", str(out),
          "--run-dir", str(tmp_path / "fresh"), "--continue-from", str(out)])
    after = json.loads((out / "config.json").read_text())["training"]
    assert after["step"] == 40 and [r["step"] for r in after["curve"]] == [10, 20, 30, 40]
    assert after["hours"] > before["hours"] > 0
    with pytest.raises(SystemExit, match="gated model of mnist"):
        main(["--kind", "plain", "--tiny", "--out", str(tmp_path / "x"),
              "--run-dir", str(tmp_path / "other"), "--continue-from", str(out)])
    metrics = measure(out, images=500, vae_samples=2)
    assert metrics["test_images"] == 500
    assert 0 < metrics["test_bits_per_dim"] < 9 and len(metrics["per_class"]) == 10
    assert metrics["vae"]["iwae_bits_per_dim"] <= metrics["vae"]["elbo_bits_per_dim"] + 0.01
    assert (out / "samples.png").is_file() and (out / "receptive_field.png").is_file()
    judge = add_judge(out, n=100)     # the digit judge reads 100 samples, ten of each class
    assert judge["samples"] == 100 and 0 <= judge["recognisable"] <= 1 and judge["frechet"] > 0
    assert json.loads((out / "metrics.json").read_text())["judge"] == judge
    card = render(out)
    assert f"{metrics['test_bits_per_dim']:.3f}" in card and "Gated PixelCNN, MNIST" in card
    assert f"Fréchet distance on its features **{judge['frechet']:.1f}**" in card


# ------------------------------------------------------------------ the shipped models
@pytest.mark.skipif(not SHIPPED, reason="no PixelCNN checkpoint shipped yet")
@pytest.mark.parametrize("folder", SHIPPED)
def test_shipped_model_test_likelihood_matches_its_card(folder):
    from train.data import load_digits
    from train.pixelcnn import evaluate

    model = from_pretrained(PixelCNN, folder)
    metrics = json.loads((WEIGHTS_DIR / folder / "metrics.json").read_text())
    images, labels = load_digits(model.config.dataset, "test")
    part = evaluate(model, images[:2000], labels[:2000])
    assert part == pytest.approx(metrics["test_bits_per_dim"], abs=0.05)
    # far below the uniform 8 bits and the VAE read as an 8-bit model (garments' greys cost more
    # than digits' black and white strokes)
    good = {"mnist": 1.5, "fashion": 3.5}[model.config.dataset]
    assert metrics["test_bits_per_dim"] < good < metrics["vae"]["iwae_bits_per_dim"]


# ------------------------------------------------------------------ the tab, through gradio_client
needs_model = pytest.mark.skipif(not MODEL_NAMES, reason="no PixelCNN checkpoint shipped yet")


def digit_file(tmp_path) -> str:
    seven = Image.new("L", (200, 200), 255)            # dark ink on white paper, as people draw
    ImageDraw.Draw(seven).line([(40, 40), (160, 40), (90, 170)], fill=0, width=14)
    seven.save(tmp_path / "seven.png")
    return str(tmp_path / "seven.png")


@needs_model
def test_pixelcnn_samples_stream_and_a_seed_reproduces_them(client):
    name = MODEL_NAMES[0]
    job = client.submit(name, "one of each", 4, 1.0, 5, api_name="/pixelcnn_sample")
    updates = list(job)
    image, status = job.result()
    assert len(updates) >= 5 and "Done: 4 images" in status
    assert Image.open(image).size == (4 * 112 + 3 * 4, 112)
    again, _ = client.predict(name, "one of each", 4, 1.0, 5, api_name="/pixelcnn_sample")
    assert Image.open(again).tobytes() == Image.open(image).tobytes()


@needs_model
def test_pixelcnn_completes_surprises_and_shows_receptive_fields(client, tmp_path):
    name = MODEL_NAMES[0]
    given, filled, status = client.predict(name, "one of each", None, handle_file(digit_file(tmp_path)),
                                           "the bottom half", 14, 0, 2, 1.0, 0,
                                           api_name="/pixelcnn_complete")
    assert "Done" in status and "392 pixels filled in" in status and "inverted" in status.lower()
    completions = np.asarray(Image.open(filled).convert("L"))
    assert completions.shape == (112, 2 * 112 + 4)
    # the top half is the given digit in every completion
    top = completions[:56, :112]
    assert np.abs(top.astype(int) - completions[:56, 116:].astype(int)).max() <= 1
    field, text = client.predict(3, 20, api_name="/pixelcnn_receptive_field")
    assert "row 3, column 20" in text and Image.open(field).size[1] == 224
    plot, text = client.predict(name, "7", None, handle_file(digit_file(tmp_path)),
                                api_name="/pixelcnn_surprise")
    assert "bits per pixel" in text
    with pytest.raises(AppError, match="Pick a class"):
        client.predict(name, "eleven", None, handle_file(digit_file(tmp_path)),
                       api_name="/pixelcnn_surprise")


@needs_model
@pytest.mark.parametrize("args,message", [
    (dict(count=0), "less than minimum"),
    (dict(count=500), "greater than maximum"),
    (dict(temperature=-1), "less than minimum"),
    (dict(temperature=1e9), "greater than maximum"),
    (dict(seed=-3), "less than minimum"),
    (dict(model_name="PixelRNN"), "PixelRNN"),
])
def test_pixelcnn_bad_settings_get_clear_errors(client, args, message):
    call = dict(model_name=MODEL_NAMES[0], label="one of each", count=2, temperature=1.0, seed=0)
    with pytest.raises(AppError, match=message):
        client.predict(*{**call, **args}.values(), api_name="/pixelcnn_sample")


@needs_model
def test_pixelcnn_bad_pictures_get_clear_errors(client, tmp_path):
    name = MODEL_NAMES[0]
    with pytest.raises(AppError, match="Draw something"):
        client.predict(name, "one of each", None, None, "the bottom half", 14, 0, 2, 1.0, 0,
                       api_name="/pixelcnn_complete")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    with pytest.raises(AppError, match="empty"):
        client.predict(name, "one of each", None, handle_file(str(blank)), "the bottom half", 14, 0,
                       2, 1.0, 0, api_name="/pixelcnn_complete")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 64)
    with pytest.raises(AppError, match="Could not read"):
        client.predict(name, "one of each", None, handle_file(str(junk)), api_name="/pixelcnn_surprise")
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(40, 3, api_name="/pixelcnn_receptive_field")
    # hiding from the last pixel fills one pixel; the server still serves
    _, _, status = client.predict(name, "one of each", None, handle_file(digit_file(tmp_path)),
                                  "everything after the chosen pixel", 27, 27, 1, 0.0, 0,
                                  api_name="/pixelcnn_complete")
    assert "1 pixels filled in" in status
