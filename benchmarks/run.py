"""Speed goals of every tab, measured on this machine: `python -m benchmarks.run [section ...]`.

Prints one Markdown table; each row says how many torch threads it ran on. Sections: app and one
per technique (the registry's ids).
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks import print_table
from models.runtime import bf16_cpu

SECTIONS = ["app", "faces", "vae", "pixelcnn", "ganlab", "cyclegan", "style", "deepdream", "charlm", "wavenet",
            "pianowave", "vocoder"]
# on request only (minutes): ``python -m benchmarks.run load``, or benchmarks/load.py's options


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
    threads = torch.get_num_threads()
    rows = []
    for name in wanted:
        t = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        rows += module.run()
        if torch.get_num_threads() != threads:
            raise RuntimeError(f"benchmarks.{name} left torch on {torch.get_num_threads()} threads")
        print(f"[{name} done in {time.perf_counter() - t:.0f} s]", file=sys.stderr)
    bf16 = "native" if bf16_cpu() else "not native, so the rows' bf16 paths run in fp32"
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, bf16 convolutions {bf16}, "
          f"torch {torch.__version__} (default {threads} threads)\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
