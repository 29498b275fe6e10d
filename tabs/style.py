"""Style transfer tab: widgets, validation and wiring; the algorithm is models/style.py."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import matplotlib
import matplotlib.pyplot as plt
import skimage

from models.runtime import generator, gpu
from models.style import CONTENT_LAYERS, StylePipeline, StyleSettings

from .common import (HEAVY, HEAVY_LANE, HEAVY_OPEN, ImageInput, Lazy, TabContext, Technique,
                     number, read_image, run_controls, seed_value, streamed, visitor_of)

TECHNIQUE = Technique("style", "Style transfer", "art",
                      "A photo repainted in the style of another picture, on VGG19.",
                      tab="Style")
AVAILABLE = True   # VGG19 is fetched on first use (models/backbones.py)


SKIMAGE = Path(skimage.__file__).parent / "data"
MPL = Path(matplotlib.get_data_path()) / "sample_data"
EXAMPLES = [
    [str(MPL / "grace_hopper.jpg"), str(SKIMAGE / "ihc.png")],
    [str(SKIMAGE / "chelsea.png"), str(SKIMAGE / "hubble_deep_field.jpg")],
    [str(SKIMAGE / "astronaut.png"), str(SKIMAGE / "gravel.png")],
    [str(SKIMAGE / "coffee.png"), str(MPL / "Minduka_Present_Blue_Pack.png")],
]
EXAMPLE_LABELS = ["Grace Hopper in stained cells", "A cat in the deep field",
                  "An astronaut in gravel", "Coffee in gift wrap"]
OPTIMIZERS = {"L-BFGS (fast convergence)": "lbfgs", "Adam (smoother progress)": "adam"}
INITS = {"content in the style's colours": "recolor", "content image": "content", "noise": "noise"}
COLOURS = {"off": "none", "luminance only (keep content colours)": "luminance",
           "match style colours to the content": "histogram"}
BASE_STYLE_WEIGHT = 10.0
BUDGET_SECONDS = 30   # the default run's goal on whatever CPU the app finds itself on

PIPELINES = {"VGG19": Lazy("VGG19", lambda report: StylePipeline.from_pretrained(report))}

EXPLAIN = """
**How it works** (Gatys et al., 2015). VGG19 looks at three images: the content photo, the
style image and the picture being made, which starts as the photo recoloured to the style's
palette (or the plain photo, or noise). An optimiser then changes the picture's pixels to lower
three losses:

* **Content loss**: the picture's deep features (what is where) should match the photo's.
* **Style loss**: the *Gram matrices* of five layers (which features fire together, wherever
  they are) should match the style image's: colours, strokes and textures, without its layout.
* **Total variation**: neighbouring pixels should not differ much, which removes speckle.

