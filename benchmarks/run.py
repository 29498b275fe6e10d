"""Speed goals of every tab, measured on this machine: `python -m benchmarks.run [section ...]`.

Prints one Markdown table. Sections: app, faces, latent, style, deepdream, text, wavenet (each tab issue adds its own).
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch

from models.runtime import bf16_cpu

SECTIONS = ["app", "faces", "latent", "style", "deepdream", "text", "wavenet"]


def cpu_name() -> str:
    """The CPU's model name where Linux tells it (timings differ a lot between CPU kinds)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str]) -> int:
    wanted = argv or SECTIONS
    threads = torch.get_num_threads()   # before a section changes it (wavenet runs on one)
    rows = []
    for name in wanted:
        t = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        rows += module.run()
        print(f"[{name} done in {time.perf_counter() - t:.0f} s]", file=sys.stderr)
    bf16 = "native" if bf16_cpu() else "not native, so the rows' bf16 paths run in fp32"
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, bf16 convolutions {bf16}, "
          f"torch {torch.__version__}, {threads} threads unless a row says otherwise\n")
    print("| section | measure | value | note |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
