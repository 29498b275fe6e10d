"""PixelCNN tab: widgets, validation and wiring; the models are models/pixelcnn.py."""
from __future__ import annotations

import time

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np

from models.hub import WEIGHTS_DIR
from models.images import enlarge, grid, to_mnist_style
from models.pixelcnn import PixelCNN, PixelCNNConfig, PixelCNNPipeline, mask_a, mask_b, receptive_field
from models.runtime import generator

from .common import (Deadline, DigitSketchpad, ImageInput, Lazy, TabContext, Technique,
                     blank_canvas, drawing_or_upload, number, run_controls, seed_value, sentence)

TECHNIQUE = Technique("pixelcnn", "PixelCNN", "images",
                      "Digits drawn one pixel at a time, each from a softmax over 256 grey levels.")
CHECKPOINTS = {  # label -> checkpoint folder under weights/
    "Gated PixelCNN, MNIST (pick the digit)": "pixelcnn-gated-mnist",
    "PixelCNN (masked convolutions), MNIST": "pixelcnn-plain-mnist",
    "Gated PixelCNN, Fashion-MNIST (pick the garment)": "pixelcnn-gated-fashion",
    "PixelCNN (masked convolutions), Fashion-MNIST": "pixelcnn-plain-fashion",
}
MODEL_NAMES = [label for label, folder in CHECKPOINTS.items()
               if (WEIGHTS_DIR / folder / "config.json").is_file()]
AVAILABLE = bool(MODEL_NAMES)
DEFAULT_MODEL = MODEL_NAMES[0] if MODEL_NAMES else None
MAX_IMAGES = 16
MAX_COMPLETIONS = 8
EVERY_ROWS = 2          # stream the batch every two rows
CELL = 112              # a 28x28 image shown at 4x
HIDES = ("the bottom half", "everything after the chosen pixel")

PIPELINES = {label: Lazy(f"the {label}", lambda report, folder=CHECKPOINTS[label]:
                         PixelCNNPipeline.from_pretrained(folder))
             for label in MODEL_NAMES}

EXPLAIN = """
**How it works.** A PixelCNN writes an image the way a language model writes text: one pixel
at a time, in reading order, each drawn from a probability over the 256 grey levels given every
pixel before it (the autoregressive factorisation p(x) = p(x<sub>1</sub>) p(x<sub>2</sub> |
x<sub>1</sub>) ... ). Its convolutions are **masked** so that no output sees the pixel it
predicts or any after it: mask A (the first layer) hides the centre pixel itself, mask B (the
layers after) lets a pixel see its own features, never its value.

* **Blind spot**: stacked masked 3x3 convolutions never see some pixels up and to the right.
  The **gated** PixelCNN splits the network into a vertical stack (everything above) and a
  horizontal stack (the row so far), with tanh x sigmoid gates, and has no blind spot; its
  gates also take the class you pick.
* **Temperature** divides the logits before the softmax: below 1 the likeliest grey wins
  (clean, plain strokes; 0 always takes it), above 1 the image gets noisy.
* **Sampling is slow by nature**: 784 draws, each after the last. The studio computes only what
  a pixel can see: for the gated model the vertical stack once per row and the horizontal stack
  on that row alone.
* **Likelihood**: unlike a GAN or a VAE, a PixelCNN gives the exact probability of an image, in
  bits per pixel; the surprise map shows where an image costs the most.
* The same idea on sound, with dilated causal convolutions in one dimension, is **WaveNet**
  (the *WaveNet audio* tab).
"""


def pipeline(name, progress: gr.Progress | None = None) -> PixelCNNPipeline:
    if name not in PIPELINES:
        raise gr.Error(f"Unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}.")
    return PIPELINES[name].get(progress)


def class_names(name) -> list[str]:
    pipe = pipeline(name) if name in PIPELINES and PIPELINES[name].loaded else None
    if pipe is not None:
        return list(pipe.config.class_names) if pipe.config.classes else []
    import json

    config = json.loads((WEIGHTS_DIR / CHECKPOINTS[name] / "config.json").read_text())
    return list(config["class_names"]) if config.get("classes") else []


def label_of(name, label) -> int | list[int] | None:
    """The class index for a conditional model (or one of each for 'one of each'), else None."""
    names = class_names(name)
    if not names:
        return None
    if label in (None, "", "one of each"):
        return "each"
    if label not in names:
        raise gr.Error(f"Pick a class of this model ({', '.join(names)}), or 'one of each'.")
    return names.index(label)


def labels_for(label, count: int, classes: int):
    return [k % classes for k in range(count)] if label == "each" else label


def check(temperature, seed):
    return number(temperature, "Temperature", 0, 3), seed_value(seed)


def show(images: np.ndarray, cols: int = 4) -> np.ndarray:
    return grid(images, cols, cell=CELL, gap=4, fill=255)


