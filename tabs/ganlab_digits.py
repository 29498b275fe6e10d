"""The GAN lab's second page: the chapters' GANs on MNIST and Fashion-MNIST, trained live (a
fixed-noise grid that refreshes as the game goes, the curves, the classifier's measures) beside
the shipped, fully trained generators (their progress, samples and a walk between two seeds).
The maths is models/digitgan.py and models/digits.py."""
from __future__ import annotations

import dataclasses
import functools
import json
import time

import gradio as gr
import numpy as np
import torch
from PIL import Image

from models.digitgan import (KINDS, DigitGAN, DigitGANConfig, DigitGANPipeline, sheet,
                             shipped_available, shipped_name)
from models.digits import (TITLES, Quality, classifier_available, emerged, find_set,
                           load_classifier, quality, read_set)
from models.hub import WEIGHTS_DIR
from models.runtime import fast_bf16, single_threaded

from .common import Lazy, LivePlay, end_live_play, number, seed_value

LEARNING_RATES = [5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3]
MAX_PLAY_SECONDS = 120       # one press of Play
MAX_RUN_SECONDS = 600        # one run's training, all presses together
MAX_ROUNDS = 50_000
MAX_API_ROUNDS = 3_000       # one ganlab_digits_train call
FRAME_SECONDS = 0.5          # the grid about twice a second ...
WORK_SECONDS = 0.3           # ... most of it spent training
QUALITY_SECONDS = 8.0        # the classifier's measures (1,000 samples) this often
QUALITY_SAMPLES = 1000
WORKERS = 3                  # the GAN lab's pool (tabs/ganlab.py): one core per game

EXPLAIN = """
**The chapters' GANs, on real images.** *Simple GAN*: the generator is an MLP
(noise 100 -> 256 -> 512 -> 1024 -> 784 pixels, tanh), the discriminator an MLP (784 -> 1024 -> 512
-> 256 -> 1, LeakyReLU, dropout). *DCGAN*: transposed convolutions up from 7x7, batch norm;
a convolutional discriminator. Each round is one discriminator update (a batch of 64 real and 64
fake images, real labelled 0.9: one-sided label smoothing) and one generator update
(non-saturating loss), Adam with beta1 = 0.5.

* **The grid** is the same 64 noise vectors all run long: you watch the same samples change.
* **D(x), D(G(z))**: the discriminator's mean verdict on real and fake images (1 = real).
* **Measures**, on 1,000 samples, by a small classifier the studio trained on the real set:
  the *Fréchet distance* between its features of the samples and of the real test set (lower is
  better; real images score the figure in brackets), the *classes covered* (read for at least 1%
  of the samples: mode collapse shows as fewer), the *confidence* (its mean top probability),
  and the share of samples it is at least 90% sure of (*recognisable*).
* Everything trains on one core of this server: the DCGAN (the default) draws digits the
  classifier is sure of, of nine or ten kinds, after about a minute; the simple GAN, whose rounds
  are faster but teach it less, after about two. A run trains at most 10 minutes (2 minutes per
  press of Play); two runs train at once and the rest wait in line.
* **Fully trained**: the same code run to the end by `train/digitgan.py` (30 epochs for the
  simple GAN, 10 for the DCGAN), with its measures on 10,000 samples.
"""


@dataclasses.dataclass
class Run(LivePlay):
    """One visitor's digit GAN (``game``, a DigitGAN) and its latest measures."""
    quality: Quality | None = None
    quality_round: int = -1
    emerged: tuple | None = None          # (round, seconds) when digits first emerged (models.digits.emerged)


def fresh(run) -> Run:
    return run if isinstance(run, Run) else Run()


def work(fn, *args):
    return single_threaded(WORKERS).submit(fn, *args).result()


@functools.lru_cache(maxsize=2)
def training_images(dataset: str) -> np.ndarray | None:
    """The server's copy of the training set (shared by every run), or None."""
    folder = find_set(dataset)
    return None if folder is None else np.require(read_set(folder, "train")[0], np.uint8, "CW")


