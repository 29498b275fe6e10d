"""DeepDream tab: widgets, validation and wiring; the algorithm is models/deepdream.py."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import gradio as gr
import skimage
from PIL import Image

from models.backbones import INCEPTION_BLOCKS
from models.deepdream import DEFAULT_PRESET, PRESETS, DeepDreamPipeline, DreamSettings, zoom_stream
from models.runtime import generator, gpu

from .common import (HEAVY, HEAVY_LANE, HEAVY_OPEN, ImageInput, Lazy, TabContext, Technique,
                     number, read_image, run_controls, seed_value, streamed, visitor_of)

TECHNIQUE = Technique("deepdream", "DeepDream", "art",
                      "Inception-v3 asked to see more of what it sees: octaves of dreams.")
AVAILABLE = True   # Inception-v3 is fetched on first use (models/backbones.py)

LAYERS = list(INCEPTION_BLOCKS)
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
EXAMPLES = [str(SKIMAGE_DATA / name) for name in
            ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")]

PIPELINES = {"Inception-v3": Lazy("Inception-v3",
                                  lambda report: DeepDreamPipeline.from_pretrained(report))}

EXPLAIN = """
**How it works.** The network looks at your image; DeepDream then changes the *pixels* so that
the chosen layers respond more strongly (gradient ascent on the mean squared activation).
Early layers (`mixed0`-`mixed3`) amplify strokes and textures; later ones (`mixed6`-`mixed9`)
hallucinate eyes, dog faces, pagodas: the ImageNet classes the network knows.

* **Octaves**: the image is first dreamed small, then enlarged by the *octave scale* and dreamed
  again, so structures appear at several sizes. The detail lost by shrinking is put back each time.
* **Steps per octave / step size**: how many ascent steps, and how far each moves the pixels
  (the gradient is normalised, so the step size alone sets the strength).
* **Max loss**: an octave stops early once the objective passes this value (over-dreamed images
  turn to mush).
* **Jitter**: a random shift every step, so the dream does not lock onto the pixel grid.
* **Tile size**: large images are processed in tiles, whose grid moves at random every step so
  no seams show; any size up to 2,048 px works without running out of memory.
