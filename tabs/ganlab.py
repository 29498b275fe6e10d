"""GAN lab tab: a GAN on 2-D points trained live, update by update, with named experiments that
reproduce the chapters' warnings; the game itself is models/ganlab.py."""
from __future__ import annotations

import dataclasses
import time

import gradio as gr
import numpy as np

from models.ganlab import (BOX, EXPERIMENTS, LOSSES, MAX_DRAWN, TARGETS, ToyConfig, ToyGAN,
                           experiment_config)

from models.runtime import single_threaded

from . import ganlab_digits
from .common import LivePlay, TabContext, Technique, end_live_play, number, seed_value

TECHNIQUE = Technique("ganlab", "GAN lab", "images",
                      "Watch a GAN learn, live: on 2-D points, then on digits and clothes.",
                      tab="GAN lab")
AVAILABLE = True           # nothing to load: every game starts from scratch
PIPELINES: dict = {}
SIZE = 480                 # the plane's picture, pixels a side
MAX_RUNS = 2               # games playing at once on the server; the rest wait in line
MAX_PLAY_SECONDS = 90      # one press of Play; press again to go on
MAX_ROUNDS = 50_000        # one game
MAX_API_ROUNDS = 5_000     # one ganlab_train call
FRAME_SECONDS = 0.25       # a picture about four times a second ...
WORK_SECONDS = 0.12        # ... about half of it spent training, so other tabs stay responsive
SPEEDS = {"one round per picture": 1, "a few rounds per picture": 5, "as fast as it goes": None}
LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1]
LAYERS = ["verdict heat map", "generator grid", "gradient arrows", "points"]
WORKERS = MAX_RUNS + 1    # the games' own threads, one core each (models.runtime.single_threaded)
SETTINGS = ["target", "loss", "optimiser", "lr_d", "lr_g", "d_steps", "width", "depth",
            "noise_dim", "batch", "head_start", "seed"]

EXPLAIN = """
**The game.** The *generator* G turns random noise into points; the *discriminator* D sees real
points (green) and G's fakes (purple) and learns to tell them apart. Each **round** is
*D steps* updates of D, then one update of G towards whatever D currently calls real.

* **Background**: D's verdict on every spot of the plane: green where it says *real*, purple
  where it says *fake* (for the Wasserstein critic, its score scaled to the picture).
* **Grid**: where G sends a square grid of noise (the first two noise numbers): the sheet G
  folds and stretches over the target.
* **Arrows**: the gradient of G's loss at some fake points, the way G is about to move them.
  Their length is relative (the longest is drawn the same in every picture); the status line
  gives the real size (*push*).
* **Loss**: *minimax* is the original objective, log(1 - D(G(z))); *non-saturating* maximises
  log D(G(z)) instead (the same fixed point, steep where D is sure); *least squares* uses
  squared errors; *Wasserstein + gradient penalty* trains a critic whose gradient is kept near 1.
* **Modes covered**: for the mixtures (ring, two Gaussians, your points), how many modes hold
  at least 1% of the fakes. **JS divergence**: between real and fake points counted on a 40x40
  grid, 0 (the same) to 1 bit (nothing in common).
* Learning rates, D steps, the loss and the batch change the game while it plays; the target,
  network sizes, noise, optimiser, head start and seed start a new one.
"""


@dataclasses.dataclass
class Lab(LivePlay):
    """One visitor's 2-D game (``game``, a ToyGAN) and the points they placed."""
    points: list = dataclasses.field(default_factory=list)

    def sync(self, config: ToyConfig) -> ToyGAN:
        """The game for these settings: the same game re-tuned, or a new one."""
        live = {"loss", "lr_d", "lr_g", "d_steps", "batch", "gp_weight"}
        with self.lock:
            old = self.game.config if self.game is not None else None
            same = old is not None and all(getattr(old, f.name) == getattr(config, f.name)
                                           for f in dataclasses.fields(ToyConfig) if f.name not in live)
            if same:
                self.game.tune(**{k: getattr(config, k) for k in live})
            else:
                self.game = ToyGAN(config)
            return self.game