CLASSIFIERS = {d: Lazy(f"the {TITLES[d]} classifier", lambda report, d=d: load_classifier(d))
               for d in TITLES}
SHIPPED = {(k, d): Lazy(f"the trained {KINDS[k]} on {TITLES[d]}",
                        lambda report, k=k, d=d: DigitGANPipeline.from_pretrained(WEIGHTS_DIR / shipped_name(k, d)))
           for k in KINDS for d in TITLES}


@functools.lru_cache(maxsize=None)
def floor(dataset: str) -> float | None:
    """The judge's real-vs-real Fréchet distance at QUALITY_SAMPLES (read once: every frame
    shows it)."""
    path = WEIGHTS_DIR / f"digit-classifier-{dataset}" / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["floor"][str(QUALITY_SAMPLES)]["frechet"]


def config_from(dataset, kind, lr_d, lr_g, seed) -> DigitGANConfig:
    if dataset not in TITLES:
        raise gr.Error(f"Data set must be one of {list(TITLES)} (got {dataset!r}).")
    if kind not in KINDS:
        raise gr.Error(f"Model must be one of {list(KINDS)} (got {kind!r}).")
    return DigitGANConfig(kind=kind, dataset=dataset, seed=seed_value(seed),
                          lr_d=number(lr_d, "D learning rate", 1e-5, 1e-2),
                          lr_g=number(lr_g, "G learning rate", 1e-5, 1e-2))


def sync(run: Run, config: DigitGANConfig) -> DigitGAN:
    """The run for these settings: the same game with new learning rates, or a new one."""
    with run.lock:
        old = run.game.config if run.game is not None else None
        if old is not None and (old.kind, old.dataset, old.seed) == (config.kind, config.dataset, config.seed):
            run.game.tune(config.lr_d, config.lr_g)
            return run.game
        images = training_images(config.dataset)
        if images is None:
            raise gr.Error(f"This server has no copy of {TITLES[config.dataset]} to train on "
                           "(`make digits` puts one in data/digits). The trained generator "
                           "below was trained on it.")
        run.game, run.quality, run.quality_round, run.emerged = (
            DigitGAN(config, images, bf16=fast_bf16("cpu")), None, -1, None)
        return run.game


def measure(run: Run) -> None:
    """The classifier's measures of the current generator (on the worker, the game locked)."""
    game = run.game
    if game is None or run.quality_round == game.steps or not classifier_available(game.config.dataset):
        return
    clf = CLASSIFIERS[game.config.dataset].get()
    with run.lock:
        images = game.sample(QUALITY_SAMPLES, torch.Generator().manual_seed(1234))
        steps, seconds = game.steps, game.seconds
    run.quality, run.quality_round = quality(clf, images), steps
    if run.emerged is None and emerged(run.quality.recognisable, run.quality.classes_covered):
        run.emerged = (steps, seconds)


def idle_note(dataset: str) -> str:
    if find_set(dataset) is None:
        return (f"This server has no copy of {TITLES[dataset]} to train on (`make digits` puts one "
                "in data/digits): the trained generator is on the right.")
    return f"Press Play to train a GAN on {TITLES[dataset]} from scratch."


def status_line(run: Run, note: str = "") -> str:
    game = run.game
    if game is None:
        return note or "Press Play to train a GAN from scratch."
    if not game.history:
        text = f"A new {KINDS[game.config.kind]} for {TITLES[game.config.dataset]}: pure noise so far."
    else:
        h = game.history[-1]
        text = (f"**Round {game.steps:,}** ({game.epochs:.2f} epochs, {game.seconds:.0f} s of "
                f"training): losses D {h.d_loss:.2f}, G {h.g_loss:.2f}; D(x) {h.d_real:.2f}, "
                f"D(G(z)) {h.d_fake:.2f}.")
    q = run.quality
    if q is not None:
        text += f" At round {run.quality_round:,}: {q.summary(floor(game.config.dataset))}."
    if run.emerged is not None:
        what = "Digits" if game.config.dataset == "mnist" else "Clothes"
        text += (f" {what} emerged (half the samples recognisable, 9+ classes) at round "
                 f"{run.emerged[0]:,}, after {run.emerged[1]:.0f} s.")
    return f"{text} {note}".strip()


