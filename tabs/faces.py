"""Face arithmetic tab: widgets, validation and wiring; the maths is models/faces.py."""
from __future__ import annotations

import re
import tempfile

import gradio as gr
import numpy as np
from PIL import Image

from models.faces import DIRECTIONS, PRESETS, FacePipeline
from models.hub import WEIGHTS_DIR
from models.images import enlarge, grid

from .common import Lazy, TabContext, Technique, number, seed_value, sentence

TECHNIQUE = Technique("faces", "Face arithmetic", "images",
                      "A DCGAN's faces added and subtracted: smiling woman - woman + man.",
                      tab="Faces")
GENERATOR = "dcgan-faces"
CLASSIFIER = "face-attributes"
AVAILABLE = all((WEIGHTS_DIR / name / file).is_file() for name, file in (
    (GENERATOR, "config.json"), (GENERATOR, DIRECTIONS), (CLASSIFIER, "config.json")))
GALLERY = 64           # faces shown
POOL = 256             # faces a preset may choose from (the gallery's are the first 64)
SLIDERS = {"Smiling": "smile", "Eyeglasses": "glasses", "Male": "male", "Young": "young",
           "Blond_Hair": "blond hair"}
MAX_SHIFT = 8.0        # attribute sliders move at most this far along a unit direction
DEFAULT_PRESET = next(iter(PRESETS))
TARGETS = ("group A", "group B", "group C", "attribute editor", "interpolation start",
           "interpolation end")
TILE = 96              # a face in a mosaic: 64 px shown at 1.5x
GAP = 2

PIPELINES = {"faces": Lazy("the DCGAN and the face classifier",
                           lambda report: FacePipeline.from_pretrained(GENERATOR, CLASSIFIER, report),
                           warm=True)}


def pipeline(progress: gr.Progress | None = None) -> FacePipeline:
    return PIPELINES["faces"].get(progress)


def reading(probabilities: dict[str, float]) -> str:
    return ", ".join(f"{SLIDERS.get(n, n)} {v:.0%}" for n, v in probabilities.items())


EXPLAIN = """
**How it works.** A DCGAN generator turns a vector *z* of 100 random numbers into a 64x64 face;
it learned this from 6,000 real celebrity photos by playing against a discriminator (smiling
men, rare among those photos, were shown more often). Directions in that 100-dimensional space
carry meaning, which is why vectors can be added and subtracted
(Radford et al., 2015):

* **Arithmetic**: the average *z* of a few smiling women, minus that of neutral women, plus that
  of neutral men, lands on smiling men. Three faces per group are averaged, as in the paper,
  because one face carries too much of its own identity. The same sum on *pixels* only makes a
  ghostly double exposure.
* **Neighbours**: eight faces from small random steps around the result (the noise slider).
* **Attribute sliders** move a face along directions found by a classifier: the mean *z* of
  faces it calls smiling minus the mean of faces it calls neutral, and so on. The directions are
  tangled: few women in the training photos wear glasses, so the glasses direction also points
  towards "man". **Keep the other attributes** drops the part of a move that would push the face
  across another attribute it has (or lacks), so a woman gets glasses and stays a woman.
* **Interpolation** walks from one face to another along a great circle (spherical
  interpolation), which keeps every step as typical as the ends.
"""


def parse_group(text, name: str, required: bool = True) -> list[int]:
    items = [t for t in re.split(r"[\s,;]+", str(text or "").strip()) if t]
    indices = []
    for item in items:
        item = item.lstrip("#")
        if not re.fullmatch(r"\d+", item):
            raise gr.Error(f"{name}: {item!r} is not a face number (write e.g. '3, 17, 42').")
        i = int(item)
        if i >= POOL:
            raise gr.Error(f"{name}: face {i} does not exist (faces are numbered 0 to {POOL - 1}).")
        indices.append(i)
    if required and not indices:
        raise gr.Error(f"{name} is empty: click faces in the gallery or pick a preset.")
    if len(indices) > 32:
        raise gr.Error(f"{name} has {len(indices)} faces; at most 32 are averaged.")
    return indices


