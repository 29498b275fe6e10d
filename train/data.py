"""Readers for the training data in ../shared/data (never copied into the repository)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """``$GDL_DATA`` or the project's ``../shared/data``."""
    return Path(os.environ.get("GDL_DATA") or REPO.parent / "shared" / "data")


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style idx file (gzipped): uint8 images (N, H, W) or labels (N,)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


DIGIT_SETS = {"mnist": "mnist", "fashion": "fashion-mnist"}
CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                "Sneaker", "Bag", "Ankle boot"),
}


def load_digits(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of MNIST or Fashion-MNIST, train or test."""
    folder = data_root() / "digits" / DIGIT_SETS[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: the training data lives in the project's "
                                "../shared/data (set GDL_DATA to point elsewhere)")
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels
