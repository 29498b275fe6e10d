"""CycleGAN tab: widgets, validation and wiring; the models are models/cyclegan.py."""
from __future__ import annotations

import json
import time

import gradio as gr
import numpy as np
import torch
from PIL import Image

from models.cyclegan import DIRECTIONS, MIN_CROP, CycleGANPipeline, latent_edit, square_crop, to_tensor
from models.hub import WEIGHTS_DIR
from models.images import enlarge

from . import faces as faces_tab
from .common import ImageInput, Lazy, TabContext, Technique, number, read_image, sentence

TECHNIQUE = Technique("cyclegan", "CycleGAN", "images",
                      "Blond to black hair, glasses on and off, learned from unpaired faces.")
PAIRS = {  # API value -> (label, checkpoint folder under weights/)
    "hair": ("Hair colour: blond <-> black", "cyclegan-hair"),
    "glasses": ("Glasses: on <-> off", "cyclegan-glasses"),
}
PAIR_NAMES = [key for key, (_, folder) in PAIRS.items()
              if (WEIGHTS_DIR / folder / "config.json").is_file()]
AVAILABLE = bool(PAIR_NAMES)
DEFAULT_PAIR = PAIR_NAMES[0] if PAIR_NAMES else None
JUDGE = "face-judge"
GALLERY = "gallery.png"   # beside each checkpoint: held-out faces, domain A on top, B below
PER_ROW = 8
TILE = 64
SHOW = 192                # a 64 px face shown at 3x
MAX_SIDE = 2048           # uploads are scaled down to this before cropping

PIPELINES = {key: Lazy(f"the {PAIRS[key][0].lower()} CycleGAN",
                       lambda report, folder=PAIRS[key][1]: CycleGANPipeline.from_pretrained(folder))
             for key in PAIR_NAMES}
PIPELINES["face classifier"] = Lazy("the face-attribute classifier", lambda report: _judge())
READ = {"Blond_Hair": "blond hair", "Black_Hair": "black hair", "Eyeglasses": "glasses",
        "Smiling": "smiling", "Male": "male", "Young": "young"}

EXPLAIN = """
**How it works.** Nobody showed this model the same person with blond and with black hair: it
saw about a thousand faces of each, unpaired (Zhu et al., 2017). Two generators learn the two
directions, each against a discriminator that tells its output from real faces of the target
side. That alone would let a generator draw *any* black-haired face; **cycle consistency**
keeps the person: blond -> black -> blond must give back the photo it started from (an L1 loss,
weight 10), so the translation can only change what it can undo. An **identity** loss (a
black-haired face sent to the black-hair generator should come back unchanged) keeps colours.

* **What it does well**: colour and texture (hair colour, skin tone, light). Glasses are
  harder: putting thin frames on works, taking sunglasses off leaves smudged eyes (it learned
  from only 243 faces with glasses).
* **What unpaired training cannot learn**: geometry. A change of shape (a new hairstyle, a
  different face) would not survive the cycle, so it is not made; the failure figure below shows
  faces it got wrong.
* **Trained on aligned faces**: CelebA photos cropped so the eyes sit at the same place, 64x64
  pixels. Frame your photo the same way (face filling the square, eyes level, a little hair
  above): the crop you chose is shown.
* **Translation or latent edit**: this tab changes *a real photo* pixel by pixel; the Face
  arithmetic tab moves *a generated face* along a direction in the DCGAN's latent space, which
  changes everything the direction is tangled with.
"""


def _judge():
    from models.faces import FaceAttributes
    from models.hub import from_pretrained

    return from_pretrained(FaceAttributes, JUDGE)


def pair_value(pair) -> str:
    if pair not in PAIR_NAMES:
        raise gr.Error(f"Unknown pair {pair!r}; choose one of: {', '.join(PAIR_NAMES)}.")
    return pair


def direction_value(direction) -> str:
    if direction not in DIRECTIONS:
        raise gr.Error(f"Unknown direction {direction!r}; choose 'a2b' or 'b2a'.")
    return direction


def config_of(pair) -> dict:
    return json.loads((WEIGHTS_DIR / PAIRS[pair][1] / "config.json").read_text())


def direction_choices(pair) -> list[tuple[str, str]]:
    a, b = config_of(pair)["domains"] if pair else ("A", "B")
    return [(f"{a} -> {b}", "a2b"), (f"{b} -> {a}", "b2a")]


def gallery_faces(pair) -> np.ndarray:
    """(2 * PER_ROW, 64, 64, 3): held-out faces of domain A, then of B."""
    picture = np.asarray(Image.open(WEIGHTS_DIR / PAIRS[pair][1] / GALLERY).convert("RGB"))
    rows, cols = picture.shape[0] // TILE, picture.shape[1] // TILE
    return picture.reshape(rows, TILE, cols, TILE, 3).transpose(0, 2, 1, 3, 4).reshape(-1, TILE, TILE, 3)