def face_index(value, name: str) -> int:
    return number(value, name, 0, POOL - 1, integer=True)


def gallery(seed, progress=gr.Progress()):
    """The 64 faces of a seed (numbered; the number is what the groups refer to)."""
    seed = seed_value(seed)
    return mosaic(pipeline(progress).gallery(seed, GALLERY), 8, list(range(GALLERY))), \
        f"Faces of seed {seed}."


def new_seed():
    return int(np.random.default_rng().integers(0, 2**31 - 1))


def pick(seed, preset, progress=gr.Progress()):
    """Let the classifier choose three faces per group for a preset, among the seed's 256."""
    seed = seed_value(seed)
    if preset not in PRESETS:
        raise gr.Error(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    try:
        groups = pipeline(progress).pick(seed, PRESETS[preset], POOL)
    except LookupError as exc:
        raise gr.Error(f"None of the {POOL} faces of seed {seed} fits group {exc.args[0]}; "
                       "try another seed.") from None
    chosen = [", ".join(map(str, g)) for g in groups]
    return *chosen, f"Picked by the classifier among the {POOL} faces of seed {seed}."


def first_visit(seed, preset, progress=gr.Progress()):
    """The preset's groups, or (if the classifier finds none) the first nine faces."""
    try:
        return pick(seed, preset, progress)
    except gr.Error as exc:
        return "0, 1, 2", "3, 4, 5", "6, 7, 8", f"{exc.message} Showing faces 0-8 instead."


def compute(seed, a_text, b_text, c_text, noise, progress=gr.Progress()):
    """A - B + C in latent space, eight neighbours, and the same sum on pixels."""
    seed = seed_value(seed)
    noise = number(noise, "Neighbour noise", 0, 2)
    groups = [parse_group(t, f"Group {n}") for t, n in ((a_text, "A"), (b_text, "B"), (c_text, "C"))]
    out = pipeline(progress).arithmetic(seed, groups, noise)
    notes = [f"group {n} has one face (the paper averages three)"
             for n, g in zip("ABC", groups) if len(g) == 1]
    status = sentence(notes) + f"The classifier reads the result as: {reading(out.reading)}."
    previews = [mosaic(m, 3, g) for m, g in zip(out.groups, groups)]
    return (*previews, enlarge(out.result, 256), mosaic(out.neighbours, 4),
            enlarge(out.pixels, 256), status)


def mosaic(images: np.ndarray, cols: int, labels: list[int] | None = None) -> np.ndarray:
    """Faces side by side (``cols`` per row) on white, each with its number in a corner."""
    return grid(images, cols, cell=TILE, gap=GAP, labels=labels)


def tile_at(x: float, y: float, cols: int, count: int) -> int | None:
    """The face under pixel (x, y) of a mosaic, or None for a gap."""
    step = TILE + GAP
    c, r = int(x) // step, int(y) // step
    if c >= cols or int(x) % step >= TILE or int(y) % step >= TILE:
        return None
    k = r * cols + c
    return k if k < count else None


def edit(seed, face, *values, progress=gr.Progress()):
    """A face moved along the attribute directions: one shift per slider, then (optionally)
    whether to keep the other attributes on their side."""
    seed = seed_value(seed)
    face = face_index(face, "Face")
    *shifts, keep = values
    if keep is None:   # the API may leave the checkbox out: it is on by default
        keep = True
    if not isinstance(keep, bool):
        raise gr.Error("'Keep the other attributes' must be true or false.")
    wanted = {name: number(value, f"{label.capitalize()} shift", -MAX_SHIFT, MAX_SHIFT)
              for (name, label), value in zip(SLIDERS.items(), shifts)}
    out = pipeline(progress).edit(seed, face, wanted, keep)
    missing = [f"no {SLIDERS[n]} direction (too few confident examples)" for n in out.missing]
    note = ""
    if out.held:
        note = (" Held on their side: " + ", ".join(
            f"{SLIDERS.get(n, n)} ({'yes' if has else 'no'})" for n, has in out.held.items()) +
            " (the move lost its part that pointed across them).")
    return (enlarge(out.before, 256), enlarge(out.after, 256), sentence(missing) +
            f"Face #{face}. The classifier reads the edited face as: {reading(out.reading)}.{note}")


def interpolate(seed, start, end, steps, progress=gr.Progress()):
    """Spherical interpolation between two faces: a strip and an animated GIF."""
    seed = seed_value(seed)
    start, end = face_index(start, "Start face"), face_index(end, "End face")
    steps = number(steps, "Steps", 2, 32, integer=True)
    path = pipeline(progress).interpolate(seed, start, end, steps)
    strip = np.concatenate(list(path), axis=1)
    frames = [Image.fromarray(enlarge(f, 192)) for f in path]
    frames += frames[-2:0:-1]  # there and back
    gif = tempfile.NamedTemporaryFile(prefix="gdl-faces-", suffix=".gif", delete=False).name
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=120, loop=0)
    return strip, gif, f"Face #{start} to face #{end} in {steps} steps."


