"""CycleGAN: the losses, the history pool, a tiny training run, the generator on any upload, the
shipped models against their cards, bad input, and the tab through gradio_client."""
from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest
import torch

from models.cyclegan import (CycleGAN, CycleGANConfig, CycleGANPipeline, Discriminator, Generator,
                             ImagePool, cycle_loss, lsgan_loss, square_crop)
from models.hub import WEIGHTS_DIR
from tabs import cyclegan as tab

TINY = CycleGANConfig(ngf=4, blocks=1, ndf=4)
needs_model = pytest.mark.skipif(not tab.AVAILABLE, reason="no CycleGAN checkpoint shipped yet")


def test_lsgan_and_cycle_losses_on_tiny_tensors():
    scores = torch.tensor([[0.0, 1.0], [0.5, 2.0]])
    assert lsgan_loss(scores, True).item() == pytest.approx((1 + 0 + 0.25 + 1) / 4)
    assert lsgan_loss(scores, False).item() == pytest.approx((0 + 1 + 0.25 + 4) / 4)
    x = torch.zeros(1, 3, 2, 2)
    assert cycle_loss(x, x).item() == 0
    assert cycle_loss(x, x + 0.5).item() == pytest.approx(0.5)
    assert cycle_loss(x, x - 0.5).item() == pytest.approx(0.5)   # L1: the sign does not matter


def test_the_identity_loss_is_a_weighted_term_that_can_be_switched_off():
    from train.cyclegan import Trainer

    gen = torch.Generator().manual_seed(1)
    a, b = (torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1 for _ in range(2))
    torch.manual_seed(0)
    with_idt = Trainer(TINY).step(a, b)
    torch.manual_seed(0)
    without = Trainer(TINY, identity=0.0).step(a, b)
    assert with_idt["identity"] > 0 and without["identity"] == 0
    # the same initial weights and inputs: the other terms agree
    assert with_idt["cycle"] == pytest.approx(without["cycle"])
    assert with_idt["gan"] == pytest.approx(without["gan"])


def test_the_history_pool_fills_then_swaps_half_with_stored_images():
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)           # until full: in and straight out
    gen = torch.Generator().manual_seed(0)
    new = torch.arange(100.0, 300.0).view(200, 1, 1, 1)
    out = pool.query(new, gen)
    swapped = out.flatten() != new.flatten()
    assert 60 < swapped.sum().item() < 140                  # about half come from the history
    # what comes back instead is an image stored before: an earlier one of this batch or the first
    for k in torch.nonzero(swapped).flatten().tolist():
        assert out[k].item() < new[k].item()
    assert len(pool.images) == 4 and all(float(i) >= 100 for i in pool.images)
    clone = ImagePool(4)
    clone.load_state_dict(pool.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(clone.images, pool.images))
    assert torch.equal(ImagePool(0).query(new), new)         # size 0: no pool


def test_the_networks_keep_shape_and_range():
    g, d = Generator(4, 1), Discriminator(4, 2)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert d(x).shape == (3, 1, 14, 14)          # a 14x14 map of 34x34 patches


def test_a_tiny_training_run_learns_and_resumes(tmp_path):
    from train.cyclegan import main

    out, run = tmp_path / "ckpt", tmp_path / "run"
    main(["--tiny", "--out", str(out), "--run-dir", str(run)])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert all(np.isfinite([r["gan"], r["cycle"], r["identity"], r["d"]]).all() for r in log)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "cyclegan" and config["training"]["step"] == 4
    assert (out / "gallery.png").is_file() and (run / "progress.png").is_file()
    before = CycleGANPipeline.from_pretrained(str(out)).model.state_dict()
    main(["--tiny", "--steps", "6", "--out", str(out), "--run-dir", str(run)])   # resumes at 4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]
    after = CycleGANPipeline.from_pretrained(str(out)).model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_domains_come_from_the_attributes_and_hold_out_identities():
    from train.cyclegan import PAIRS, domain_data

    data = domain_data(PAIRS["hair"])
    names, attrs = data["attr_names"], data["attrs"]
    blond, black = names.index("Blond_Hair"), names.index("Black_Hair")
    assert (attrs[data["a_train"], blond] == 1).all() and (attrs[data["a_train"], black] == -1).all()
    assert (attrs[data["b_test"], black] == 1).all() and (attrs[data["b_test"], blond] == -1).all()
    from train.data import load_celeba

    identity = load_celeba()["identity"]
    train_ids = set(identity[np.concatenate([data["a_train"], data["b_train"]])])
    test_ids = set(identity[np.concatenate([data["a_test"], data["b_test"]])])
    assert train_ids.isdisjoint(test_ids) and len(data["a_test"]) > 100 and len(data["b_test"]) > 100


