"""Model cards: rendered from config.json + metrics.json by one small renderer (train/card.py);
every shipped card is exactly its render."""
from __future__ import annotations

import json

import jinja2
import pytest
import torch
from safetensors.torch import save_file

from models.hub import WEIGHTS_DIR
from train.card import chain, main, render, weights_summary

SHIPPED = sorted(p.parent for p in WEIGHTS_DIR.glob("*/config.json"))


@pytest.fixture
def folder(tmp_path):
    """A checkpoint folder of a made-up model type, with its template beside it."""
    templates = tmp_path / "cards"
    templates.mkdir()
    (templates / "toy.md").write_text(
        "# {{ config.title }} ({{ name }})\n"
        "{{ weights.parameters | thousands }} parameters in {{ weights.dtype }}; "
        "accuracy {{ metrics.accuracy | pct(1) }}, loss {{ metrics.loss | fmt('.3f') }}\n"
        "{% for phase in chain(training, 'previous') %}{{ phase.epochs }};{% endfor %}.\n")
    ckpt = tmp_path / "toy-1"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(dict(
        model_type="toy", title="A toy", training=dict(epochs=3, previous=dict(epochs=5)))))
    (ckpt / "metrics.json").write_text(json.dumps(dict(accuracy=0.91234, loss=0.123456)))
    save_file({"w": torch.zeros(100, 12, dtype=torch.float16), "b": torch.zeros(12, dtype=torch.float16),
               "steps": torch.zeros(3, dtype=torch.int64)}, str(ckpt / "model.safetensors"))
    return ckpt, templates


def test_render_fills_the_template_from_config_and_metrics(folder):
    ckpt, templates = folder
    card = render(ckpt, templates)
    assert card == ("# A toy (toy-1)\n1,212 parameters in fp16; accuracy 91.2%, loss 0.123\n"
                    "5;3;.\n")   # the older phase first; integer tensors are not parameters


def test_a_value_the_card_needs_but_the_metrics_lack_is_an_error(folder):
    ckpt, templates = folder
    (ckpt / "metrics.json").write_text(json.dumps(dict(accuracy=0.9)))
    with pytest.raises(jinja2.UndefinedError, match="loss"):
        render(ckpt, templates)


def test_weights_summary_reads_the_header_only(folder):
    ckpt, _ = folder
    summary = weights_summary(ckpt / "model.safetensors")
    assert summary["parameters"] == 1212 and summary["dtype"] == "fp16"
    assert summary["megabytes"] == pytest.approx((ckpt / "model.safetensors").stat().st_size / 1e6)


def test_chain_lists_the_phases_oldest_first():
    assert [p["n"] for p in chain(dict(n=3, previous=dict(n=2, previous=dict(n=1))), "previous")] == [1, 2, 3]
    assert chain({}, "previous") == []


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_card_is_its_render(ckpt):
    """Cards are never edited by hand: each README.md is what its config.json and metrics.json
    render to (after measuring, `python -m train.card weights/<name>` rewrites it)."""
    assert (ckpt / "README.md").read_text() == render(ckpt)
    for f in ckpt.rglob("*"):
        assert f.stat().st_size < 10_000_000, f


def test_check_mode_reports_a_stale_card(folder, tmp_path, monkeypatch, capsys):
    import train.card as card

    ckpt, templates = folder
    monkeypatch.setattr(card, "TEMPLATES", templates)
    monkeypatch.setattr(card, "render", lambda f, t=templates: render(f, t))
    assert main([str(ckpt)]) == 0 and (ckpt / "README.md").is_file()
    assert main(["--check", str(ckpt)]) == 0
    (ckpt / "README.md").write_text("typed by hand\n")
    assert main(["--check", str(ckpt)]) == 1 and "toy-1" in capsys.readouterr().err
