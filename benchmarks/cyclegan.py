"""CycleGAN translation: one face one way (batch 1), a batch of 16 there and back, and the tab's
whole request (decode, crop, both ways, the classifier's reading). Goal: well under a second."""
from __future__ import annotations

import tempfile

import numpy as np
import torch
from PIL import Image

from benchmarks import Row, best_of, row
from models.cyclegan import CycleGANPipeline, to_tensor
from models.hub import WEIGHTS_DIR
from tabs import cyclegan as tab


def run() -> list[Row]:
    rows = []
    for pair in tab.PAIR_NAMES:
        folder = tab.PAIRS[pair][1]
        pipe = CycleGANPipeline.from_pretrained(str(WEIGHTS_DIR / folder))
        faces = tab.gallery_faces(pair)
        with torch.inference_mode():
            one = best_of(lambda: pipe.model.a2b(to_tensor(faces[:1])))
        batch = best_of(lambda: pipe(np.concatenate([faces, faces])[:16], "a2b"))
        path = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
        Image.fromarray(np.kron(faces[0], np.ones((8, 8, 1), np.uint8))).save(path)   # a 512 px photo
        request = best_of(lambda: tab.translate(pair, "a2b", path, 100, 50, 50))
        rows += [
            row("cyclegan", f"{folder}: one face, one way", f"{one * 1000:.0f} ms",
                "goal: well under a second"),
            row("cyclegan", f"{folder}: 16 faces there and back", f"{batch * 1000 / 16:.0f} ms/face",
                f"{batch:.2f} s for the batch"),
            row("cyclegan", f"{folder}: the tab's request (512 px upload)", f"{request * 1000:.0f} ms",
                "decode, crop, both ways, the classifier's reading"),
        ]
    return rows