def config_from(values: list, points: list) -> ToyConfig:
    """Settings (in SETTINGS order) checked one by one: a clear gr.Error, never a stack trace."""
    s = dict(zip(SETTINGS, values))
    if s["target"] not in TARGETS:
        raise gr.Error(f"Target must be one of {list(TARGETS)} (got {s['target']!r}).")
    if s["loss"] not in LOSSES:
        raise gr.Error(f"Loss must be one of {list(LOSSES)} (got {s['loss']!r}).")
    if s["optimiser"] not in ("adam", "sgd"):
        raise gr.Error(f"Optimiser must be 'adam' or 'sgd' (got {s['optimiser']!r}).")
    if s["target"] == "drawn" and not points:
        raise gr.Error("Click on the plane to place your points first (the target 'Your points').")
    return ToyConfig(
        target=s["target"], loss=s["loss"], optimiser=s["optimiser"],
        lr_d=number(s["lr_d"], "D learning rate", 1e-5, 1.0),
        lr_g=number(s["lr_g"], "G learning rate", 1e-5, 1.0),
        d_steps=number(s["d_steps"], "D steps per round", 1, 10, integer=True),
        width=number(s["width"], "Width", 4, 256, integer=True),
        depth=number(s["depth"], "Hidden layers", 1, 4, integer=True),
        noise_dim=number(s["noise_dim"], "Noise numbers", 1, 64, integer=True),
        batch=number(s["batch"], "Batch", 8, 1024, integer=True),
        head_start=number(s["head_start"], "D head start", 0, 2000, integer=True),
        seed=seed_value(s["seed"]), points=[tuple(p) for p in points])


def layers_from(show) -> dict:
    show = show or []
    if isinstance(show, str):
        show = [show]
    unknown = [x for x in show if x not in LAYERS]
    if unknown:
        raise gr.Error(f"Unknown layers {unknown}; choose from {LAYERS}.")
    return dict(heat=LAYERS[0] in show, grid=LAYERS[1] in show, arrows=LAYERS[2] in show,
                points=LAYERS[3] in show)


def status_line(game: ToyGAN, note: str = "") -> str:
    m = game.measure()
    if not game.history:
        text = f"Round 0 of a new game: {m.summary()}."
        if game.config.head_start:
            text += f" D was trained {game.config.head_start:,} updates ahead."
    else:
        h = game.history[-1]
        v = {"wgan-gp": "critic", "lsgan": "D output"}.get(game.config.loss, "D")
        text = (f"**Round {h.step:,}**: {m.summary()}. Losses: D {h.d_loss:.3f}, G {h.g_loss:.3f}; "
                f"{v} on real {h.d_real:.2f}, on fake {h.d_fake:.2f}; push {h.g_push:.3g}.")
    return f"{text} {note}".strip()


def pictures(game: ToyGAN | None, show: dict, note: str = "", points: list | None = None):
    if game is None:     # "Your points" with none placed yet: an empty plane to click on
        return empty_plane(points or []), None, ("Click on the plane to place points; each click "
                                                 "is a small Gaussian blob. Then press Play. " + note).strip()
    return game.field(SIZE, **show), game.curves(SIZE, 200), status_line(game, note)


