"""GAN lab, digits page: the classifier's measures (Fréchet distance, classes covered,
confidence) on tiny cases and on real test images (the floor its card states), the digit GANs'
rounds and pipelines, the shipped checkpoints against their cards, the live run's caps and bad
input, and the page through gradio_client."""
from __future__ import annotations

import gzip
import json
import math
import time

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError
from PIL import Image

from models.digitgan import (DigitGAN, DigitGANConfig, DigitGANPipeline, shipped_available,
                             slerp)
from models.digits import (ClassifierConfig, DigitClassifier, classifier_available, find_set,
                           frechet_distance, load_classifier, quality, read_idx, read_set,
                           to_input)
from models.ganlab import ToyConfig
from models.hub import WEIGHTS_DIR
from models.runtime import single_threaded

HAVE_MNIST = find_set("mnist") is not None
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST on this machine (make digits)")
needs_classifier = pytest.mark.skipif(not classifier_available("mnist"),
                                      reason="no shipped MNIST classifier")


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def tiny_images(n: int = 256, seed: int = 0) -> np.ndarray:
    """Bright squares on black at random places: a data set a tiny GAN can start on."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for im, (r, c) in zip(out, rng.integers(4, 16, (n, 2))):
        im[r:r + 8, c:c + 8] = 255
    return out


# ------------------------------------------------------------------ data and measures
def test_idx_files_are_read_and_a_server_finds_its_copy(tmp_path, monkeypatch):
    images, labels = tiny_images(5), np.arange(5, dtype=np.uint8)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    assert (read_idx(folder / "train-images-idx3-ubyte.gz") == images).all()
    monkeypatch.setenv("GDL_DIGITS", str(tmp_path))
    assert find_set("mnist") == folder
    x, y = read_set(folder, "test")
    assert x.shape == (5, 28, 28) and list(y) == [0, 1, 2, 3, 4]
    assert find_set("mnist", [tmp_path / "nowhere"]) is None


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + np.eye(4)
    mu = rng.normal(size=4)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(mu, cov, mu + 2, cov) == pytest.approx(16, abs=1e-6)     # 4 x 2^2
    # diagonal covariances: sum of (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 9.0])
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(1 + 1)


def one_class_classifier(cls: int) -> DigitClassifier:
    """A tiny classifier whose verdict is always class ``cls`` with logit margin 10."""
    model = DigitClassifier(ClassifierConfig(channels=2, features=8))
    with torch.no_grad():
        model.head[1].weight.zero_()
        model.head[1].bias.zero_()
        model.head[1].bias[cls] = 10.0
        model.real_cov.copy_(torch.eye(8, dtype=torch.float64))
    return model.eval()


def test_quality_counts_classes_confidence_and_recognisable_samples():
    model = one_class_classifier(3)
    q = quality(model, torch.rand(50, 1, 28, 28) * 2 - 1)
    assert q.classes_covered == 1 and q.class_shares[3] == 1.0
    top = float(torch.softmax(torch.tensor([10.0] + [0.0] * 9), 0)[0])
    assert q.confidence == pytest.approx(top, rel=1e-5) and q.recognisable == 1.0
    assert q.frechet > 0 and q.samples == 50
    assert "1/10 classes covered" in q.summary(floor=2.5) and "real images: 2.5" in q.summary(2.5)


@needs_classifier
@needs_mnist
def test_the_classifier_reads_real_test_digits_as_its_card_says():
    clf = load_classifier("mnist")
    card = json.loads((WEIGHTS_DIR / "digit-classifier-mnist" / "metrics.json").read_text())
    x, y = read_set(find_set("mnist"), "test")
    feats, probs = clf.read(to_input(x))
    assert (probs.argmax(1) == y).mean() == pytest.approx(card["test_accuracy"], abs=1e-4)
    assert card["test_accuracy"] > 0.99
    # the floor: 1,000 real images score near the card's figure, uniform noise far above it
    # (a random 1,000: the test set's first half is another population of writers)
    pick = np.random.default_rng(0).permutation(len(x))[:1000]
    real = quality(clf, to_input(x[pick]))
    floor = card["floor"]["1000"]
    assert real.classes_covered == 10 and real.frechet < floor["frechet"] + 4 * floor["frechet_sd"]
    noise = quality(clf, torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert noise.frechet > 50 * floor["frechet"] and noise.recognisable < 0.05
    assert noise.confidence < 0.3             # not sure of what is not a digit (outlier exposure)


# ------------------------------------------------------------------ the game
def tiny_config(kind: str = "mlp", **changes) -> DigitGANConfig:
    return DigitGANConfig(kind=kind, width=16, channels=4, batch=16, **changes)


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_a_round_updates_both_networks_and_a_seed_replays_it(kind):
    images = tiny_images()
    game = DigitGAN(tiny_config(kind), images)
    g0 = [p.detach().clone() for p in game.G.parameters()]
    d0 = [p.detach().clone() for p in game.D.parameters()]
    game.step(3)
    assert game.steps == 3 and len(game.history) == 3 and game.seconds > 0
    assert all(not torch.equal(a, b) for a, b in zip(g0, game.G.parameters()) if a.dim() > 1)
    assert all(not torch.equal(a, b) for a, b in zip(d0, game.D.parameters()) if a.dim() > 1)
    h = game.history[-1]
    assert 0 < h.d_real < 1 and 0 < h.d_fake < 1 and np.isfinite([h.d_loss, h.g_loss]).all()
    again = DigitGAN(tiny_config(kind), images)
    again.step(3)
    assert [r.d_loss for r in again.history] == [r.d_loss for r in game.history]
    x = game.sample(10)
    assert x.shape == (10, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert game.grid(cell=28).shape == (8 * 28 + 7 * 2, 8 * 28 + 7 * 2)
    assert game.epochs == pytest.approx(3 * 16 / 256)
    game.tune(1e-3, 5e-4)
    assert game.opt_d.param_groups[0]["lr"] == 1e-3 and game.opt_g.param_groups[0]["lr"] == 5e-4


def test_games_share_the_image_array_and_learn_the_squares():
    images = tiny_images(512)
    game = DigitGAN(tiny_config("mlp", seed=1), images)
    assert game.data.data_ptr() == images.__array_interface__["data"][0]     # no copy per run
    before = float((game.sample(64) > 0).float().mean())
    single_threaded(1).submit(game.step, 300).result()
    bright = float((game.sample(256) > 0).float().mean())
    assert abs(bright - 64 / 784) < abs(before - 64 / 784)      # towards an 8x8 square's share


def test_curves_are_running_means_of_the_rounds():
    from models.digitgan import smoothed
    from models.ganlab import Record

    history = [Record(i + 1, float(i % 2), 1.0, 0.5, 0.5, math.nan) for i in range(400)]
    out = smoothed(history)
    assert len(out) == 400 and out[-1].step == 400
    assert out[-1].d_loss == pytest.approx(0.5) and out[0].d_loss == 0.0    # window of 4 rounds
    long = smoothed([Record(i + 1, 1.0, 2.0, 0.5, 0.5, math.nan) for i in range(5000)])
    assert len(long) == 1000 and long[-1].step == 5000 and long[-1].g_loss == 2.0


def test_slerp_ends_at_its_endpoints_and_keeps_the_length():
    a, b = torch.randn(3, 100), torch.randn(3, 100)
    t = torch.tensor([0.0, 0.5, 1.0])
    out = slerp(a, b, t)
    assert torch.allclose(out[0], a[0], atol=1e-5) and torch.allclose(out[2], b[2], atol=1e-5)
    assert float(out[1].norm()) == pytest.approx(float((a[1].norm() + b[1].norm()) / 2), rel=0.1)


def test_the_pipeline_is_seeded_and_walks_from_one_seed_to_the_other():
    from models.digitgan import Generator

    pipe = DigitGANPipeline(Generator(tiny_config("dcgan")))
    assert torch.equal(pipe(seed=3, n=4), pipe(seed=3, n=4))
    assert not torch.equal(pipe(seed=3, n=4), pipe(seed=4, n=4))
    walk = pipe.interpolate(3, 4, steps=5, rows=2)
    assert walk.shape == (10, 1, 28, 28)
    assert torch.allclose(walk[0], pipe(seed=3, n=2)[0], atol=1e-5)
    assert torch.allclose(walk[9], pipe(seed=4, n=2)[1], atol=1e-5)


# ------------------------------------------------------------------ trainers and shipped checkpoints
@needs_mnist
def test_tiny_trainers_export_a_classifier_and_a_generator_with_cards(tmp_path, monkeypatch):
    from train import card, digitgan, digits

    monkeypatch.setenv("GDL_DATA", str(find_set("mnist").parent.parent))
    digits.main(["--tiny", "--out", str(tmp_path / "clf")])
    digitgan.main(["--tiny", "--kind", "dcgan", "--out", str(tmp_path / "gan"),
                   "--run", str(tmp_path / "run"), "--classifier", str(tmp_path / "clf")])
    metrics = json.loads((tmp_path / "gan" / "metrics.json").read_text())
    assert set(metrics["samples"]) == {"1000", "10000"} and metrics["progress_rounds"] == [0, 40]
    for name in ("samples.png", "progress.png", "curve.png", "interpolation.png"):
        assert Image.open(tmp_path / "gan" / name).size[0] > 100
    text = card.render(tmp_path / "gan")
    assert "DCGAN, MNIST" in text and "| **10,000 samples** |" in text
    assert "MNIST classifier" in card.render(tmp_path / "clf")
    # resuming a finished run adds nothing and exports the same generator
    digitgan.main(["--tiny", "--kind", "dcgan", "--out", str(tmp_path / "gan2"),
                   "--run", str(tmp_path / "run"), "--classifier", str(tmp_path / "clf")])
    a = DigitGANPipeline.from_pretrained(tmp_path / "gan")(seed=0, n=4)
    b = DigitGANPipeline.from_pretrained(tmp_path / "gan2")(seed=0, n=4)
    assert torch.equal(a, b)


SHIPPED = [(k, d) for k in ("mlp", "dcgan") for d in ("mnist", "fashion") if shipped_available(k, d)]


@pytest.mark.skipif(not SHIPPED, reason="no shipped digit GAN")
@pytest.mark.parametrize("kind,dataset", SHIPPED)
def test_shipped_generators_measure_as_their_cards_say(kind, dataset):
    from train.card import render
    from train.digitgan import MEASURE_SEED

    folder = WEIGHTS_DIR / f"gan-{kind}-{dataset}"
    metrics = json.loads((folder / "metrics.json").read_text())
    pipe = DigitGANPipeline.from_pretrained(folder)
    q = quality(load_classifier(dataset), pipe(seed=MEASURE_SEED, n=1000))
    card = metrics["samples"]["1000"]
    assert q.frechet == pytest.approx(card["frechet"], rel=1e-3)
    assert q.classes_covered == card["classes_covered"]
    assert q.confidence == pytest.approx(card["confidence"], abs=1e-4)
    # fully trained: every class drawn, at least half as often recognisable as real images, and
    # far nearer the real images than noise is
    judge = json.loads((WEIGHTS_DIR / f"digit-classifier-{dataset}" / "metrics.json").read_text())
    assert card["classes_covered"] == 10
    assert card["recognisable"] > 0.5 * judge["floor"]["1000"]["recognisable"]
    assert card["frechet"] < 0.1 * judge["uniform_noise"]["frechet"]
    assert (folder / "README.md").read_text() == render(folder)


# ------------------------------------------------------------------ the page's functions
def live(**changes) -> list:
    values = dict(dataset="mnist", kind="mlp", lr_d=2e-4, lr_g=2e-4, seed=0)
    values.update(changes)
    return list(values.values())


@pytest.mark.parametrize("changes,message", [
    (dict(dataset="cifar"), "Data set"), (dict(kind="vae"), "Model"),
    (dict(lr_d=float("nan")), "D learning rate"), (dict(lr_g=5.0), "G learning rate"),
    (dict(seed=-1), "Seed"), (dict(lr_d="fast"), "D learning rate")])
def test_bad_settings_get_a_clear_error(changes, message):
    from tabs import ganlab_digits

    with pytest.raises(gr.Error, match=message):
        ganlab_digits.config_from(*live(**changes))


def test_a_server_without_the_data_says_so(monkeypatch):
    from tabs import ganlab_digits

    monkeypatch.setattr(ganlab_digits, "training_images", lambda dataset: None)
    with pytest.raises(gr.Error, match="no copy of MNIST"):
        ganlab_digits.new_run(None, *live())


def test_play_stops_at_its_caps_and_no_second_loop_starts(monkeypatch):
    from tabs import ganlab_digits

    monkeypatch.setattr(ganlab_digits, "training_images", lambda dataset: tiny_images())
    monkeypatch.setattr(ganlab_digits, "MAX_PLAY_SECONDS", 0.8)
    frames = list(ganlab_digits.play(None, *live()))
    grid, curves, status, run = frames[-1]
    assert "Paused after" in status and run.game.steps > 0 and not run.playing
    assert grid.shape[0] == grid.shape[1] > 400
    monkeypatch.setattr(ganlab_digits, "MAX_RUN_SECONDS", run.game.seconds)
    frames = list(ganlab_digits.play(run, *live()))
    assert len(frames) == 1 and "trained its" in frames[0][2]
    run.heartbeat = time.monotonic()
    again = list(ganlab_digits.play(run, *live()))
    assert len(again) == 1 and "Already training" in again[0][2]
    with pytest.raises(gr.Error, match="Pause the run first"):
        ganlab_digits.new_run(run, *live())
    run = ganlab_digits.retune(run, *live(lr_g=1e-3))
    assert run.game.opt_g.param_groups[0]["lr"] == 1e-3


def test_a_visitor_who_leaves_stops_their_run_and_frees_it(monkeypatch):
    from tabs import ganlab, ganlab_digits
    from tabs.common import end_live_play

    monkeypatch.setattr(ganlab_digits, "training_images", lambda dataset: tiny_images())
    frames = ganlab_digits.play(None, *live())
    *_, run = next(frames)
    assert run.playing and run.game is not None
    end_live_play(run)                           # gr.State's delete_callback
    assert list(frames) == [] and run.game is None and not run.playing
    lab = ganlab.show_game(None, *[getattr(ToyConfig(), k) for k in ganlab.SETTINGS], ganlab.LAYERS)[-1]
    end_live_play(lab)
    assert lab.game is None and lab.paused
    end_live_play(None)                          # a visitor who never played


@needs_mnist
@needs_classifier
def test_ganlab_digits_train_through_the_api(client):
    grid, curves, m = client.predict(*live(), 200, api_name="/ganlab_digits_train")
    assert Image.open(grid).size == (462, 462) and Image.open(curves).size == (480, 200)
    assert m["rounds"] == 200 and m["samples"] == 1000 and 0 <= m["recognisable"] <= 1
    assert m["frechet"] > 10          # 200 rounds: not digits yet, and the measure says so
    for values, rounds, message in [(live(), 10**6, "Rounds"), (live(kind="x"), 10, "not in the list of choices"),
                                    (live(lr_d=-1), 10, "not in the list of choices")]:
        with pytest.raises(AppError, match=message):
            client.predict(*values, rounds, api_name="/ganlab_digits_train")


@pytest.mark.skipif(not shipped_available("mlp", "mnist"), reason="no shipped MNIST GAN")
def test_shipped_samples_and_walks_through_the_api(client):
    samples, progress, curve, summary = client.predict("mnist", "mlp", 5, api_name="/ganlab_digits_samples")
    assert Image.open(samples).size == (462, 462) and "Fréchet distance" in summary
    again = client.predict("mnist", "mlp", 5, api_name="/ganlab_digits_samples")[0]
    assert np.array_equal(np.asarray(Image.open(samples)), np.asarray(Image.open(again)))
    walk = client.predict("mnist", "mlp", 0, 1, api_name="/ganlab_digits_walk")
    assert Image.open(walk).size == (10 * 48 + 9 * 2, 4 * 48 + 3 * 2)
    with pytest.raises(AppError, match="Seed"):
        client.predict("mnist", "mlp", -5, 1, api_name="/ganlab_digits_walk")
