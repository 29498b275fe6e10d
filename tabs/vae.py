"""Latent grid explorer tab: 2-D VAEs on MNIST and Fashion-MNIST, explored like a map; the
models are models/vae.py."""
from __future__ import annotations

import math

import gradio as gr
import numpy as np

from models.hub import WEIGHTS_DIR
from models.runtime import shared_result
from models.images import enlarge, grid as image_grid
from models.vae import LATENTS, LatentExplorer, grid_points, line_points

from .common import (DigitSketchpad, ImageInput, Lazy, TabContext, Technique, blank_canvas,
                     drawing_or_upload, number)

TECHNIQUE = Technique("vae", "Latent grid", "images",
                      "A VAE's two-number code for every digit, explored like a map.")
CHECKPOINTS = {"MNIST digits": "vae-mnist", "Fashion-MNIST": "vae-fashion"}
AVAILABLE = all((WEIGHTS_DIR / name / LATENTS).is_file() for name in CHECKPOINTS.values())
SPACINGS = {"inverse normal CDF (chapter)": "cdf", "linear": "linear"}
GRID_PX = 560        # the mosaic is drawn at least this big, cells in whole pixels
Z_LIMIT = 10.0       # the prior is N(0, I): beyond 10 sigma nothing was ever trained


PIPELINES = {label: Lazy(f"the {label} VAE", lambda report, name=name: LatentExplorer.from_pretrained(name),
                         warm=True)
             for label, name in CHECKPOINTS.items()}

EXPLAIN = """
**What you see.** The VAE squeezes every 28x28 image into just two numbers, a point *z* on this
map. The grid decodes an *n x n* window of that plane; the map shows where the real test images
land, coloured by class. Regions decode to the class that lives there, and the borders between
classes morph smoothly, because the decoder has to make sense of every point.

* **Spacing**: *inverse normal CDF* (the chapter's choice) puts more cells near the centre, where
  the prior N(0, I) puts more mass; *linear* spaces them evenly.
* **Zoom and pan** move the window (its centre and span, in units of z). Click a grid cell to see
  it large with its *z*; **Recentre** moves the window there. Clicking the map recentres too.
* **Draw or upload** an image to encode it: it is converted to MNIST's layout (light strokes on
  black, centred in 28x28) and its point appears on the map.
"""


def explorer(dataset: str, progress: gr.Progress | None = None) -> LatentExplorer:
    if dataset not in PIPELINES:
        raise gr.Error(f"Unknown data set {dataset!r}; choose {' or '.join(PIPELINES)}.")
    return PIPELINES[dataset].get(progress)


def window_args(n, cx, cy, span, spacing):
    n = number(n, "Grid size n", 2, 30, integer=True)
    cx = number(cx, "Centre z[0]", -Z_LIMIT, Z_LIMIT)
    cy = number(cy, "Centre z[1]", -Z_LIMIT, Z_LIMIT)
    span = number(span, "Span", 1e-3, 2 * Z_LIMIT)
    if spacing not in SPACINGS:
        raise gr.Error(f"Spacing must be one of {list(SPACINGS)}.")
    return n, cx, cy, span, SPACINGS[spacing]


def z_args(z0, z1):
    return number(z0, "z[0]", -Z_LIMIT, Z_LIMIT), number(z1, "z[1]", -Z_LIMIT, Z_LIMIT)


def cell_px(n: int) -> int:
    return 28 * max(1, math.ceil(GRID_PX / (28 * n)))


def big(image28: np.ndarray, scale: int = 10) -> np.ndarray:
    return enlarge(image28, 28 * scale)


def draw_map(ex: LatentExplorer, cx, cy, span, marks: dict | None) -> np.ndarray:
    marks = marks or {}
    points = [(*marks[k], label) for k, label in (("selected", "clicked"), ("encoded", "yours"))
              if marks.get(k)]
    return ex.map.draw(window=(cx - span / 2, cy - span / 2, cx + span / 2, cy + span / 2),
                       points=points, line=marks.get("line"))


@shared_result(maxsize=32)
def window_mosaic(dataset, n, cx, cy, span, mode) -> np.ndarray:
    """The decoded window, computed once however many visitors look at it (a classroom opens
    the tab on the same window)."""
    return image_grid(explorer(dataset).grid((cx, cy), span, n, mode), n, cell=cell_px(n))


def render(dataset, n, cx, cy, span, spacing, marks=None, progress=gr.Progress()):
    """Decode the n x n window (one batched call) and draw the map."""
    n, cx, cy, span, mode = window_args(n, cx, cy, span, spacing)
    ex = explorer(dataset, progress)
    mosaic = window_mosaic(dataset, n, cx, cy, span, mode)
    caption = (f"{n}x{n} grid, window z[0] {cx - span / 2:+.2f}..{cx + span / 2:+.2f}, "
               f"z[1] {cy - span / 2:+.2f}..{cy + span / 2:+.2f} ({spacing} spacing)")
    return mosaic, draw_map(ex, cx, cy, span, marks), caption