def empty_plane(points: list) -> np.ndarray:
    im = np.full((SIZE, SIZE, 3), 250, np.uint8)
    im[SIZE // 2, :] = im[:, SIZE // 2] = 215
    for x, y in points:
        c, r = int((x + BOX) / (2 * BOX) * SIZE), int((BOX - y) / (2 * BOX) * SIZE)
        im[max(0, r - 5):r + 6, max(0, c - 1):c + 2] = 0
        im[max(0, r - 1):r + 2, max(0, c - 5):c + 6] = 0
    return im


def work(fn, *args, **kwargs):
    """Run a game's computation on the single-threaded workers."""
    return single_threaded(WORKERS).submit(fn, *args, **kwargs).result()


def fresh(lab: Lab | None) -> Lab:
    return lab if isinstance(lab, Lab) else Lab()


# ------------------------------------------------------------------ events


def show_game(lab, *values):
    """Draw the game for these settings (new if they need one), without playing."""
    lab = fresh(lab)
    *settings, show = values
    layers = layers_from(show)
    if settings[0] == "drawn" and not lab.points:
        lab.game = None
        return (*pictures(None, layers), lab)
    game = work(lab.sync, config_from(settings, lab.points))
    return (*work(lab.locked, pictures, game, layers, "Press Play." if not game.history else ""), lab)


def settings_changed(lab, *values):
    """A knob moved: re-tune or restart the game; redraw unless a Play loop is drawing."""
    lab = fresh(lab)
    if lab.playing:
        *settings, _ = values
        if not (settings[0] == "drawn" and not lab.points):
            work(lab.sync, config_from(settings, lab.points))
        return gr.skip(), gr.skip(), gr.skip(), lab
    return show_game(lab, *values)


def play(lab, speed, *values):
    """Train and redraw about four times a second until paused, MAX_PLAY_SECONDS or MAX_ROUNDS."""
    lab = fresh(lab)
    if speed not in SPEEDS:
        raise gr.Error(f"Speed must be one of {list(SPEEDS)}.")
    *settings, show = values
    layers = layers_from(show)
    if lab.playing:
        yield gr.skip(), gr.skip(), "Already playing (press Pause first).", lab
        return
    work(lab.sync, config_from(settings, lab.points))
    lab.paused, lab.heartbeat = False, time.monotonic()
    lab.loops += 1
    try:
        note = yield from frames(lab, SPEEDS[speed], layers)
    finally:                           # ended, paused or cancelled: no loop is drawing now
        lab.heartbeat = 0.0
        lab.loops -= 1
    if note is not None:
        yield (*work(lab.locked, pictures, lab.game, layers, note), lab)


def frames(lab: Lab, per_frame: int | None, layers: dict):
    """The Play loop's pictures; returns the note for the last one (None when paused)."""
    start, rate = time.monotonic(), 20.0
    while not lab.paused:
        frame_start = time.monotonic()
        lab.heartbeat = frame_start
        game = lab.game                # a knob may have started a new game meanwhile
        if game is None:
            return "Place your points, then press Play."
        if game.steps >= MAX_ROUNDS:
            return f"This game reached its {MAX_ROUNDS:,} rounds: press New game."
        if frame_start - start > MAX_PLAY_SECONDS:
            return f"Paused after {MAX_PLAY_SECONDS} s: press Play to go on."
        rounds = min(per_frame or max(1, int(rate * WORK_SECONDS)), MAX_ROUNDS - game.steps)
        t = time.monotonic()
        work(lab.locked, game.step, rounds)
        rate = 0.7 * rate + 0.3 * rounds / max(time.monotonic() - t, 1e-4)   # rounds/s, smoothed
        if lab.paused:                 # Pause drew the last picture; this one would cover it
            return None
        yield (*work(lab.locked, pictures, game, layers), lab)
        time.sleep(max(0.0, FRAME_SECONDS - (time.monotonic() - frame_start)))
    return None


def pause(lab, show):
    lab = fresh(lab)
    lab.stop()
    if lab.game is None:
        return gr.skip(), gr.skip(), "Paused.", lab
    return (*work(lab.locked, pictures, lab.game, layers_from(show), "Paused: press Play to go on."), lab)


def one_update(which: str):
    def update(lab, *values):
        lab = fresh(lab)
        *settings, show = values
        if lab.playing:
            raise gr.Error("Pause the game first, then step through it.")
        game = work(lab.sync, config_from(settings, lab.points))
        if game.steps >= MAX_ROUNDS:
            raise gr.Error(f"This game reached its {MAX_ROUNDS:,} rounds: press New game.")
        if which == "d":
            work(lab.locked, game.d_update)
            note = "One D update: the background moved, the points did not."
        else:
            work(lab.locked, game.g_update)
            note = "One G update: the points moved along the arrows, the background did not."
        return (*work(lab.locked, pictures, game, layers_from(show), note), lab)
    return update


def new_game(lab, *values):
    lab = fresh(lab)
    lab.game, lab.heartbeat = None, 0.0
    return show_game(lab, *values)


def choose_experiment(lab, name, show):
    """Set every knob to a named experiment's values and start it fresh."""
    if name not in EXPERIMENTS:
        raise gr.Error(f"Experiment must be one of {list(EXPERIMENTS)} (got {name!r}).")
    lab = fresh(lab)
    config = experiment_config(name, points=lab.points)
    values = [getattr(config, k) for k in SETTINGS]
    lab.game, lab.heartbeat = None, 0.0
    field, curves, status, lab = show_game(lab, *values, show)
    e = EXPERIMENTS[name]
    return (*values, f"**{e.title}.** {e.lesson} (Press Play; about {e.rounds:,} rounds.)",
            field, curves, status, lab)


def click_plane(lab, show, target, loss, optimiser, lr_d, lr_g, d_steps, width, depth, noise_dim,
                batch, head_start, seed, evt: gr.SelectData):
    """A click on the plane adds a blob to "Your points" and starts a game on them."""
    lab = fresh(lab)
    if len(lab.points) >= MAX_DRAWN:
        raise gr.Error(f"At most {MAX_DRAWN} points; press Clear points to start over.")
    x, y = evt.index
    lab.points.append((round(x / SIZE * 2 * BOX - BOX, 3), round(BOX - y / SIZE * 2 * BOX, 3)))
    lab.game = None
    field, curves, status, lab = show_game(lab, "drawn", loss, optimiser, lr_d, lr_g, d_steps,
                                           width, depth, noise_dim, batch, head_start, seed, show)
    return "drawn", field, curves, status, lab


def clear_points(lab, *values):
    lab = fresh(lab)
    lab.points = []
    if values[0] == "drawn":
        lab.game = None
    return show_game(lab, *values)


def train(*values):
    """For code (gradio_client): a fresh game with these settings played ``rounds`` rounds;
    returns the plane, the curves and the measures."""
    *settings, points, rounds = values
    rounds = number(rounds, "Rounds", 1, MAX_API_ROUNDS, integer=True)
    points = parse_points(points)
    return work(play_whole, config_from(settings, points), rounds)


def play_whole(config: ToyConfig, rounds: int):
    game = ToyGAN(config)
    deadline = time.monotonic() + MAX_PLAY_SECONDS
    for _ in game.stream(rounds, 50, lambda: time.monotonic() > deadline):
        pass
    m, h = game.measure(), game.history[-1]
    return (game.field(SIZE), game.curves(SIZE, 200),
            dict(rounds=game.steps, **dataclasses.asdict(m), d_loss=h.d_loss, g_loss=h.g_loss,
                 d_real=h.d_real, d_fake=h.d_fake, g_push=h.g_push))


def parse_points(points) -> list:
    if points in (None, "", []):
        return []
    try:
        arr = np.asarray(points, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError):
        raise gr.Error("Points must be a list of [x, y] pairs.")
    if len(arr) > MAX_DRAWN:
        raise gr.Error(f"At most {MAX_DRAWN} points.")
    if not np.isfinite(arr).all() or (np.abs(arr) > BOX).any():
        raise gr.Error(f"Points must be finite and within [-{BOX:g}, {BOX:g}].")
    return [tuple(map(float, p)) for p in arr]


# ------------------------------------------------------------------ layout


def build(ctx: TabContext) -> None:
    """Two pages: the 2-D game, and the chapters' GANs on MNIST and Fashion-MNIST."""
    with gr.Tabs(elem_id="ganlab-pages"):
        with gr.Tab("2-D points", id="ganlab-toy"):
            build_toy(ctx)
        with gr.Tab("Digits and clothes", id="ganlab-digits", elem_id="ganlab-digits-page") as page:
            show_digits, inputs, outputs = ganlab_digits.build(MAX_RUNS)
    page.select(show_digits, inputs, outputs, api_visibility="private")


def build_toy(ctx: TabContext) -> None:
    lab = gr.State(None, time_to_live=3600, delete_callback=end_live_play)
    defaults = ToyConfig()
    with gr.Accordion("What you see, and what the knobs do", open=False):
        gr.Markdown(EXPLAIN)
    with gr.Row():
        with gr.Column(scale=3, min_width=300):
            with gr.Row():
                play_btn = gr.Button("Play", variant="primary", elem_id="ganlab-play", min_width=80)
                pause_btn = gr.Button("Pause", variant="stop", elem_id="ganlab-pause", min_width=80)
                new_btn = gr.Button("New game", elem_id="ganlab-new", min_width=80)
            status = gr.Markdown("", elem_id="ganlab-status")
            field = gr.Image(label="The plane (click it to place your own points)", format="png",
                             interactive=False, elem_id="ganlab-field",
                             buttons=["download"])
            curves = gr.Image(label="Losses and D's verdicts",
                              format="png", interactive=False, elem_id="ganlab-curves",
                              buttons=["download"])
        with gr.Column(scale=2, min_width=280):
            experiment = gr.Dropdown([(e.title, k) for k, e in EXPERIMENTS.items()], value="default",
                                     label="Named experiment", elem_id="ganlab-experiment")
            lesson = gr.Markdown(f"**{EXPERIMENTS['default'].title}.** {EXPERIMENTS['default'].lesson}")
            with gr.Row():
                d_btn = gr.Button("One D update", size="sm", elem_id="ganlab-d")
                g_btn = gr.Button("One G update", size="sm", elem_id="ganlab-g")
            speed = gr.Radio(list(SPEEDS), value="as fast as it goes", label="Speed")
            target = gr.Radio([(v, k) for k, v in TARGETS.items()], value=defaults.target,
                              label="Target (Your points: click the plane)")
            clear_btn = gr.Button("Clear points", size="sm")
            loss = gr.Dropdown([(v, k) for k, v in LOSSES.items()], value=defaults.loss, label="Loss")
            with gr.Row():
                lr_d = gr.Dropdown(LEARNING_RATES, value=defaults.lr_d, label="D learning rate",
                                   min_width=120)
                lr_g = gr.Dropdown(LEARNING_RATES, value=defaults.lr_g, label="G learning rate",
                                   min_width=120)
            d_steps = gr.Slider(1, 10, value=defaults.d_steps, step=1, label="D steps per round")
            optimiser = gr.Radio(["adam", "sgd"], value=defaults.optimiser, label="Optimiser")
            with gr.Accordion("Networks and noise (start a new game)", open=False):
                width = gr.Slider(4, 256, value=defaults.width, step=4, label="Width (units per layer)")
                depth = gr.Slider(1, 4, value=defaults.depth, step=1, label="Hidden layers")
                noise_dim = gr.Slider(1, 64, value=defaults.noise_dim, step=1, label="Noise numbers")
                batch = gr.Slider(8, 1024, value=defaults.batch, step=8, label="Batch")
                head_start = gr.Slider(0, 2000, value=defaults.head_start, step=100,
                                       label="D head start (updates before the game)")
                seed = gr.Number(value=defaults.seed, precision=0, label="Seed")
            show = gr.CheckboxGroup(LAYERS, value=LAYERS, label="Show")
    knobs = [target, loss, optimiser, lr_d, lr_g, d_steps, width, depth, noise_dim, batch,
             head_start, seed]
    inputs = [lab, *knobs, show]
    outputs = [field, curves, status, lab]

    playing = play_btn.click(play, [lab, speed, *knobs, show], outputs, api_name="ganlab_play",
                             concurrency_id="ganlab", concurrency_limit=MAX_RUNS)
    pause_btn.click(pause, [lab, show], outputs, cancels=[playing], api_name="ganlab_pause",
                    queue=False)
    new_btn.click(new_game, inputs, outputs, api_name="ganlab_new", concurrency_id="ganlab-step")
    d_btn.click(one_update("d"), inputs, outputs, api_name="ganlab_d_update",
                concurrency_id="ganlab-step")
    g_btn.click(one_update("g"), inputs, outputs, api_name="ganlab_g_update",
                concurrency_id="ganlab-step")
    experiment.input(choose_experiment, [lab, experiment, show],
                     [*knobs, lesson, field, curves, status, lab], api_name="ganlab_experiment",
                     concurrency_id="ganlab-step")
    for knob in [*knobs, show]:
        knob.input(settings_changed, inputs, outputs, api_visibility="private",
                   concurrency_id="ganlab-step")
    field.select(click_plane, [lab, show, *knobs], [target, field, curves, status, lab],
                 api_name="ganlab_click", concurrency_id="ganlab-step")
    clear_btn.click(clear_points, inputs, outputs, api_name="ganlab_clear_points",
                    concurrency_id="ganlab-step")
    gr.on(ctx.shown, show_game, inputs, outputs, api_visibility="private")
    # for code: one call, a whole game (a button no one sees: the endpoint is the point)
    with gr.Row(visible=False):
        api_run = gr.Button("train")
        points_in, rounds_in = gr.JSON(label="points"), gr.Number(label="rounds")
        field_out, curves_out = gr.Image(format="png"), gr.Image(format="png")
        measures_out = gr.JSON(label="measures")
    api_run.click(train, [*knobs, points_in, rounds_in], [field_out, curves_out, measures_out],
                  api_name="ganlab_train", concurrency_id="ganlab", concurrency_limit=MAX_RUNS)
