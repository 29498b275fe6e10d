"""Speed goals of every tab, measured on this machine: `python -m benchmarks.run [section ...]`.

Prints one Markdown table. Sections: app, faces, latent, style, deepdream, text, wavenet (each tab issue adds its own).
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time

import torch

SECTIONS = ["app", "faces", "latent", "style", "deepdream", "text", "wavenet"]


def main(argv: list[str]) -> int:
    wanted = argv or SECTIONS
    rows = []
    for name in wanted:
        t = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        rows += module.run()
        print(f"[{name} done in {time.perf_counter() - t:.0f} s]", file=sys.stderr)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| section | measure | value | note |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
