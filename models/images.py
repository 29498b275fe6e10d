"""Image helpers shared by the techniques: the one image-grid helper (many small images as one
picture, for the tabs and the cards) and any picture laid out like an MNIST digit."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


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
         gap: int = 0, labels: Sequence | None = None, fill: int = 255,
         label_size: int = 18) -> np.ndarray:
    """Images (N, H, W) grey or (N, H, W, 3) RGB (uint8, or floats without labels) side by
    side, ``cols`` to a row, each
    scaled to ``cell`` px (:func:`enlarge`), ``gap`` px of ``fill`` between them; with
    ``labels``, each one's label (``label_size`` px) in a white box in its top-left corner."""
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
    font = ImageFont.load_default(size=label_size)
    for k, label in enumerate(labels):
        r, c = divmod(k, cols)
        x, y, text = c * (w + gap), r * (h + gap), str(label)
        left, top, right, bottom = draw.textbbox((x + 3, y + 1), text, font=font)
        draw.rectangle((x, y, right + 3, bottom + 3), fill="white")
        draw.text((x + 3, y + 1), text, font=font, fill=30 if canvas.ndim == 2 else (30, 30, 30))
    return np.asarray(picture)


def to_mnist_style(gray: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Any grey image (H, W) uint8 -> a 28x28 float image in [0, 1] laid out like MNIST:
    light ink on black, the ink's bounding box scaled to fit 20x20, centred by its centre of
    mass.  Returns the image and what was done (for the user)."""
    notes = []
    g = gray.astype(np.float32)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 127:
        g = 255.0 - g
        notes.append("inverted (dark ink on a light background)")
    g = np.where(g > 0.1 * g.max(), g, 0.0) if g.max() > 0 else g
    ys, xs = np.nonzero(g > 0.25 * (g.max() or 1))
    if len(ys) == 0:
        raise ValueError("the picture is empty: draw or upload something with visible strokes")
    crop = g[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.LANCZOS),
                       np.float32)
    out = np.zeros((28, 28), np.float32)
    total = small.sum() or 1.0
    cy = (small.sum(1) * np.arange(nh)).sum() / total
    cx = (small.sum(0) * np.arange(nw)).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - nh))
    left = int(np.clip(round(14 - cx), 0, 28 - nw))
    out[top:top + nh, left:left + nw] = small
    if (h, w) != (28, 28):
        notes.append(f"scaled from {gray.shape[1]}x{gray.shape[0]} to fit 20x20 inside 28x28")
    return np.clip(out / max(out.max(), 1e-6), 0, 1), notes