def add_clicked(target, a, b, c, edit_face, start, end, evt: gr.SelectData):
    """A click on a gallery face goes to the group (or the editor / interpolation) chosen above."""
    i = tile_at(*evt.index, 8, GALLERY)
    if i is None:
        return a, b, c, edit_face, start, end
    values = dict(zip(TARGETS[:3], (a, b, c)))
    if target in values:
        current = parse_group(values[target], target, required=False)
        values[target] = ", ".join(map(str, current + [i]))
        return values["group A"], values["group B"], values["group C"], edit_face, start, end
    if target == "attribute editor":
        edit_face = i
    elif target == "interpolation start":
        start = i
    else:
        end = i
    return a, b, c, edit_face, start, end


def first_view(seed, preset, noise, face, start, end, steps, drawn, progress=gr.Progress()):
    """The tab's first view: the seed's gallery, the preset's groups among them, their result,
    the editor's face and the interpolation, so no box starts empty."""
    if drawn:
        return (gr.skip(),) * 16
    image, _ = gallery(seed, progress)
    a, b, c, note = first_visit(seed, preset, progress)
    *views, status = compute(seed, a, b, c, noise, progress)
    before, after, _ = edit(seed, face, *([0] * len(SLIDERS)), True, progress=progress)
    strip, gif, _ = interpolate(seed, start, end, steps, progress)
    return (image, a, b, c, *views, (note if "instead" in note else status), before, after,
            strip, gif, True)