**Style strength** trades the first two. **Coarse-to-fine** works at a quarter and half the size
first, then refines: faster, and brush strokes come out bigger and more coherent.
**Colour preservation** keeps the photo's colours: *luminance only* transfers style to the
brightness channel, *match colours* recolours the style image to the photo's palette first.
"""


def loss_plot(losses: list[float]):
    plt.rcParams.update({"font.size": 12})      # readable when a phone scales the figure down
    fig, ax = plt.subplots(figsize=(5, 2.8), dpi=100)
    ax.semilogy(range(1, len(losses) + 1), losses, color="#4f46e5")
    ax.set_xlabel("objective evaluation (all stages)"), ax.set_ylabel("total loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig


def settings_from(size, strength, iterations, optimizer, init, colours, coarse, content_weight,
                  style_weight, tv_weight, content_layer, style_scale, blend) -> StyleSettings:
    if optimizer not in OPTIMIZERS or init not in INITS or colours not in COLOURS:
        raise gr.Error("Unknown choice for optimiser, initialisation or colour preservation.")
    if content_layer not in CONTENT_LAYERS:
        raise gr.Error(f"Content layer must be one of {', '.join(CONTENT_LAYERS)}.")
    strength = number(strength, "Style strength", 0, 10)
    raw_style = number(style_weight, "Style weight", 0, 1e12)
    return StyleSettings(
        size=number(size, "Output size", 64, 1024, integer=True),
        steps=number(iterations, "Iterations", 1, 1000, integer=True),
        content_weight=number(content_weight, "Content weight", 0, 1e6),
        style_weight=raw_style or BASE_STYLE_WEIGHT * 10 ** ((strength - 5) / 2.5),
        tv_weight=number(tv_weight, "Total-variation weight", 0, 1e6),
        content_layer=content_layer,
        optimizer=OPTIMIZERS[optimizer],
        init=INITS[init],
        preserve_color=COLOURS[colours],
        coarse_to_fine=bool(coarse),
        style_scale=number(style_scale, "Style scale", 0.25, 2.0),
        style_blend=tuple(blend),
    )


@gpu(duration=120)
def stylise(content, style_a, weight_a, style_b, weight_b, style_c, weight_c, size, strength,
            iterations, optimizer, init, colours, coarse, content_weight, style_weight, tv_weight,
            content_layer, style_scale, seed, budget=True, request: gr.Request = None,
            progress=gr.Progress()):
    """Stream (image, status, loss plot) while optimising."""
    pairs = [(path, w, name) for path, w, name in ((style_a, weight_a, "A"), (style_b, weight_b, "B"),
                                                   (style_c, weight_c, "C")) if path]
    if not pairs:
        raise gr.Error("Add at least one style image (Style A), or click an example.")
    blend = [number(w, f"Blend weight of style {name}", 0, 100) for _, w, name in pairs]
    if sum(blend) <= 0:
        raise gr.Error("The style blend weights are all zero: give at least one a positive weight.")
    s = settings_from(size, strength, iterations, optimizer, init, colours, coarse, content_weight,
                      style_weight, tv_weight, content_layer, style_scale, blend)
    gen = generator(seed_value(seed))
    photo, notes = read_image(content, 2048)
    styles = []
    for path, _, name in pairs:
        image, more = read_image(path, 2048)
        styles.append(image)
        notes += [f"style {name}: {m}" for m in more]
    pipeline = PIPELINES["VGG19"].get(progress)
    if budget:
        fitted = pipeline.within(photo.shape[:2], s, BUDGET_SECONDS)
        if fitted != s:
            notes.append(f"your settings would take about {pipeline.estimate(photo.shape[:2], s):.0f} s "
                         f"on this server, so this runs {fitted.size} px and {fitted.steps} "
                         f"iterations (about {pipeline.estimate(photo.shape[:2], fitted):.0f} s); "
                         "untick *Finish in about 30 s* to run them as set")
            s = fitted
    for update, status in streamed(
            lambda stop: pipeline.stream(photo, styles, s, generator=gen, every=5,
                                         should_stop=stop), notes, progress,
            HEAVY_LANE, visitor_of(request)):
        if update is None:
            yield None, status, None
        else:
            plot = loss_plot(update.losses) if update.done or update.step % 20 == 0 else gr.skip()
            yield update.image, status, plot


def build(ctx: TabContext) -> None:
    gr.Markdown("### Neural style transfer\nThe content of one picture in the style of "
                "another, on the original VGG19 (Gatys, Ecker & Bethge, 2015).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            # the examples first (above the fold), the pictures, the button and the result;
            # the settings in the other column (below, on a phone)
            content = ImageInput(label="Content photo", height=200, render=False)
            style_a = ImageInput(label="Style image A", height=180, render=False)
            gr.Examples(EXAMPLES, inputs=[content, style_a], example_labels=EXAMPLE_LABELS,
                        label="Examples (scikit-image and matplotlib sample images)")
            with gr.Row(equal_height=False):
                with gr.Column(min_width=160):
                    content.render()
                with gr.Column(min_width=160):
                    with gr.Tabs():
                        with gr.Tab("Style A"):
                            style_a.render()
                            weight_a = gr.Slider(0, 10, value=1, step=0.1, label="Blend weight A")
                        with gr.Tab("Style B"):
                            style_b = ImageInput(label="Style image B (optional)", height=200)
                            weight_b = gr.Slider(0, 10, value=1, step=0.1, label="Blend weight B")
                        with gr.Tab("Style C"):
                            style_c = ImageInput(label="Style image C (optional)", height=200)
                            weight_c = gr.Slider(0, 10, value=1, step=0.1, label="Blend weight C")
            run, stop, status = run_controls("Stylise", "style")
            output = gr.Image(label="Result (best so far)", format="png", type="numpy",
                              interactive=False, buttons=["download", "fullscreen"], height=480)
        with gr.Column(scale=1, min_width=300):
            with gr.Row():
                size = gr.Slider(128, 1024, value=512, step=32, label="Output size (px)",
                                 info="longest side")
                strength = gr.Slider(0, 10, value=5, step=0.5, label="Style strength",
                                     info="0 = mostly photo, 10 = mostly style")
            with gr.Row():
                iterations = gr.Slider(5, 500, value=100, step=5, label="Iterations",
                                       info="at the first stage; each finer stage gets half")
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1,
                                 label="Seed", info="for the noise start")
            budget = gr.Checkbox(value=True, label=f"Finish in about {BUDGET_SECONDS} s",
                                 info="measures this server once and lowers the size, then the "
                                      "iterations, if your settings would take longer")
            colours = gr.Radio(list(COLOURS), value="off", label="Colour preservation")
            with gr.Accordion("Advanced", open=False):
                with gr.Row():
                    optimizer = gr.Radio(list(OPTIMIZERS), value=list(OPTIMIZERS)[0],
                                         label="Optimiser")
                    init = gr.Radio(list(INITS), value=list(INITS)[0], label="Start from",
                                    info="the photo recoloured to the style's palette "
                                         "converges fastest")
                coarse = gr.Checkbox(value=True, label="Coarse-to-fine (quarter, half, full size)")
                with gr.Row():
                    content_weight = gr.Number(1.0, minimum=0, label="Content weight")
                    style_weight = gr.Number(0, minimum=0, label="Style weight",
                                             info="0 = set by the strength slider")
                    tv_weight = gr.Number(1.0, minimum=0, label="Total-variation weight")
                with gr.Row():
                    content_layer = gr.Dropdown(list(CONTENT_LAYERS), value="relu4_2",
                                                label="Content layer")
                    style_scale = gr.Slider(0.25, 2.0, value=1.0, step=0.05, label="Style scale",
                                            info="size of the style image relative to the output")
            curve = gr.Plot(label="Loss curve")
            gr.Markdown(EXPLAIN)
    event = run.click(stylise, [content, style_a, weight_a, style_b, weight_b, style_c, weight_c,
                                size, strength, iterations, optimizer, init, colours, coarse,
                                content_weight, style_weight, tv_weight, content_layer,
                                style_scale, seed, budget], [output, status, curve],
                      api_name="style_transfer", concurrency_id=HEAVY,
                      concurrency_limit=HEAVY_OPEN)
    stop.click(lambda: "Stopped: the picture is the best one so far.", None, status,
               cancels=[event], api_name="style_stop", queue=False)
