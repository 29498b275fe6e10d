"""What every trainer shares: the run folder (resumable state and progress log) and a time budget.

A run folder holds ``last.pt`` (model, optimiser and counters; tensors and plain values only,
read back with ``weights_only=True``) and ``log.jsonl`` (one JSON record per evaluation).
Rerunning a trainer with the same folder resumes it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch


class RunDir:
    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder)
        self.path.mkdir(parents=True, exist_ok=True)
        self.state_path = self.path / "last.pt"
        self.log_path = self.path / "log.jsonl"

    def resume(self) -> dict | None:
        """The saved state, or None for a fresh run."""
        if not self.state_path.exists():
            return None
        return torch.load(self.state_path, weights_only=True)

    def save(self, **state) -> None:
        """Replace last.pt atomically: a run killed while saving keeps its previous state."""
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    def log(self, record: dict) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


class Budget:
    """``--minutes``: a wall-clock budget after which a trainer saves and stops (0 = none)."""

    def __init__(self, minutes: float = 0):
        self.minutes, self.start = minutes, time.time()

    def spent(self) -> bool:
        return bool(self.minutes) and time.time() - self.start > self.minutes * 60

    def announce(self) -> None:
        print(f"stopping after {self.minutes:g} minutes; rerun to resume", flush=True)