def build(ctx: TabContext) -> None:
    gr.Markdown("### Face arithmetic\nA DCGAN trained by the studio on real faces; its latent "
                "vectors can be added and subtracted. Pick a preset and press **Compute**, or "
                "click faces into the groups yourself.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1,
                                 label="Seed", info="press Enter for its faces; same seed, same faces")
                shuffle = gr.Button("New faces", elem_id="faces-shuffle")
            target = gr.Radio(list(TARGETS), value="group A", label="A click on a face adds it to")
            faces = gr.Image(label="Generated faces (click one to pick it)", format="png",
                             interactive=False, buttons=["download", "fullscreen"],
                             elem_id="faces-gallery")
        with gr.Column(scale=1, min_width=300):
            with gr.Group():
                preset = gr.Radio(list(PRESETS), value=DEFAULT_PRESET, label="Preset")
                pick_btn = gr.Button("Pick faces for the preset", elem_id="faces-pick")
            with gr.Row():
                a = gr.Textbox("", label="A (face numbers)", elem_id="faces-a")
                b = gr.Textbox("", label="B", elem_id="faces-b")
                c = gr.Textbox("", label="C", elem_id="faces-c")
            noise = gr.Slider(0, 2, value=0.5, step=0.05, label="Neighbour noise",
                              info="how far the eight neighbours step from the result")
            run = gr.Button("Compute A - B + C", variant="primary", elem_id="faces-run")
            status = gr.Markdown("", elem_id="faces-status")
            with gr.Row():
                result = gr.Image(label="A - B + C (latent)", format="png", interactive=False,
                                  buttons=["download"], elem_id="faces-result", height=256)
                pixel = gr.Image(label="A - B + C on pixels", format="png", interactive=False,
                                 buttons=["download"], height=256)
            around = gr.Image(label="Eight neighbours", format="png", interactive=False,
                              buttons=["download"], elem_id="faces-around")
            gr.Markdown("The faces of groups A, B and C that were averaged:")
            with gr.Row():
                ga, gb, gc = (gr.Image(label=f"group {n}", show_label=False, format="png",
                                       interactive=False, buttons=[], min_width=90,
                                       elem_id=f"faces-group-{n.lower()}") for n in "ABC")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300):
            gr.Markdown("#### Attribute sliders")
            edit_face = gr.Number(value=0, precision=0, minimum=0, maximum=POOL - 1,
                                  label="Face number")
            sliders = [gr.Slider(-MAX_SHIFT, MAX_SHIFT, value=0, step=0.25, label=label)
                       for label in SLIDERS.values()]
            keep_others = gr.Checkbox(
                value=True, label="Keep the other attributes",
                info="Don't let a move cross the others: glasses for a woman without "
                     "making her a man (this generator links the two).")
            edit_btn = gr.Button("Apply", elem_id="faces-edit")
            with gr.Row():
                before = gr.Image(label="before", format="png", interactive=False, height=200)
                after = gr.Image(label="after", format="png", interactive=False,
                                 buttons=["download"], height=200)
        with gr.Column(min_width=300):
            gr.Markdown("#### Interpolation")
            with gr.Row():
                start = gr.Number(value=0, precision=0, minimum=0, maximum=POOL - 1, label="From face")
                end = gr.Number(value=1, precision=0, minimum=0, maximum=POOL - 1, label="To face")
                steps = gr.Slider(2, 32, value=10, step=1, label="Steps")
            interp_btn = gr.Button("Interpolate", elem_id="faces-interp")
            strip = gr.Image(label="Spherical interpolation", format="png", interactive=False,
                             buttons=["download"])
            animation = gr.Image(label="Animation (GIF)", type="filepath", interactive=False,
                                 buttons=["download"], height=200)
    gr.Markdown(EXPLAIN)
    drawn = gr.State(False)
    shown = dict(fn=gallery, inputs=seed, outputs=[faces, status])
    first = dict(fn=first_visit, inputs=[seed, preset], outputs=[a, b, c, status])
    result_view = dict(fn=compute, inputs=[seed, a, b, c, noise],
                       outputs=[ga, gb, gc, result, around, pixel, status])

    def refresh(event, **api):
        """New faces: the gallery, the preset's groups among them, the result."""
        event.then(**shown, **(api or dict(api_visibility="private"))).then(
            **first, api_visibility="private").then(**result_view, api_visibility="private")

    refresh(shuffle.click(new_seed, None, seed, queue=False, api_visibility="private"))
    refresh(seed.submit(lambda: None, None, None, queue=False, api_visibility="private"),
            api_name="faces_gallery")
    gr.on(ctx.shown, first_view, [seed, preset, noise, edit_face, start, end, steps, drawn],
          [faces, a, b, c, ga, gb, gc, result, around, pixel, status, before, after, strip,
           animation, drawn], api_visibility="private")
    faces.select(add_clicked, [target, a, b, c, edit_face, start, end],
                 [a, b, c, edit_face, start, end], queue=False, api_visibility="private")
    pick_btn.click(pick, [seed, preset], [a, b, c, status], api_name="faces_pick")
    run.click(**result_view, api_name="faces_arithmetic")
    edit_btn.click(edit, [seed, edit_face, *sliders, keep_others], [before, after, status],
                   api_name="faces_edit")
    interp_btn.click(interpolate, [seed, start, end, steps], [strip, animation, status],
                     api_name="faces_interpolate")