def gallery_picture(pair) -> np.ndarray:
    return np.asarray(Image.open(WEIGHTS_DIR / PAIRS[pair][1] / GALLERY).convert("RGB"))


def reading(probs: torch.Tensor, names: list[str], keys: list[str]) -> str:
    return ", ".join(f"{READ.get(k, k)} {float(probs[names.index(k)]):.0%}" for k in keys if k in names)


def judge_note(pair, face: np.ndarray, out: np.ndarray) -> str:
    """What the studio's face classifier reads on the face and its translation."""
    if not (WEIGHTS_DIR / JUDGE / "config.json").is_file():
        return ""
    judge = PIPELINES["face classifier"].get()
    names = judge.config.attributes
    keys = [k for rule in config_of(pair)["rules"] for k in rule if k in names]
    keys = list(dict.fromkeys(keys))
    p = judge.probabilities(to_tensor(np.stack([face, out])))
    return (f"The face classifier reads the input as {reading(p[0], names, keys)}; "
            f"the translation as {reading(p[1], names, keys)}.")


def show_pair(pair):
    """A pair's gallery and its two directions."""
    pair = pair_value(pair)
    choices = direction_choices(pair)
    return gallery_picture(pair), gr.update(choices=choices, value="a2b")


def pick(pair, evt: gr.SelectData):
    """A click on a gallery face: that face as the input, the direction away from its side."""
    pair = pair_value(pair)
    x, y = evt.index
    col, row = int(x) // TILE, int(y) // TILE
    faces = gallery_faces(pair)
    k = row * PER_ROW + col
    if not 0 <= k < len(faces):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return faces[k], ("a2b" if row == 0 else "b2a"), 100, 50, 50


def translate(pair, direction, image, size, cx, cy, progress=gr.Progress()):
    """The chosen square of the image, translated, translated back, and what changed."""
    pair, direction = pair_value(pair), direction_value(direction)
    size = number(size, "Crop size", 10, 100) / 100
    cx, cy = number(cx, "Crop centre across", 0, 100) / 100, number(cy, "Crop centre down", 0, 100) / 100
    picture, notes = read_image(image, MAX_SIDE)
    try:
        face, box = square_crop(picture, size, cx, cy)
    except ValueError:
        h, w = picture.shape[:2]
        raise gr.Error(f"No face-sized square can be taken: {size:.0%} of the shorter side of this "
                       f"{w}x{h} image is under {MIN_CROP} px. Use a larger crop or a larger photo.")
    h, w = picture.shape[:2]
    if box != (0, 0, w, h):
        notes.append(f"cropped to the square ({box[0]}, {box[1]})-({box[2]}, {box[3]}) of {w}x{h}")
    if (w, h) != (TILE, TILE) or box != (0, 0, w, h):
        notes.append(f"scaled to {TILE}x{TILE}, the size the model was trained on")
    pipe = PIPELINES[pair].get(progress)
    t = time.perf_counter()
    out = pipe(face, direction)
    seconds = time.perf_counter() - t
    change = (np.clip(out.change[0] * 4, 0, 1) * 255).astype(np.uint8)
    frm, to = out.names
    status = (sentence(notes) + f"{frm} -> {to} -> {frm} in {seconds * 1000:.0f} ms (both ways, on "
              f"the CPU). " + judge_note(pair, face, out.translated[0]))
    return (enlarge(face, SHOW), enlarge(out.translated[0], SHOW), enlarge(out.cycled[0], SHOW),
            enlarge(np.repeat(change[..., None], 3, -1), SHOW), status)


def latent_way(pair, direction, progress=gr.Progress()):
    """The Face arithmetic tab's way: a generated face moved along the attribute direction."""
    pair, direction = pair_value(pair), direction_value(direction)
    if not faces_tab.AVAILABLE:
        return None, None, "The Face arithmetic tab's DCGAN is not installed."
    edit = latent_edit(faces_tab.pipeline(progress), config_of(pair)["rules"], direction)
    if edit is None:
        return None, None, "The DCGAN has no latent direction for this attribute."
    return (enlarge(edit.before, SHOW), enlarge(edit.after, SHOW),
            "A generated face (seed 0) moved along the DCGAN's attribute direction, other "
            "attributes held: " + faces_tab.reading(edit.reading) + ".")


def failure_picture(pair) -> str | None:
    path = WEIGHTS_DIR / PAIRS[pair_value(pair)][1] / "failure.png"
    return str(path) if path.is_file() else None


def first_face(pair, progress=gr.Progress()):
    """A pair's first held-out face, translated: what a visitor sees on arrival or on a switch."""
    face = gallery_faces(pair)[0]
    return (face, *translate(pair, "a2b", _as_file(face), 100, 50, 50, progress),
            failure_picture(pair))