def view(run: Run, note: str = ""):
    if run.game is None:
        return None, None, status_line(run, note)
    with run.lock:
        return run.game.grid(), run.game.curves(480, 200), status_line(run, note)


# ------------------------------------------------------------------ events


def play(run, dataset, kind, lr_d, lr_g, seed):
    """Train and redraw until paused, MAX_PLAY_SECONDS, or the run's cap."""
    run = fresh(run)
    config = config_from(dataset, kind, lr_d, lr_g, seed)
    if run.playing:
        yield gr.skip(), gr.skip(), "Already training (press Pause first).", run
        return
    game = work(sync, run, config)
    run.paused, run.heartbeat = False, time.monotonic()
    run.loops += 1
    note = None
    try:
        start, last_quality, rate = time.monotonic(), 0.0, 50.0
        while not run.paused:
            frame = time.monotonic()
            run.heartbeat = frame
            if game.seconds >= MAX_RUN_SECONDS or game.steps >= MAX_ROUNDS:
                note = f"This run has trained its {MAX_RUN_SECONDS // 60} minutes: press New run."
                break
            if frame - start > MAX_PLAY_SECONDS:
                note = f"Paused after {MAX_PLAY_SECONDS} s: press Play to go on."
                break
            rounds = max(1, min(int(rate * WORK_SECONDS), MAX_ROUNDS - game.steps))
            t = time.monotonic()
            work(run.locked, game.step, rounds)
            rate = 0.7 * rate + 0.3 * rounds / max(time.monotonic() - t, 1e-4)
            if frame - last_quality > QUALITY_SECONDS:
                work(measure, run)
                last_quality = time.monotonic()
            if run.paused or run.game is not game:
                return
            yield (*work(view, run), run)
            time.sleep(max(0.0, FRAME_SECONDS - (time.monotonic() - frame)))
    finally:
        run.heartbeat = 0.0
        run.loops -= 1
    if note is not None:
        work(measure, run)
        yield (*work(view, run, note), run)


def pause(run):
    run = fresh(run)
    run.stop()
    if run.game is None:
        return gr.skip(), gr.skip(), "Paused.", run
    work(measure, run)
    return (*work(view, run, "Paused: press Play to go on."), run)


def new_run(run, dataset, kind, lr_d, lr_g, seed):
    run = fresh(run)
    if run.playing:
        raise gr.Error("Pause the run first.")
    run.game = None
    work(sync, run, config_from(dataset, kind, lr_d, lr_g, seed))
    return (*work(view, run, "A new run: press Play."), run)


def idle_status(run, dataset):
    """The data set changed: say what Play will do (a run in progress keeps its status)."""
    run = fresh(run)
    if run.playing or dataset not in TITLES:
        return gr.skip()
    if run.game is not None and run.game.config.dataset == dataset:
        return gr.skip()
    note = idle_note(dataset)
    return note if run.game is None else note.replace("Press Play to train", "Press Play or New run to train")


def retune(run, dataset, kind, lr_d, lr_g, seed):
    """A learning rate changed: a run in progress takes it from its next round."""
    run = fresh(run)
    config = config_from(dataset, kind, lr_d, lr_g, seed)
    if run.game is not None:
        with run.lock:
            run.game.tune(config.lr_d, config.lr_g)
    return run


def train(dataset, kind, lr_d, lr_g, seed, rounds):
    """For code (gradio_client): a fresh run of ``rounds`` rounds; the grid, the curves and the
    measures."""
    rounds = number(rounds, "Rounds", 1, MAX_API_ROUNDS, integer=True)
    run = Run()
    config = config_from(dataset, kind, lr_d, lr_g, seed)
    game = work(sync, run, config)
    deadline = time.monotonic() + MAX_PLAY_SECONDS
    while game.steps < rounds and time.monotonic() < deadline:
        work(run.locked, game.step, min(100, rounds - game.steps))
    work(measure, run)
    grid, curves, _ = work(view, run)
    h = game.history[-1]
    measures = dict(rounds=game.steps, seconds=game.seconds, d_loss=h.d_loss, g_loss=h.g_loss,
                    d_real=h.d_real, d_fake=h.d_fake,
                    **(dataclasses.asdict(run.quality) if run.quality else {}))
    return grid, curves, measures


