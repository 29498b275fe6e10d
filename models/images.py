"""The one image-grid helper: many small images as one picture, for the tabs and the cards."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """A square image scaled to ``size`` px, nearest neighbour (pixels stay honest when
    projected): whole multiples repeat each pixel, other sizes go through PIL."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    if size % h == 0 and size % w == 0:
        return image.repeat(size // h, axis=0).repeat(size // w, axis=1)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST))


def grid(images: np.ndarray | Sequence[np.ndarray], cols: int, cell: int | None = None,
         gap: int = 0, labels: Sequence | None = None, fill: int = 255) -> np.ndarray:
    """Images (N, H, W) grey or (N, H, W, 3) RGB (uint8, or floats without labels) side by
    side, ``cols`` to a row, each
    scaled to ``cell`` px (:func:`enlarge`), ``gap`` px of ``fill`` between them; with
    ``labels``, each one's label in a white box in its top-left corner."""
    images = [np.asarray(im) for im in images]
    if cell is not None:
        images = [enlarge(im, cell) for im in images]
    h, w = images[0].shape[:2]
    cols = max(1, min(cols, len(images)))
    rows = -(-len(images) // cols)
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *images[0].shape[2:]),
                     fill, images[0].dtype)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = im
    if labels is None:
        return canvas
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for k, label in enumerate(labels):
        r, c = divmod(k, cols)
        x, y, text = c * (w + gap), r * (h + gap), str(label)
        draw.rectangle((x, y, x + 7 * len(text) + 4, y + 13), fill="white")
        draw.text((x + 2, y + 1), text, fill=30 if canvas.ndim == 2 else (30, 30, 30))
    return np.asarray(picture)
