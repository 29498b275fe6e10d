"""What every trainer shares: the run folder (resumable state and progress log), a time budget,
an exponential moving average of the weights, and the record of where training ran.

A run folder holds ``last.pt`` (model, optimiser and counters; tensors and plain values only,
read back with ``weights_only=True``) and ``log.jsonl`` (one JSON record per evaluation).
Rerunning a trainer with the same folder resumes it.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from models.runtime import device as default_device


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
        # loaded to the CPU: a run started on a GPU resumes on a machine without one and back
        # (load_state_dict then copies each tensor to its parameter's device)
        return torch.load(self.state_path, weights_only=True, map_location="cpu")

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


def pick_device(name: str = "auto") -> torch.device:
    """``--device``: ``auto`` is the app's choice (``models.runtime.device``: the GPU where one is
    present, else the CPU, ``GDL_DEVICE`` overriding); ``cuda`` without a GPU is an error here,
    before any data is loaded, not a crash in the first step. On a GPU it also allows TF32
    matrix products and cuDNN's autotuning (fixed shapes: each trainer's are)."""
    device = default_device() if name == "auto" else torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: no CUDA GPU on this machine")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device


def hardware(device: torch.device | str) -> str:
    """What a run trained on, for its card: the GPU's name, or the CPU's model and core count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def command_line(module: str, argv: list[str] | None = None) -> str:
    """The command that ran (or resumes) a training: ``python -m <module> <its arguments>``."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", "-m", module, *map(shlex.quote, args)])


def hours(records: list[dict]) -> float:
    """Training time of a run folder's log, from each record's ``seconds``."""
    return sum(r.get("seconds", 0.0) for r in records) / 3600


def parse_or_measure(parser, argv: list[str], measure) -> object | None:
    """Parse a trainer's arguments, with ``--measure FOLDER``: that measures an exported model
    (``measure(folder)`` writes metrics.json and figures), prints the metrics and returns None;
    otherwise the arguments of a training run, which needs ``--out``."""
    parser.add_argument("--measure", type=Path, metavar="FOLDER",
                        help="measure an exported model: metrics.json and figures")
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure), indent=2))
        return None
    if not args.out:
        parser.error("--out is required to train")
    return args


def add_device_flag(parser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (a CUDA GPU when there is one), cpu, cuda or cuda:N")


class Budget:
    """``--minutes``: a wall-clock budget after which a trainer saves and stops (0 = none)."""

    def __init__(self, minutes: float = 0):
        self.minutes, self.start = minutes, time.time()

    def spent(self) -> bool:
        return bool(self.minutes) and time.time() - self.start > self.minutes * 60

    def announce(self) -> None:
        print(f"stopping after {self.minutes:g} minutes; rerun to resume", flush=True)


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging), kept in a frozen copy
    (``.module``) that a trainer evaluates and exports.  Each ``update`` moves the copy a share
    ``1 - d`` towards the model, with ``d = decay``, or with ``warmup`` ``d = min(decay,
    (1 + step) / (10 + step))``: a short memory early in training, so the average does not drag
    the random initial weights along (TensorFlow's ``ExponentialMovingAverage(num_updates)``).
    Buffers (none in the studio's trained models so far) are copied, not averaged.

    ``state_dict()`` is the copy's own state dict; ``load_state_dict`` also reads the format of
    ``torch.optim.swa_utils.AveragedModel`` (``module.``-prefixed keys and ``n_averaged``), which
    the VAE trainer's run folders held before this class."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError("decay must be in [0, 1)")
        self.decay, self.warmup = decay, warmup
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int = 0) -> None:
        d = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        for pa, pm in zip(self.module.parameters(), model.parameters()):
            pa.lerp_(pm.detach(), 1 - d)
        for ba, bm in zip(self.module.buffers(), model.buffers()):
            ba.copy_(bm)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if "n_averaged" in state:  # an AveragedModel's state
            state = {k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"}
        self.module.load_state_dict(state)
