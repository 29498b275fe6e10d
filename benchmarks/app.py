"""App cold start and memory (in a fresh process)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import Row, free_port, row


def run() -> list[Row]:
    script = Path(__file__).with_name("startup.py")
    out = subprocess.run([sys.executable, str(script), str(free_port())], capture_output=True,
                         text=True, check=True).stdout
    r = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    return [
        row("app", "import app (python start to Blocks built)", f"{r['import_s']:.2f} s", ""),
        row("app", "cold start: python start to first request served", f"{r['first_request_s']:.2f} s",
         "goal: a few seconds; models load lazily"),
        row("app", "load every model (" + ", ".join(r["models"]) + ")", f"{r['load_models_s']:.2f} s", ""),
        row("app", "resident memory, idle", f"{r['rss_idle_mb']:.0f} MB", ""),
        row("app", "resident memory, every model loaded", f"{r['rss_loaded_mb']:.0f} MB", ""),
    ]
