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


@pytest.fixture(scope="session")
def fast_vs_plain():
    """Teacher-force ``codes`` after a primer through the compiled loop (roll and source starting
    at the first new sample) and through the convolutional forward: (compiled, plain) logits of
    each next sample, rows aligned. ``fill``: the conditioning's value before the roll (a mel's
silence). The WaveNet, piano and vocoder tests share it."""
    from models.wavenet import FastWaveNet, prepare_primer

    def run(model, codes: np.ndarray, roll: np.ndarray, src: np.ndarray | None = None,
            primer: np.ndarray | None = None, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        c, n = model.config, len(codes)
        fast = FastWaveNet(model)
        fast.set_roll(roll, src)
        full = prepare_primer(primer, c)
        P = len(full)
        assert P % c.cond_hop == 0                     # the plain roll below needs whole frames
        fast.prime(full)
        compiled = fast.feed(np.concatenate([[fast.state[2]], codes[:-1]]), record=True)
        before = np.full((len(roll), P // c.cond_hop), fill, np.float32)
        plain_roll = np.pad(np.concatenate([before, roll], 1), ((0, 0), (c.cond_margin, c.cond_margin)),
                            constant_values=fill)
        inputs = [torch.as_tensor(np.concatenate([full, codes]))[None], torch.from_numpy(plain_roll)[None]]
        if src is not None:
            inputs.append(torch.from_numpy(np.concatenate(
                [np.zeros((len(src), P), np.float32), src[:, :n]], 1))[None])
        with torch.inference_mode():
            plain = model(*inputs)[0].t().numpy()
        return compiled, plain[P - 1:P - 1 + n]

    return run
