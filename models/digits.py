"""MNIST and Fashion-MNIST for the studio: where a server finds the images for live training, a
small classifier trained by the project, and the quality measures the field uses for generators
of 28x28 digits (a Fréchet distance on the classifier's features, the classes covered, the
classifier's confidence). No Gradio."""
from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from .hub import REPO_ROOT, WEIGHTS_DIR, from_pretrained

SETS = {"mnist": "mnist", "fashion": "fashion-mnist"}
TITLES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                "Sneaker", "Bag", "Ankle boot"),
}
COVERED_SHARE = 0.01          # a class is covered when at least 1% of the samples are read as it
SURE = 0.9                    # a sample is "recognisable" when the classifier gives it >= 90%
EMERGED_SHARE, EMERGED_CLASSES = 0.5, 9    # "digits have emerged": half recognisable, 9+ classes


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style idx file (gzipped): uint8 images (N, H, W) or labels (N,)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = int.from_bytes(data[:4], "big") & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def server_folders(name: str) -> list[Path]:
    """Where a server may hold a set's idx files (the repository never ships them):
    ``$GDL_DIGITS/<set>``, the ignored ``data/digits/<set>`` (``make digits``), and Debian's
    ``dataset-fashion-mnist`` package for Fashion-MNIST."""
    folders = []
    if os.environ.get("GDL_DIGITS"):
        folders.append(Path(os.environ["GDL_DIGITS"]) / SETS[name])
    folders.append(REPO_ROOT / "data" / "digits" / SETS[name])
    if name == "fashion":
        folders.append(Path("/usr/share/datasets/fashion-mnist"))
    return folders


def find_set(name: str, folders: list[Path] | None = None) -> Path | None:
    for folder in folders or server_folders(name):
        if (folder / "train-images-idx3-ubyte.gz").is_file():
            return folder
    return None


def read_set(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    return (read_idx(folder / f"{prefix}-images-idx3-ubyte.gz"),
            read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz"))


# ------------------------------------------------------------------ the classifier


@dataclass
class ClassifierConfig:
    dataset: str = "mnist"
    channels: int = 32
    features: int = 128


class DigitClassifier(nn.Module):
    """Two 3x3 conv blocks and a 128-unit layer: the features the Fréchet distance compares
    (pre-activation)."""

    model_type = "digit-classifier"
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * c * 49, config.features))
        # the features are taken before the ReLU: after it, everything that is not a digit maps
        # to the same all-zero point and the distance stops telling bad from worse
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(config.features, 10))
        # the real test set's feature statistics, shipped so no server needs the data to measure
        self.register_buffer("real_mean", torch.zeros(config.features, dtype=torch.float64))
        self.register_buffer("real_cov", torch.zeros(config.features, config.features,
                                                     dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of images in [-1, 1], (N, 1, 28, 28)."""
        return self.head(self.body(x))

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """(features float64 (N, 128), class probabilities (N, 10)) of images in [-1, 1]."""
        self.eval()
        feats, probs = [], []
        for i in range(0, len(images), batch):
            f = self.body(images[i:i + batch].float())
            feats.append(f.double().numpy())
            probs.append(F.softmax(self.head(f), -1).numpy())
        return np.concatenate(feats), np.concatenate(probs)


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1], the scale the GANs write."""
    return torch.tensor(np.asarray(images)).float().div(127.5).sub(1).unsqueeze(1)


def load_classifier(dataset: str = "mnist", folder: str | os.PathLike | None = None) -> DigitClassifier:
    """The shipped judge of a data set, or the one in ``folder``."""
    return from_pretrained(DigitClassifier, folder or WEIGHTS_DIR / f"digit-classifier-{dataset}")


def classifier_available(dataset: str) -> bool:
    return (WEIGHTS_DIR / f"digit-classifier-{dataset}" / "model.safetensors").is_file()


# ------------------------------------------------------------------ measures


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    diff = mu1 - mu2
    with warnings.catch_warnings():      # dead ReLU features make a singular covariance: fine
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(mu1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@dataclass
class Quality:
    """How a set of samples reads to the classifier, against the real test set."""
    samples: int
    frechet: float            # on the classifier's features, against the test set's statistics
    classes_covered: int      # classes read for at least COVERED_SHARE of the samples
    confidence: float         # mean top-class probability
    recognisable: float       # share read with at least SURE probability
    class_shares: list        # share of samples per class

    def summary(self, floor: float | None = None) -> str:
        fd = f"Fréchet distance {self.frechet:.1f}"
        if floor is not None:
            fd += f" (real images: {floor:.1f})"
        return (f"{fd}; {self.classes_covered}/10 classes covered; confidence "
                f"{self.confidence:.0%}; {self.recognisable:.0%} recognisable")


def emerged(recognisable: float, classes_covered: int) -> bool:
    """Whether a generator draws digits now: half its samples recognisable, and of at least 9
    of the 10 classes (a collapsed generator drawing clear 1s has not learnt digits)."""
    return recognisable >= EMERGED_SHARE and classes_covered >= EMERGED_CLASSES


def quality(classifier: DigitClassifier, images: torch.Tensor) -> Quality:
    """The measures of images in [-1, 1], (N, 1, 28, 28)."""
    feats, probs = classifier.read(images)
    mu, cov = statistics(feats)
    top = probs.max(1)
    shares = np.bincount(probs.argmax(1), minlength=10) / len(probs)
    return Quality(samples=len(images),
                   frechet=frechet_distance(mu, cov, classifier.real_mean.numpy(),
                                            classifier.real_cov.numpy()),
                   classes_covered=int((shares >= COVERED_SHARE).sum()),
                   confidence=float(top.mean()), recognisable=float((top >= SURE).mean()),
                   class_shares=[round(float(s), 4) for s in shares])

