"""The checkpoint convention: folder round trip, strictness, hub ids offline, no pickles."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from models import hub


@dataclass
class TinyConfig:
    width: int = 8
    depth: int = 2


class Tiny(nn.Module):
    config_class = TinyConfig
    model_type = "tiny"

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.layers = nn.Sequential(*[nn.Linear(config.width, config.width) for _ in range(config.depth)])

    def forward(self, x):
        return self.layers(x)


def test_round_trip_keeps_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = Tiny(TinyConfig(width=6, depth=3)).eval()
    hub.save_pretrained(model, tmp_path / "tiny", training={"steps": 10})
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["training"] == {"steps": 10}
    loaded = hub.from_pretrained(Tiny, tmp_path / "tiny")
    assert loaded.config == TinyConfig(width=6, depth=3)
    assert loaded.layers[0].weight.dtype == torch.float32  # stored fp16, loaded back as fp32
    x = torch.randn(4, 6)
    torch.testing.assert_close(loaded(x), model(x), atol=1e-2, rtol=1e-2)


def test_wrong_type_and_unknown_keys_are_refused(tmp_path):
    hub.save_pretrained(Tiny(TinyConfig()), tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())

    class Other(Tiny):
        model_type = "other"

    with pytest.raises(ValueError, match="expected 'other'"):
        hub.from_pretrained(Other, tmp_path / "t")
    cfg["surprise"] = 1
    (tmp_path / "t" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="surprise"):
        hub.from_pretrained(Tiny, tmp_path / "t")


def test_missing_weights_fail_strictly(tmp_path):
    hub.save_pretrained(Tiny(TinyConfig(depth=1)), tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    cfg["depth"] = 2
    (tmp_path / "t" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="Missing key"):
        hub.from_pretrained(Tiny, tmp_path / "t")


def test_hub_ids_honour_offline_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(Exception) as err:
        hub.from_pretrained(Tiny, "someone/tiny-model")
    assert "offline" in str(err.value).lower() or "cache" in str(err.value).lower()


def test_not_a_checkpoint():
    with pytest.raises(FileNotFoundError):
        hub.resolve("./no/such/folder")
