"""Shared fixtures: real photos (scikit-image's bundled ones), the backbones, the live app."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ARTIFACTS = ROOT / "artifacts"


def skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def skimage_path(name: str) -> str:
    import skimage

    return str(Path(skimage.__file__).parent / "data" / name)


def as_tensor(image: np.ndarray, size: int | None = None) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    if size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


@pytest.fixture(scope="session")
def photos() -> dict[str, torch.Tensor]:
    return {name: as_tensor(skimage_photo(name), 299)
            for name in ("astronaut", "chelsea", "coffee", "rocket")}


@pytest.fixture(scope="session")
def inception():
    from models.backbones import load_inception_v3

    return load_inception_v3("pool")


@pytest.fixture(scope="session")
def vgg():
    from models.backbones import load_vgg19

    return load_vgg19("relu5_1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """The real app, launched once on localhost for the client and browser tests."""
    import app

    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                    quiet=True, **app.LAUNCH_KWARGS)
    yield f"http://127.0.0.1:{port}/"
    app.demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)
