"""The studio's checkpoint convention, one loader for a local folder or a Hugging Face repo id.

A checkpoint is a folder ``weights/<name>/`` holding

* ``config.json``        -- the model's dataclass config plus ``"model_type"``,
* ``model.safetensors``  -- the weights (fp16 is fine; loaded back to the module's dtype),
* ``README.md``          -- the model card: data, training command, steps, metrics, samples.

``from_pretrained(cls, "weights/vae-mnist")`` and ``from_pretrained(cls, "user/vae-mnist")``
behave the same: a hub id goes through ``huggingface_hub.snapshot_download`` (which honours
``HF_HUB_OFFLINE``).  Nothing is ever unpickled.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
REPO_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO_ROOT / "weights"


class Pretrained(Protocol):
    """A model class usable with this module: built from a dataclass config."""

    config_class: Any
    model_type: str

    def __init__(self, config: Any) -> None: ...


M = TypeVar("M", bound=nn.Module)


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local checkpoint folder (absolute, relative, or a name under ``weights/``) or a hub id."""
    for candidate in (Path(name_or_path), WEIGHTS_DIR / str(name_or_path)):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    repo_id = str(name_or_path)
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/")):
        raise FileNotFoundError(f"no checkpoint folder {name_or_path!r} (needs {CONFIG_NAME} and "
                                f"{WEIGHTS_NAME}) and it is not a hub repo id")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))


def read_config(folder: Path, config_class: Any, model_type: str):
    raw = json.loads((folder / CONFIG_NAME).read_text())
    found = raw.pop("model_type", None)
    if found != model_type:
        raise ValueError(f"{folder} holds a {found!r} checkpoint, expected {model_type!r}")
    raw.pop("training", None)  # free-form training record, kept for the card
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(raw) - fields
    if unknown:
        raise ValueError(f"{folder / CONFIG_NAME}: unknown config keys {sorted(unknown)}")
    return config_class(**raw)


def from_pretrained(cls: type[M], name_or_path: str | os.PathLike,
                    device: torch.device | str = "cpu") -> M:
    folder = resolve(name_or_path)
    config = read_config(folder, cls.config_class, cls.model_type)
    model = cls(config)
    state = load_file(str(folder / WEIGHTS_NAME))
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def save_pretrained(model: nn.Module, folder: str | os.PathLike, *, half: bool = True,
                    training: dict | None = None) -> Path:
    """Write config.json and model.safetensors (fp16 floats unless ``half=False``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": model.model_type, **dataclasses.asdict(model.config)}
    if training:
        config["training"] = training
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
             for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME))
    return folder