# ------------------------------------------------------------------ the shipped generators


def shipped(kind, dataset, progress: gr.Progress | None = None):
    if (kind, dataset) not in SHIPPED:
        raise gr.Error(f"Model must be one of {list(KINDS)} and data set one of {list(TITLES)}.")
    if not shipped_available(kind, dataset):
        raise gr.Error(f"No trained {KINDS[kind]} for {TITLES[dataset]} ships with this studio yet.")
    return SHIPPED[(kind, dataset)].get(progress)


def shipped_view(dataset, kind, seed, progress=gr.Progress()):
    """The shipped generator's card figures and 64 samples for a seed."""
    if (kind, dataset) not in SHIPPED:
        raise gr.Error(f"Model must be one of {list(KINDS)} and data set one of {list(TITLES)}.")
    seed = seed_value(seed)
    if not shipped_available(kind, dataset):
        return None, None, None, (f"No trained {KINDS[kind]} for {TITLES[dataset]} ships with "
                                  "this studio yet.")
    pipe = shipped(kind, dataset, progress)
    folder = WEIGHTS_DIR / shipped_name(kind, dataset)
    samples = work(lambda: sheet(pipe(seed=seed, n=64), cols=8, cell=56))
    sheet_im = np.asarray(Image.open(folder / "progress.png").convert("L"))
    curve = np.asarray(Image.open(folder / "curve.png").convert("RGB"))
    return samples, sheet_im, curve, shipped_summary(folder)


def shipped_summary(folder) -> str:
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    t, q = config["training"], metrics["samples"]["10000"]
    fl = metrics["floor"].get("10000", {}).get("frechet")
    rounds = metrics["progress_rounds"]
    text = (f"Trained {t['rounds']:,} rounds ({t['epochs']:.0f} epochs, {t['seconds'] / 60:.0f} min "
            f"on this kind of CPU). On 10,000 samples: Fréchet distance {q['frechet']:.2f}"
            + (f" (real images: {fl:.2f})" if fl is not None else "")
            + f"; {q['classes_covered']}/10 classes covered; confidence {q['confidence']:.0%}; "
            f"{q['recognisable']:.0%} recognisable.")
    if metrics.get("emerged_at"):
        r = metrics["emerged_at"]
        text += (f" Half its samples were recognisable, of 9+ classes, from round {r['round']:,} "
                 f"({r['seconds']:.0f} s of training).")
    text += " Progress rows: rounds " + ", ".join(f"{k:,}" for k in rounds) + "."
    return text


def walk(dataset, kind, seed_a, seed_b, progress=gr.Progress()):
    pipe = shipped(kind, dataset, progress)
    a, b = seed_value(seed_a), seed_value(seed_b)
    return work(lambda: sheet(pipe.interpolate(a, b, steps=10, rows=4), cols=10, cell=48))


# ------------------------------------------------------------------ layout