@pytest.mark.parametrize("shape", [(64, 64, 3), (30, 500, 3), (900, 40, 3), (1000, 700, 3)])
def test_any_upload_gives_a_64px_face_and_a_translation_in_range(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    face, (left, top, right, bottom) = square_crop(image, 1.0, 0.9, 0.1)
    side = min(shape[:2])
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
    assert right - left == side == bottom - top and 0 <= left and right <= shape[1] and bottom <= shape[0]
    pipe = CycleGANPipeline(CycleGAN(TINY).eval())
    out = pipe(face, "b2a")
    for picture in (out.translated, out.cycled):
        assert picture.shape == (1, 64, 64, 3) and picture.dtype == np.uint8
    assert out.change.shape == (1, 64, 64) and 0 <= out.change.min() and out.change.max() <= 1
    assert out.names == ("black hair", "blond hair")


def test_a_crop_too_small_for_a_face_and_bad_directions_are_refused():
    with pytest.raises(ValueError, match="too small"):
        square_crop(np.zeros((100, 20, 3), np.uint8), 1.0)
    pipe = CycleGANPipeline(CycleGAN(TINY).eval())
    with pytest.raises(ValueError, match="direction"):
        pipe(np.zeros((64, 64, 3), np.uint8), "sideways")
    with pytest.raises(ValueError, match="uint8"):
        pipe(np.zeros((32, 32, 3), np.uint8))


# ---------------------------------------------------------------- the shipped models


@needs_model
@pytest.mark.parametrize("pair", tab.PAIR_NAMES)
def test_the_shipped_models_success_rates_match_their_cards(pair):
    from models.faces import FaceAttributes
    from models.hub import from_pretrained
    from train.cyclegan import judge_rows, domain_data

    folder = WEIGHTS_DIR / tab.PAIRS[pair][1]
    metrics = json.loads((folder / "metrics.json").read_text())
    pipe = CycleGANPipeline.from_pretrained(str(folder))
    judge = from_pretrained(FaceAttributes, metrics["judge"])
    data = domain_data(pipe.model.config)
    for direction in ("a2b", "b2a"):
        row, _ = judge_rows(pipe, judge, data, direction)
        card = metrics["directions"][direction]
        tolerance = 2 / row["faces"]       # a face or two on the 0.5 line may read either way
        assert row["faces"] == card["faces"]
        assert row["success"] == pytest.approx(card["success"], abs=tolerance), direction
        assert row["all_kept"] == pytest.approx(card["all_kept"], abs=tolerance), direction
        assert row["cycle_l1_levels"] == pytest.approx(card["cycle_l1_levels"], rel=0.02)
        assert row["success"] > row["untranslated"] + 0.3     # the translation did something
    card = (folder / "README.md").read_text()
    assert f"{metrics['directions']['a2b']['success']:.0%}" in card


@needs_model
def test_the_tab_translates_a_gallery_face_and_reads_it(tmp_path):
    from PIL import Image

    face = tab.gallery_faces(tab.DEFAULT_PAIR)[0]
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    crop, there, back, change, status = tab.translate(tab.DEFAULT_PAIR, "a2b", str(path), 100, 50, 50)
    assert crop.shape == there.shape == back.shape == change.shape == (tab.SHOW, tab.SHOW, 3)
    assert np.array_equal(crop[::3, ::3], face)            # a 64 px face is used as it is
    assert "->" in status and "ms" in status and "cropped" not in status
    picture, directions = tab.show_pair(tab.DEFAULT_PAIR)
    for pair in tab.PAIR_NAMES:               # a switch of pair shows its own face and failures
        face, *views, failure = tab.first_face(pair)
        assert np.array_equal(face, tab.gallery_faces(pair)[0])
        assert "->" in views[-1] and failure.endswith(f"{tab.PAIRS[pair][1]}/failure.png")
    assert picture.shape == (128, 512, 3) and [v for _, v in directions["choices"]] == ["a2b", "b2a"]


@needs_model
@pytest.mark.parametrize("args, message", [
    (("nowhere", "a2b", None, 100, 50, 50), "Unknown pair"),
    ((None, "a2b", None, 100, 50, 50), "Unknown pair"),
    (("hair", "up", None, 100, 50, 50), "Unknown direction"),
    (("hair", "a2b", None, 100, 50, 50), "Upload an image"),
    (("hair", "a2b", "PHOTO", 1e9, 50, 50), "Crop size"),
    (("hair", "a2b", "PHOTO", 100, float("nan"), 50), "Crop centre across"),
    (("hair", "a2b", "PHOTO", 100, 50, -3), "Crop centre down"),
    (("hair", "a2b", "TINY", 10, 50, 50), "No face-sized square"),
    (("hair", "a2b", "CORRUPT", 100, 50, 50), "Could not decode"),
])
def test_bad_input_gets_a_clear_message(tmp_path, args, message):
    from PIL import Image

    files = {"PHOTO": tmp_path / "p.png", "TINY": tmp_path / "t.png", "CORRUPT": tmp_path / "c.png"}
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(files["PHOTO"])
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(files["TINY"])
    files["CORRUPT"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    args = tuple(str(files[a]) if isinstance(a, str) and a in files else a for a in args)
    with pytest.raises(gr.Error, match=message):
        tab.translate(*args)


@needs_model
def test_the_tab_through_gradio_client(client, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    path = tmp_path / "photo.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(path)
    crop, there, back, change, status = client.predict(
        tab.DEFAULT_PAIR, "b2a", handle_file(str(path)), 80, 50, 40, api_name="/cyclegan_translate")
    assert np.asarray(Image.open(crop)).shape == (tab.SHOW, tab.SHOW, 3)
    assert "Cropped to the square" in status and "scaled to 64x64" in status
    with pytest.raises(Exception, match="sideways.*not in the list of choices|Unknown direction"):
        client.predict(tab.DEFAULT_PAIR, "sideways", handle_file(str(path)), 80, 50, 40,
                       api_name="/cyclegan_translate")
    # the server keeps serving after an error
    out = client.predict(tab.DEFAULT_PAIR, "a2b", handle_file(str(path)), 100, 50, 50,
                         api_name="/cyclegan_translate")
    assert "->" in out[4]


@pytest.mark.skipif(not tab.faces_tab.AVAILABLE, reason="the Face arithmetic tab's DCGAN is not shipped")
def test_the_latent_way_moves_a_generated_face_towards_the_target():
    from models.cyclegan import latent_edit
    from train.cyclegan import PAIRS

    faces = tab.faces_tab.pipeline()
    rules = PAIRS["hair"].rules
    to_black = latent_edit(faces, rules, "a2b")            # blond -> black: less blond
    to_blond = latent_edit(faces, rules, "b2a")
    before = faces.read(torch.from_numpy(to_black.before[None]).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert before["Blond_Hair"] > 0.5 > to_black.reading["Blond_Hair"]
    assert to_blond.reading["Blond_Hair"] > 0.5
    assert latent_edit(faces, [{"Black_Hair": 1}, {"Black_Hair": -1}], "a2b") is None   # no direction