def first_view(pair, drawn, progress=gr.Progress()):
    if drawn:
        return (gr.skip(),) * 12
    picture, directions = show_pair(pair)
    shown = first_face(pair, progress)
    before, after, note = latent_way(pair, "a2b", progress)
    return (picture, directions, *shown, before, after, True)


def _as_file(face: np.ndarray) -> str:
    import tempfile

    path = tempfile.NamedTemporaryFile(prefix="gdl-cyclegan-", suffix=".png", delete=False).name
    Image.fromarray(face).save(path)
    return path


def build(ctx: TabContext) -> None:
    gr.Markdown("### CycleGAN\nUnpaired image-to-image translation (Zhu et al., 2017), trained by "
                "the studio on CelebA faces: pick a held-out face (people the model never saw) or "
                "upload a photo, and see it translated and translated back.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            pair = gr.Radio([(PAIRS[k][0], k) for k in PAIR_NAMES], value=DEFAULT_PAIR, label="Pair")
            direction = gr.Radio(direction_choices(DEFAULT_PAIR), value="a2b", label="Direction",
                                 elem_id="cyclegan-direction")
            gallery = gr.Image(label="Held-out faces (click one): top row one side, bottom row the "
                               "other", format="png", interactive=False, buttons=["fullscreen"],
                               elem_id="cyclegan-gallery")
            image = ImageInput(label="Your face (or the one you clicked)", height=240,
                               elem_id="cyclegan-input")
            with gr.Accordion("Square crop (the model was trained on aligned faces)", open=False):
                size = gr.Slider(10, 100, value=100, step=1, label="Crop size",
                                 info="% of the shorter side; the face should fill the square")
                cx = gr.Slider(0, 100, value=50, step=1, label="Centre across (%)")
                cy = gr.Slider(0, 100, value=50, step=1, label="Centre down (%)")
            run = gr.Button("Translate", variant="primary", elem_id="cyclegan-run")
        with gr.Column(scale=2, min_width=300):
            status = gr.Markdown("", elem_id="cyclegan-status")
            gr.Markdown("Left to right: the 64x64 crop the model saw, translated, translated back "
                        "(the cycle), and where it changed (brighter = more).")
            with gr.Row():
                crop = gr.Image(label="Crop used (64 px)", show_label=False, format="png",
                                interactive=False,
                                buttons=["download"], min_width=140, elem_id="cyclegan-crop")
                there = gr.Image(label="Translated", show_label=False, format="png", interactive=False,
                                 buttons=["download"], min_width=140, elem_id="cyclegan-translated")
                back = gr.Image(label="And back", show_label=False, format="png", interactive=False,
                                buttons=["download"], min_width=140, elem_id="cyclegan-cycled")
                change = gr.Image(label="Changed", show_label=False, format="png",
                                  interactive=False, min_width=140, elem_id="cyclegan-change")
            gr.Markdown("#### The same change in the Face arithmetic tab's way")
            with gr.Row():
                latent_before = gr.Image(label="a generated face", format="png", interactive=False,
                                         min_width=140)
                latent_after = gr.Image(label="moved along the latent direction", format="png",
                                        interactive=False, min_width=140)
            latent_status = gr.Markdown("")
            latent_btn = gr.Button("Show the latent edit for this direction", elem_id="cyclegan-latent")
    gr.Markdown(EXPLAIN)
    with gr.Accordion("Where it fails (held-out faces the classifier read least as the "
                      "target; rows: face, translated, back, change)", open=False):
        failure = gr.Image(format="png", interactive=False, show_label=False,
                           elem_id="cyclegan-failure")
    drawn = gr.State(False)
    outputs = [crop, there, back, change, status]
    pair.change(show_pair, pair, [gallery, direction], api_name="cyclegan_pair", queue=False).then(
        first_face, pair, [image, *outputs, failure], api_visibility="private",
        concurrency_id="cyclegan", concurrency_limit=4)
    gallery.select(pick, pair, [image, direction, size, cx, cy], api_visibility="private", queue=False)
    run.click(translate, [pair, direction, image, size, cx, cy], outputs, api_name="cyclegan_translate",
              concurrency_id="cyclegan", concurrency_limit=4)
    direction.change(latent_way, [pair, direction], [latent_before, latent_after, latent_status],
                     api_visibility="private")
    latent_btn.click(latent_way, [pair, direction], [latent_before, latent_after, latent_status],
                     api_name="cyclegan_latent_edit")
    gr.on(ctx.shown, first_view, [pair, drawn],
          [gallery, direction, image, *outputs, failure, latent_before, latent_after, drawn],
          api_visibility="private")