def build(max_runs: int) -> tuple:
    """The page's widgets and events (its runs share the GAN lab's ``max_runs`` places);
    returns what draws it when it is shown."""
    run = gr.State(None, time_to_live=3600, delete_callback=end_live_play)
    with gr.Accordion("What you see, and what the knobs do", open=False):
        gr.Markdown(EXPLAIN)
    with gr.Row():
        dataset = gr.Radio([(v, k) for k, v in TITLES.items()], value="mnist", label="Data set",
                           elem_id="digits-dataset")
        kind = gr.Radio([(v, k) for k, v in KINDS.items()], value="dcgan", label="Model",
                        elem_id="digits-kind")
    with gr.Row():
        with gr.Column(scale=3, min_width=300):
            gr.Markdown("#### Trained live, on this server")
            with gr.Row():
                play_btn = gr.Button("Play", variant="primary", elem_id="digits-play", min_width=80)
                pause_btn = gr.Button("Pause", variant="stop", elem_id="digits-pause", min_width=80)
                new_btn = gr.Button("New run", elem_id="digits-new", min_width=80)
            status = gr.Markdown(idle_note("mnist"), elem_id="digits-status")
            grid = gr.Image(label="The same 64 noise vectors, as the generator draws them now",
                            format="png", interactive=False, elem_id="digits-grid", buttons=["download"])
            curves = gr.Image(label="Losses and D's verdicts", format="png", interactive=False,
                              elem_id="digits-curves", buttons=["download"])
            with gr.Row():
                lr_d = gr.Dropdown(LEARNING_RATES, value=2e-4, label="D learning rate", min_width=120)
                lr_g = gr.Dropdown(LEARNING_RATES, value=2e-4, label="G learning rate", min_width=120)
                seed = gr.Number(value=0, precision=0, label="Seed", min_width=100)
        with gr.Column(scale=3, min_width=300):
            gr.Markdown("#### Fully trained (shipped)")
            shipped_status = gr.Markdown("", elem_id="digits-shipped-status")
            with gr.Row():
                sample_seed = gr.Number(value=0, precision=0, label="Seed", min_width=100)
                sample_btn = gr.Button("New samples", elem_id="digits-samples", min_width=100)
            samples = gr.Image(label="64 samples", format="png", interactive=False,
                               elem_id="digits-shipped", buttons=["download"])
            progress_im = gr.Image(label="The fixed noise during training (one row per checkpoint)",
                                   format="png", interactive=False, elem_id="digits-progress",
                                   buttons=["download"])
            shipped_curve = gr.Image(label="Its training curve", format="png", interactive=False,
                                     buttons=["download"])
            with gr.Row():
                seed_a = gr.Number(value=0, precision=0, label="From seed", min_width=90)
                seed_b = gr.Number(value=1, precision=0, label="To seed", min_width=90)
                walk_btn = gr.Button("Walk between them", elem_id="digits-walk", min_width=100)
            walk_im = gr.Image(label="Four walks through the noise (spherical interpolation)",
                               format="png", interactive=False, elem_id="digits-walk-image",
                               buttons=["download"])
    live = [dataset, kind, lr_d, lr_g, seed]
    outputs = [grid, curves, status, run]
    playing = play_btn.click(play, [run, *live], outputs, api_name="ganlab_digits_play",
                             concurrency_id="ganlab", concurrency_limit=max_runs)
    pause_btn.click(pause, [run], outputs, cancels=[playing], api_name="ganlab_digits_pause",
                    queue=False)
    new_btn.click(new_run, [run, *live], outputs, api_name="ganlab_digits_new",
                  concurrency_id="ganlab-step")
    dataset.input(idle_status, [run, dataset], [status], api_visibility="private", queue=False)
    for knob in (lr_d, lr_g):
        knob.input(retune, [run, *live], [run], api_visibility="private", queue=False)
    shipped_out = [samples, progress_im, shipped_curve, shipped_status]
    sample_btn.click(shipped_view, [dataset, kind, sample_seed], shipped_out,
                     api_name="ganlab_digits_samples", concurrency_id="ganlab-step")
    for trigger in (dataset.input, kind.input):
        trigger(shipped_view, [dataset, kind, sample_seed], shipped_out, api_visibility="private",
                concurrency_id="ganlab-step")
    walk_btn.click(walk, [dataset, kind, seed_a, seed_b], [walk_im], api_name="ganlab_digits_walk",
                   concurrency_id="ganlab-step")
    with gr.Row(visible=False):
        api_run = gr.Button("train")
        rounds_in = gr.Number(label="rounds")
        grid_out, curves_out = gr.Image(format="png"), gr.Image(format="png")
        measures_out = gr.JSON(label="measures")
    api_run.click(train, [*live, rounds_in], [grid_out, curves_out, measures_out],
                  api_name="ganlab_digits_train", concurrency_id="ganlab", concurrency_limit=max_runs)
    return shipped_view, [dataset, kind, sample_seed], shipped_out