def sample(model_name, label, count, temperature, seed, progress=gr.Progress()):
    """Stream a batch of samples every two rows; then the time taken."""
    temperature, seed = check(temperature, seed)
    count = number(count, "Number of images", 1, MAX_IMAGES, integer=True)
    pipe = pipeline(model_name, progress)
    labels = labels_for(label_of(model_name, label), count, pipe.config.classes)
    deadline, start = Deadline(), time.perf_counter()
    yield None, "Drawing the first row..."
    for update in pipe.stream(n=count, label=labels, temperature=temperature,
                              generator=generator(seed)):
        progress(update.fraction, desc=update.message)
        if update.done or update.row % EVERY_ROWS == 0:
            seconds = time.perf_counter() - start
            message = (f"Done: {count} images, {784 * count / seconds:,.0f} pixels per second "
                       f"({seconds:.1f} s)" if update.done else f"Row {update.row}/28")
            yield show(update.images), message
        if deadline.passed():
            yield show(update.images), f"Stopped at the {deadline.seconds:.0f} s limit, row {update.row}/28."
            return


def hidden_mask(hide, row, col) -> np.ndarray:
    """(28, 28) booleans: True where the model fills in."""
    if hide not in HIDES:
        raise gr.Error(f"Choose what to hide: {' or '.join(HIDES)}.")
    mask = np.zeros((28, 28), bool)
    if hide == HIDES[0]:
        mask[14:] = True
    else:
        row = number(row, "Row", 0, 27, integer=True)
        col = number(col, "Column", 0, 27, integer=True)
        mask.reshape(-1)[row * 28 + col:] = True
    return mask


def to_digit(sketch, upload) -> tuple[np.ndarray, list[str]]:
    gray, notes = drawing_or_upload(sketch, upload)
    try:
        x, more = to_mnist_style(gray)
    except ValueError as exc:
        raise gr.Error(str(exc))
    return (x * 255).round().astype(np.uint8), notes + more


def complete(model_name, label, sketch, upload, hide, row, col, count, temperature, seed,
             progress=gr.Progress()):
    """The picture with its hidden part filled in several ways, streamed every two rows."""
    temperature, seed = check(temperature, seed)
    count = number(count, "Number of completions", 1, MAX_COMPLETIONS, integer=True)
    digit, notes = to_digit(sketch, upload)
    mask = hidden_mask(hide, row, col)
    pipe = pipeline(model_name, progress)
    labels = labels_for(label_of(model_name, label), count, pipe.config.classes)
    if labels == "each" or isinstance(labels, list):
        notes.append("completions conditioned on one class each")
    shown = digit.copy()
    shown[mask] = 128                      # the hidden part, grey
    deadline = Deadline()
    yield show(np.stack([shown]), 1), None, sentence(notes) + "Completing..."
    images = np.repeat(digit[None], count, 0)
    for update in pipe.stream(images, ~mask[None].repeat(count, 0), label=labels,
                              temperature=temperature, generator=generator(seed)):
        if update.done or update.row % EVERY_ROWS == 0 or deadline.passed():
            message = "Done: " if update.done else ""
            yield gr.skip(), show(update.images, min(count, 4)), sentence(notes) + message + \
                f"{int(mask.sum())} pixels filled in, row {update.row}/28."
        if deadline.passed():
            return


