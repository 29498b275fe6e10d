"""Model cards: a checkpoint folder's README.md, rendered from its config.json and metrics.json
through the Markdown template of its model type (``train/cards/<model_type>.md``, Jinja2).

    python -m train.card weights/vae-mnist        # (re)write one card
    python -m train.card --check weights/*/       # exit 1 if a card is not its render

A template sees ``config`` (with its ``training`` record), ``metrics`` (what the trainer's
``measure`` wrote), ``weights`` (read from the safetensors header: parameters, dtype, MB) and
``name`` (the folder's), and ``chain`` (a record with the ones it links to, e.g. a training's
earlier phases); a missing value is an error, never an empty cell.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import jinja2

from models.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME

TEMPLATES = Path(__file__).with_name("cards")
METRICS_NAME = "metrics.json"
DTYPES = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp64"}


def weights_summary(path: Path) -> dict:
    """Parameters (floating-point tensors), their dtype and the file's size, from the header."""
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    floats = [t for k, t in header.items() if k != "__metadata__" and t["dtype"] in DTYPES]
    count = 0
    for t in floats:
        n = 1
        for d in t["shape"]:
            n *= d
        count += n
    dtypes = sorted({DTYPES[t["dtype"]] for t in floats})
    return dict(parameters=count, dtype="/".join(dtypes), megabytes=path.stat().st_size / 1e6)


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters.update(
        fmt=lambda value, spec: format(defined(value), spec),
        pct=lambda value, digits=0: format(defined(value), f".{digits}%"),
        thousands=lambda value: format(defined(value), ","),
        device=lambda value: {"cpu": "CPU", "cuda": "CUDA GPU"}.get(defined(value), value),
    )
    env.globals["chain"] = chain
    return env


def defined(value):
    """The value, or the template's missing-value error (what StrictUndefined raises when it is
    printed) instead of a TypeError from ``format``."""
    if isinstance(value, jinja2.Undefined):
        str(value)
    return value


def chain(record: dict, key: str) -> list[dict]:
    """A record and the ones it links to by ``key`` (a training phase and the phases before
    it), oldest first."""
    out = []
    while record:
        out.append(record)
        record = record.get(key) or {}
    return out[::-1]


def render(folder: str | Path, templates: Path = TEMPLATES) -> str:
    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    metrics = json.loads((folder / METRICS_NAME).read_text())
    template = environment(templates).get_template(f"{config['model_type']}.md")
    return template.render(config=config, training=config.get("training", {}), metrics=metrics,
                           weights=weights_summary(folder / WEIGHTS_NAME), name=folder.name)


def write(folder: str | Path) -> Path:
    path = Path(folder) / CARD_NAME
    path.write_text(render(folder))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--check", action="store_true", help="compare, do not write")
    args = p.parse_args(argv)
    stale = []
    for folder in args.folders:
        if args.check:
            if (folder / CARD_NAME).read_text() != render(folder):
                stale.append(str(folder))
        else:
            print(write(folder))
    if stale:
        print("cards that are not their render: " + ", ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