def decode_one(dataset, z0, z1):
    """A single latent point decoded, shown large."""
    z0, z1 = z_args(z0, z1)
    return big(explorer(dataset).decode(np.array([[z0, z1]]))[0])


def pick_cell(dataset, n, cx, cy, span, spacing, marks, evt: gr.SelectData):
    n, cx, cy, span, mode = window_args(n, cx, cy, span, spacing)
    x, y = evt.index
    px = cell_px(n)
    row, col = min(int(y) // px, n - 1), min(int(x) // px, n - 1)
    z0, z1 = (round(float(v), 3) for v in grid_points((cx, cy), span, n, mode)[row * n + col])
    marks = {**(marks or {}), "selected": (z0, z1)}
    ex = explorer(dataset)
    return (decode_one(dataset, z0, z1), f"cell row {row + 1}, column {col + 1}: z = ({z0:+.3f}, {z1:+.3f})",
            z0, z1, marks, draw_map(ex, cx, cy, span, marks))


def click_map(dataset, n, cx, cy, span, spacing, marks, evt: gr.SelectData):
    z = explorer(dataset).map.to_latent(*evt.index)
    if z is None:
        raise gr.Error("Click inside the plot to move the window there.")
    return (round(z[0], 3), round(z[1], 3), *render(dataset, n, z[0], z[1], span, spacing, marks))


def encode(dataset, sketch, upload, marks, progress=gr.Progress()):
    """Encode a drawing (or, if no drawing, an upload): reconstruction, z and notes."""
    ex = explorer(dataset, progress)
    gray, notes = drawing_or_upload(sketch, upload)
    try:
        x, (z0, z1), more = ex.encode(gray)
    except ValueError as exc:
        raise gr.Error(str(exc))
    recon = ex.decode(np.array([[z0, z1]]))[0]
    pair = np.concatenate([big((x * 255).astype(np.uint8), 6), np.full((168, 8), 128, np.uint8),
                           big(recon, 6)], axis=1)
    marks = {**(marks or {}), "encoded": (z0, z1)}
    text = f"z = ({z0:+.3f}, {z1:+.3f}). " + ("; ".join(notes + more) + "." if notes + more else "")
    return pair, text, marks


def interpolate(dataset, a0, a1, b0, b1, steps, marks):
    a, b = z_args(a0, a1), z_args(b0, b1)
    steps = number(steps, "Steps", 2, 30, integer=True)
    images = explorer(dataset).decode(line_points(a, b, steps), fast=True)
    strip = np.concatenate([big(im, 3) for im in images], axis=1)
    return strip, {**(marks or {}), "line": (a, b)}


def first_view(dataset, z0, z1, a0, a1, b0, b1, steps):
    """Beside the grid on a first visit: the cell at the default z and the default A-to-B strip,
    so no box of the tab starts empty."""
    return decode_one(dataset, z0, z1), interpolate(dataset, a0, a1, b0, b1, steps, {})[0]


def build(ctx: TabContext) -> None:
    gr.Markdown("### Latent grid explorer\nA variational autoencoder with a two-dimensional "
                "latent space (Kingma & Welling, 2013), trained by the studio. Every point of "
                "the plane is an image.")
    marks = gr.State({})
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            dataset = gr.Radio(list(CHECKPOINTS), value="MNIST digits", label="Data set")
            grid = gr.Image(label="Decoded grid (click a cell)", format="png", type="numpy",
                            interactive=False, buttons=["download", "fullscreen"],
                            elem_id="latent-grid")
            caption = gr.Markdown(elem_id="latent-caption", label="window")
            with gr.Row():
                n = gr.Slider(2, 30, value=15, step=1, label="Grid size n")
                span = gr.Slider(0.05, 12, value=3.3, step=0.05, label="Span (window width in z)")
            with gr.Row():
                cx = gr.Number(0.0, label="Centre z[0]", minimum=-Z_LIMIT, maximum=Z_LIMIT)
                cy = gr.Number(0.0, label="Centre z[1]", minimum=-Z_LIMIT, maximum=Z_LIMIT)
                spacing = gr.Radio(list(SPACINGS), value="inverse normal CDF (chapter)",
                                   label="Spacing")
            with gr.Row(equal_height=True):     # two short rows, not a column, on a phone
                zoom_in = gr.Button("Zoom in", size="sm", min_width=72)
                zoom_out = gr.Button("Zoom out", size="sm", min_width=72)
                reset = gr.Button("Reset", size="sm", min_width=72)
            with gr.Row(equal_height=True):
                left = gr.Button("←", size="sm", min_width=40)
                right = gr.Button("→", size="sm", min_width=40)
                up = gr.Button("↑", size="sm", min_width=40)
                down = gr.Button("↓", size="sm", min_width=40)
        with gr.Column(scale=2, min_width=300):
            latent_map = gr.Image(label="The map of the test set (click to go there)",
                                  format="png", type="numpy", interactive=False,
                                  buttons=["download", "fullscreen"], elem_id="latent-map")
            cell = gr.Image(label="Clicked cell", format="png", type="numpy", interactive=False,
                            height=200, buttons=["download"])
            cell_z = gr.Markdown("Click a cell of the grid.", label="clicked z")
            with gr.Row():
                z0 = gr.Number(0.0, label="z[0]", minimum=-Z_LIMIT, maximum=Z_LIMIT)
                z1 = gr.Number(0.0, label="z[1]", minimum=-Z_LIMIT, maximum=Z_LIMIT)
            with gr.Row():
                recentre = gr.Button("Recentre here", size="sm")
                decode_btn = gr.Button("Decode z", size="sm")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300):
            gr.Markdown("#### Draw or upload, then encode\nDraw a digit (or a garment) below:")
            sketch = DigitSketchpad(elem_id="vae-sketch")
            upload = ImageInput(label="...or upload a picture", height=160,
                                sources=["upload", "clipboard"])
            with gr.Row():
                clear = gr.Button("Clear the drawing", size="sm")
                encode_btn = gr.Button("Encode", variant="primary")
            pair = gr.Image(label="Your image as the model sees it | its reconstruction",
                            format="png", type="numpy", interactive=False)
            encoded_z = gr.Markdown(label="encoded z")
        with gr.Column(min_width=300):
            gr.Markdown("#### Interpolate between two points")
            with gr.Row():
                a0 = gr.Number(-1.5, label="A z[0]")
                a1 = gr.Number(-1.5, label="A z[1]")
                b0 = gr.Number(1.5, label="B z[0]")
                b1 = gr.Number(1.5, label="B z[1]")
            with gr.Row():
                set_a = gr.Button("A = clicked cell", size="sm")
                set_b = gr.Button("B = clicked cell", size="sm")
            steps = gr.Slider(2, 30, value=10, step=1, label="Steps")
            interp_btn = gr.Button("Interpolate", variant="primary")
            strip = gr.Image(label="A to B", format="png", type="numpy", interactive=False,
                             buttons=["download"])
            gr.Markdown(EXPLAIN)

    window = [dataset, n, cx, cy, span, spacing]
    outputs = [grid, latent_map, caption]
    draw = dict(fn=render, inputs=window + [marks], outputs=outputs)
    gr.on([dataset.change, n.release, span.release, spacing.change, cx.submit, cy.submit],
          **draw, api_name="latent_grid", show_progress="minimal")
    # moving the window: update the numbers, then redraw
    zoom_in.click(lambda s: max(0.05, s / 2), span, span, queue=False,
                  api_visibility="private").then(**draw, api_visibility="private")
    zoom_out.click(lambda s: min(12.0, s * 2), span, span, queue=False,
                   api_visibility="private").then(**draw, api_visibility="private")
    for btn, dx, dy in ((left, -1, 0), (right, 1, 0), (up, 0, 1), (down, 0, -1)):
        btn.click(lambda x, y, s, dx=dx, dy=dy: (round(x + dx * s / 4, 3), round(y + dy * s / 4, 3)),
                  [cx, cy, span], [cx, cy], queue=False, api_visibility="private"
                  ).then(**draw, api_visibility="private")
    reset.click(lambda: (15, 0.0, 0.0, 3.3, {}), None, [n, cx, cy, span, marks], queue=False,
                api_visibility="private").then(**draw, api_visibility="private")
    recentre.click(lambda a, b: (a, b), [z0, z1], [cx, cy], queue=False,
                   api_visibility="private").then(**draw, api_visibility="private")
    grid.select(pick_cell, window + [marks], [cell, cell_z, z0, z1, marks, latent_map],
                api_visibility="private")
    latent_map.select(click_map, window + [marks], [cx, cy] + outputs, api_visibility="private")
    decode_btn.click(decode_one, [dataset, z0, z1], cell, api_name="latent_decode")
    clear.click(blank_canvas, None, sketch, queue=False, api_visibility="private")
    encode_btn.click(encode, [dataset, sketch, upload, marks], [pair, encoded_z, marks],
                     api_name="latent_encode").then(**draw, api_visibility="private")
    set_a.click(lambda a, b: (a, b), [z0, z1], [a0, a1], queue=False, api_visibility="private")
    set_b.click(lambda a, b: (a, b), [z0, z1], [b0, b1], queue=False, api_visibility="private")
    interp_btn.click(interpolate, [dataset, a0, a1, b0, b1, steps, marks], [strip, marks],
                     api_name="latent_interpolate").then(**draw, api_visibility="private")
    # the grid appears when the tab is shown (the model loads then, never at import)
    gr.on(ctx.shown, **draw, api_visibility="private").then(
        first_view, [dataset, z0, z1, a0, a1, b0, b1, steps], [cell, strip],
        api_visibility="private")