def pick_pixel(evt: gr.SelectData):
    """A click on the 28x28 preview (shown at 10x) chooses the pixel."""
    x, y = evt.index
    return min(27, int(y) // 10), min(27, int(x) // 10), HIDES[1]


def preview(sketch, upload):
    """The picture as the model sees it (28x28, light ink on black), at 10x, for choosing a
    pixel."""
    digit, notes = to_digit(sketch, upload)
    return enlarge(digit, 280), sentence(notes) or "Click a pixel to hide everything after it."


RF_CELL, RF_GAP = 224, 16    # a receptive-field picture: 28 px at 8x, 16 px apart


def pick_field_pixel(evt: gr.SelectData):
    """A click on one of the receptive-field pictures chooses its pixel."""
    x, y = (int(v) for v in evt.index)
    if x % (RF_CELL + RF_GAP) >= RF_CELL:
        return gr.skip(), gr.skip()
    return min(27, y // 8), min(27, x % (RF_CELL + RF_GAP) // 8)


def mask_pictures() -> np.ndarray:
    """Masks A and B (7x7), white = seen."""
    cells = [np.pad((m.numpy() * 255).astype(np.uint8), 1, constant_values=60) for m in (mask_a(7), mask_b(7))]
    return grid([enlarge(c, 90) for c in cells], 2, gap=20, fill=255)


def wiring(kind: str) -> PixelCNN:
    """A model of ``kind`` as the shipped ones are built (the first shipped of that kind, or the
    trainer's default shape with random weights: which pixels reach an output depends on the
    wiring, not on the weights)."""
    for name in MODEL_NAMES:
        if class_kind(name) == kind:
            return pipeline(name).model
    if kind not in ARCHITECTURES:
        ARCHITECTURES[kind] = PixelCNN(PixelCNNConfig(kind=kind, channels=16,
                                                      layers=8 if kind == "gated" else 6,
                                                      classes=10 if kind == "gated" else 0))
    return ARCHITECTURES[kind]


ARCHITECTURES: dict[str, PixelCNN] = {}


def class_kind(name) -> str:
    import json

    return json.loads((WEIGHTS_DIR / CHECKPOINTS[name] / "config.json").read_text())["kind"]


def receptive(row, col, progress=gr.Progress()):
    """Which input pixels reach the chosen output pixel, for both kinds of model."""
    row = number(row, "Row", 0, 27, integer=True)
    col = number(col, "Column", 0, 27, integer=True)
    kinds, pictures = [], []
    for kind in ("plain", "gated"):
        field = receptive_field(wiring(kind), row, col)
        picture = np.where(field, 90, 235).astype(np.uint8)
        picture[row, col] = 0
        rgb = np.stack([picture] * 3, -1)
        rgb[row, col] = (220, 40, 40)
        pictures.append(enlarge(rgb, RF_CELL))
        kinds.append(kind)
    seen = "; ".join(f"{'left' if i == 0 else 'right'}, {('the masked PixelCNN' if k == 'plain' else 'the gated PixelCNN')}: "
                     f"{int((p[::8, ::8, 0] == 90).sum())} pixels" for i, (k, p) in enumerate(zip(kinds, pictures)))
    return grid(pictures, len(pictures), gap=RF_GAP, fill=255), (
        f"Pixel (row {row}, column {col}) in red; dark: the pixels that can change its "
        f"distribution ({seen}). The masked PixelCNN never sees a wedge up and to the right: its "
        "blind spot. The gated one sees every pixel above and to the left within its reach.")


def surprise(model_name, label, sketch, upload, progress=gr.Progress()):
    """A heat map of the bits each pixel of a picture costs, and its bits per dimension."""
    digit, notes = to_digit(sketch, upload)
    pipe = pipeline(model_name, progress)
    lab = label_of(model_name, label)
    if lab == "each":
        lab = 0
        notes.append("scored as class " + pipe.config.class_names[0])
    bits = pipe.surprise(digit[None], lab)[0]
    plt.rcParams.update({"font.size": 12})      # readable when a phone scales the figure down
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4), dpi=100)
    axes[0].imshow(digit, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("as the model sees it", fontsize=10)
    im = axes[1].imshow(bits, cmap="magma", vmin=0, vmax=max(8.0, float(bits.max())))
    axes[1].set_title("bits per pixel", fontsize=10)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    fig.tight_layout()
    plt.close(fig)
    per_dim = float(bits.mean())
    return fig, sentence(notes) + (f"{per_dim:.2f} bits per pixel ({bits.sum():,.0f} bits for the "
                                   f"image); the test digits average about 1 bit per pixel, so "
                                   f"higher means more surprising.")


def shipped_samples(model_name) -> str | None:
    """The samples figure measured with a checkpoint, shown before the first sampling."""
    path = WEIGHTS_DIR / CHECKPOINTS.get(model_name, "") / "samples.png" if model_name else None
    return str(path) if path and path.is_file() else None


def model_changed(model_name):
    names = class_names(model_name) if model_name in CHECKPOINTS else []
    choices = (["one of each"] + names) if names else []
    return gr.update(choices=choices, value=("one of each" if names else None), visible=bool(names))


def build(ctx: TabContext) -> None:
    gr.Markdown("### PixelCNN\nImages one pixel at a time (van den Oord et al., 2016): masked "
                "convolutions, a softmax over the 256 grey levels of every pixel, and the gated "
                "variant without a blind spot. Trained by the studio.")
    first = class_names(DEFAULT_MODEL) if DEFAULT_MODEL else []
    with gr.Row(equal_height=False):
        model = gr.Dropdown(MODEL_NAMES, value=DEFAULT_MODEL, label="Model", scale=2)
        label = gr.Dropdown(["one of each"] + first, value="one of each" if first else None,
                            label="Class", visible=bool(first), scale=1, allow_custom_value=True,
                            info="the gated models draw the class you ask for")
        temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature", scale=1,
                                info="1 = the model; lower = cleaner, higher = noisier")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed", scale=1)
    with gr.Tabs():
        with gr.Tab("Sample"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
                    run, stop, status = run_controls("Sample", "pixelcnn")
                with gr.Column(scale=2, min_width=300):
                    samples = gr.Image(shipped_samples(DEFAULT_MODEL),
                                       label="Samples, written row by row (first: the card's)",
                                       format="png", interactive=False,
                                       buttons=["download", "fullscreen"],
                                       elem_id="pixelcnn-samples")
        with gr.Tab("Complete your drawing"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=280):
                    gr.Markdown("Draw a digit (or a garment), or upload a picture:")
                    sketch = DigitSketchpad(elem_id="pixelcnn-sketch")
                    upload = ImageInput(label="...or upload a picture", height=140,
                                        sources=["upload", "clipboard"])
                    hide = gr.Radio(list(HIDES), value=HIDES[0], label="Hide")
                    with gr.Row():
                        row = gr.Number(value=14, precision=0, minimum=0, maximum=27, label="Row")
                        col = gr.Number(value=0, precision=0, minimum=0, maximum=27, label="Column")
                    completions = gr.Slider(1, MAX_COMPLETIONS, value=4, step=1,
                                            label="Number of completions")
                    with gr.Row():
                        clear = gr.Button("Clear the drawing", size="sm")
                        look = gr.Button("Show it at 28x28 (then click a pixel)", size="sm")
                    fill = gr.Button("Complete", variant="primary", elem_id="pixelcnn-complete")
                with gr.Column(scale=1, min_width=280):
                    pick = gr.Image(label="Your picture at 28x28 (click a pixel)", format="png",
                                    interactive=False, elem_id="pixelcnn-pick")
                    given = gr.Image(label="What the model is given (grey = hidden)", format="png",
                                     interactive=False, height=160)
                    filled = gr.Image(label="Completions", format="png", interactive=False,
                                      buttons=["download"], elem_id="pixelcnn-completions")
                    complete_status = gr.Markdown(elem_id="pixelcnn-complete-status")
        with gr.Tab("Receptive field and blind spot"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    gr.Markdown("Which pixels can change the distribution of one output pixel? "
                                "Computed live from the gradient of its logits, for the masked "
                                "PixelCNN (left) and the gated one (right); which pixels reach "
                                "an output depends on the wiring, not on the weights.")
                    with gr.Row():
                        rf_row = gr.Number(value=14, precision=0, minimum=0, maximum=27, label="Row")
                        rf_col = gr.Number(value=14, precision=0, minimum=0, maximum=27, label="Column")
                    rf_run = gr.Button("Show the receptive field", variant="primary",
                                       elem_id="pixelcnn-rf-run")
                    gr.Image(mask_pictures(), label="Masks A (first layer) and B (7x7; white = seen)",
                             format="png", interactive=False, height=150)
                with gr.Column(scale=2, min_width=300):
                    field = gr.Image(label="Receptive fields (click a pixel)", format="png",
                                     interactive=False, elem_id="pixelcnn-rf")
                    rf_status = gr.Markdown(elem_id="pixelcnn-rf-status")
        with gr.Tab("Surprise map"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=280):
                    gr.Markdown("Draw or upload on the *Complete your drawing* tab, then:")
                    score = gr.Button("Score my picture", variant="primary",
                                      elem_id="pixelcnn-surprise-run")
                with gr.Column(scale=2, min_width=300):
                    heat = gr.Plot(label="bits per pixel", elem_id="pixelcnn-surprise")
                    surprise_status = gr.Markdown(elem_id="pixelcnn-surprise-status")
    gr.Markdown(EXPLAIN)

    model.change(model_changed, model, label, api_name="pixelcnn_model_changed", queue=False)
    event = run.click(sample, [model, label, count, temperature, seed], [samples, status],
                      api_name="pixelcnn_sample", concurrency_id="pixelcnn", concurrency_limit=2)
    complete_event = fill.click(
        complete, [model, label, sketch, upload, hide, row, col, completions, temperature, seed],
        [given, filled, complete_status], api_name="pixelcnn_complete", concurrency_id="pixelcnn",
        concurrency_limit=2)
    stop.click(lambda: "Stopped.", None, status, cancels=[event, complete_event],
               api_name="pixelcnn_stop", queue=False)
    clear.click(blank_canvas, None, sketch, queue=False, api_visibility="private")
    look.click(preview, [sketch, upload], [pick, complete_status], api_name="pixelcnn_preview")
    pick.select(pick_pixel, None, [row, col, hide], queue=False, api_visibility="private")
    rf_run.click(receptive, [rf_row, rf_col], [field, rf_status], api_name="pixelcnn_receptive_field")
    field.select(pick_field_pixel, None, [rf_row, rf_col], queue=False,
                 api_visibility="private").then(receptive, [rf_row, rf_col], [field, rf_status],
                                                api_visibility="private")
    score.click(surprise, [model, label, sketch, upload], [heat, surprise_status],
                api_name="pixelcnn_surprise")
    # first view: the receptive fields of the shipped models (one backward pass each)
    gr.on(ctx.shown, receptive, [rf_row, rf_col], [field, rf_status], api_visibility="private")