"""


def parse_weights(text: str, layers: list[str]) -> dict[str, float]:
    """'mixed4: 1, mixed5=1.5' -> weights for the checked layers (1.0 where not given)."""
    given: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in re.split(r"[,;\n]", text or ""))):
        match = re.fullmatch(r"(mixed\d+)\s*[:=]\s*([-+0-9.eE]+)", item)
        if not match:
            raise gr.Error(f"Could not read the layer weight {item!r}; write e.g. 'mixed4: 1.5'.")
        name, value = match.groups()
        if name not in LAYERS:
            raise gr.Error(f"Unknown layer {name!r}; the layers are {', '.join(LAYERS)}.")
        given[name] = number(value, f"Weight of {name}", -100, 100)
    return {name: given.get(name, 1.0) for name in layers}


def settings_from(layers, weights_text, octaves, octave_scale, steps, step_size, max_loss,
                  jitter, tile_size, channel) -> DreamSettings:
    if isinstance(layers, str):
        layers = [layers]
    layers = list(dict.fromkeys(layers or []))
    if not layers:
        raise gr.Error("Tick at least one layer (or pick a preset).")
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        raise gr.Error(f"Unknown layers {unknown}; the layers are {', '.join(LAYERS)}.")
    weights = parse_weights(weights_text, layers)
    if all(w == 0 for w in weights.values()):
        raise gr.Error("All chosen layers have weight 0: nothing to dream about.")
    channel = number(channel, "Channel", -1, 2047, integer=True)
    settings = DreamSettings(
        layers=weights,
        octaves=number(octaves, "Octaves", 1, 8, integer=True),
        octave_scale=number(octave_scale, "Octave scale", 1.05, 2.5),
        steps=number(steps, "Steps per octave", 1, 100, integer=True),
        step_size=number(step_size, "Step size", 0.1, 200),
        max_loss=number(max_loss, "Max loss", 0.1, 1e6),
        jitter=number(jitter, "Jitter", 0, 256, integer=True),
        tile_size=number(tile_size, "Tile size", 256, 1024, integer=True),
        channel=None if channel < 0 else channel,
    )
    if settings.channel is not None:
        if len(layers) != 1:
            raise gr.Error("Channel dreaming works on one layer: tick exactly one.")
        width = _CHANNELS[layers[0]]
        if settings.channel >= width:
            raise gr.Error(f"{layers[0]} has {width} channels (0 to {width - 1}).")
    return settings


BUDGET_SECONDS = 30   # the default dream's goal on whatever CPU the app finds itself on

_CHANNELS = {"mixed0": 256, "mixed1": 288, "mixed2": 288, "mixed3": 768, "mixed4": 768,
             "mixed5": 768, "mixed6": 768, "mixed7": 768, "mixed8": 1280, "mixed9": 2048,
             "mixed10": 2048}


@gpu(duration=120)
def dream(image, layers, weights_text, octaves, octave_scale, steps, step_size, max_loss,
          jitter, tile_size, channel, working_size, seed, budget=True,
          request: gr.Request = None, progress=gr.Progress()):
    """Stream (image, status) while dreaming."""
    settings = settings_from(layers, weights_text, octaves, octave_scale, steps, step_size,
                             max_loss, jitter, tile_size, channel)
    size = number(working_size, "Working size", 128, 2048, integer=True)
    gen = generator(seed_value(seed))
    picture, notes = read_image(image, size)
    pipeline = PIPELINES["Inception-v3"].get(progress)
    if budget:
        shape = picture.shape[:2]
        side, fitted = pipeline.within(shape, settings, BUDGET_SECONDS)
        if side < max(shape) or fitted != settings:
            before = pipeline.estimate(shape, settings)
            if side < max(shape):
                picture, _ = read_image(image, side)
            notes.append(f"your settings would take about {before:.0f} s on this server, so "
                         f"this dreams at {max(picture.shape[:2])} px with {fitted.steps} steps "
                         f"per octave (about {pipeline.estimate(picture.shape[:2], fitted):.0f} s); "
                         f"untick *Finish in about {BUDGET_SECONDS} s* to run them as set")
            settings = fitted
    for update, status in streamed(
            lambda stop: pipeline.stream(picture, settings, generator=gen, preview_every=5,
                                         should_stop=stop), notes, progress,
            HEAVY_LANE, visitor_of(request)):
        yield (update.image if update else None), status


@gpu(duration=120)
def dream_zoom(image, layers, weights_text, octave_scale, step_size, max_loss, jitter, tile_size,
               channel, working_size, seed, frames, zoom, steps_per_frame,
               request: gr.Request = None, progress=gr.Progress()):
    """Stream the frames of a zoom animation, then the animated GIF."""
    settings = settings_from(layers, weights_text, 1, octave_scale, steps_per_frame, step_size,
                             max_loss, jitter, tile_size, channel)
    size = number(working_size, "Working size", 128, 1024, integer=True)
    frames = number(frames, "Frames", 2, 30, integer=True)
    zoom = number(zoom, "Zoom per frame", 1.01, 1.5)
    gen = generator(seed_value(seed))
    picture, notes = read_image(image, size)
    pipeline = PIPELINES["Inception-v3"].get(progress)
    shots = []
    with tempfile.TemporaryDirectory(prefix="gdl-zoom-") as folder:
        # Gradio copies each yielded file into its cache before asking for the next item,
        # so the GIF can go with the folder when the generator ends
        for update, status in streamed(
                lambda stop: zoom_stream(pipeline, picture, settings, frames, zoom, generator=gen,
                                         should_stop=stop), notes, progress,
                HEAVY_LANE, visitor_of(request)):
            if update is None:
                yield None, status, gr.skip()
                continue
            shots.append(Image.fromarray(update.image))
            gif = gr.skip()
            if update.done:
                gif = f"{folder}/zoom.gif"
                shots[0].save(gif, save_all=True, append_images=shots[1:], duration=180, loop=0)
            yield update.image, status, gif


def apply_preset(name: str):
    weights = PRESETS.get(name, PRESETS[DEFAULT_PRESET])
    text = ", ".join(f"{k}: {v:g}" for k, v in weights.items())
    return list(weights), text


def build(ctx: TabContext) -> None:
    default = PRESETS[DEFAULT_PRESET]
    gr.Markdown("### DeepDream octaves\nGradient ascent on Inception-v3 layers over an octave "
                "pyramid (Mordvintsev et al., 2015). Pick an image and a preset, press **Dream**.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            # the picture, the preset, the button and the dream; the knobs in the other column
            # (below, on a phone)
            image = ImageInput(label="Image", height=280, render=False)
            gr.Examples(EXAMPLES, inputs=[image], label="Example photos (scikit-image)")
            image.render()
            preset = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="Preset")
            run, stop, status = run_controls("Dream", "deepdream")
            output = gr.Image(label="Dream", format="png", type="numpy", interactive=False,
                              buttons=["download", "fullscreen"], height=480)
            animation = gr.Image(label="Zoom animation (GIF)", type="filepath", visible=False,
                                 interactive=False, buttons=["download"], height=300)
        with gr.Column(scale=1, min_width=300):
            layers = gr.CheckboxGroup(LAYERS, value=list(default), label="Layers to amplify",
                                      info="early = textures, late = eyes, dogs, buildings")
            with gr.Row():
                octaves = gr.Slider(1, 8, value=3, step=1, label="Octaves")
                steps = gr.Slider(1, 100, value=20, step=1, label="Steps per octave")
            with gr.Row():
                step_size = gr.Slider(1, 100, value=20, step=0.5, label="Step size")
                size = gr.Slider(128, 2048, value=512, step=32, label="Working size (px)",
                                 info="longest side; larger is slower")
            seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed",
                             info="sets the random jitter; same seed, same dream")
            budget = gr.Checkbox(value=True, label=f"Finish in about {BUDGET_SECONDS} s",
                                 info="measures this server once and lowers the working size, "
                                      "then the steps, if your settings would take longer")
            with gr.Accordion("Advanced", open=False):
                weights = gr.Textbox(", ".join(f"{k}: {v:g}" for k, v in default.items()),
                                     label="Layer weights", info="layer: weight, ...; "
                                     "ticked layers without a weight get 1")
                with gr.Row():
                    octave_scale = gr.Slider(1.05, 2.5, value=1.4, step=0.05, label="Octave scale")
                    max_loss = gr.Number(value=15, minimum=0.1, label="Max loss")
                with gr.Row():
                    jitter = gr.Slider(0, 256, value=32, step=1, label="Jitter (px)")
                    tile = gr.Slider(256, 1024, value=512, step=32, label="Tile size (px)")
                channel = gr.Number(value=-1, precision=0, minimum=-1, maximum=2047,
                                    label="Channel (-1 = whole layers)",
                                    info="dream one channel of a single ticked layer")
            with gr.Accordion("Zoom animation", open=False):
                gr.Markdown("Dream a few steps, zoom into the centre, dream again on the "
                            "result: the endless zoom of the original DeepDream videos.")
                with gr.Row():
                    frames = gr.Slider(2, 30, value=8, step=1, label="Frames")
                    zoom = gr.Slider(1.01, 1.5, value=1.06, step=0.01, label="Zoom per frame")
                    frame_steps = gr.Slider(1, 20, value=5, step=1, label="Steps per frame")
                zoom_run = gr.Button("Dream a zoom")
            gr.Markdown(EXPLAIN)
    preset.change(apply_preset, preset, [layers, weights], api_name="deepdream_preset",
                  queue=False)
    event = run.click(dream, [image, layers, weights, octaves, octave_scale, steps, step_size,
                              max_loss, jitter, tile, channel, size, seed, budget],
                      [output, status],
                      api_name="deepdream", concurrency_id=HEAVY, concurrency_limit=HEAVY_OPEN)
    zoom_event = zoom_run.click(
        dream_zoom, [image, layers, weights, octave_scale, step_size, max_loss, jitter, tile,
                     channel, size, seed, frames, zoom, frame_steps], [output, status, animation],
        api_name="deepdream_zoom", concurrency_id=HEAVY, concurrency_limit=HEAVY_OPEN)
    # the animation's box appears with its first animation (it would sit empty under the dream)
    zoom_event.success(lambda: gr.Image(visible=True), None, animation, queue=False,
                       api_visibility="private")
    stop.click(lambda: "Stopped: the picture shows the last finished step.", None, status,
               cancels=[event, zoom_event], api_name="deepdream_stop", queue=False)
