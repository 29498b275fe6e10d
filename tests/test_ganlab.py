"""GAN lab: the losses and the measures on tiny tensors, seeded games that show what the named
experiments claim, the live game's caps and locks, and the tab through gradio_client."""
from __future__ import annotations

import math
import threading
import time

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError
from PIL import Image

from models.ganlab import (EXPERIMENTS, ToyConfig, ToyGAN, d_loss, experiment_config, g_loss,
                           gradient_penalty, js_divergence, measure, modes, sample_target)
from models.runtime import single_threaded


def played(config: ToyConfig, rounds: int) -> ToyGAN:
    """A game played on a one-core worker, as the tab plays it (and as reproducible)."""
    game = single_threaded(1).submit(ToyGAN, config).result()
    single_threaded(1).submit(game.step, rounds).result()
    return game


# ------------------------------------------------------------------ losses
def test_each_loss_value_and_gradient_on_tiny_tensors():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0])
    sp = torch.nn.functional.softplus
    assert d_loss("minimax", real, fake) == pytest.approx(float(sp(-real).mean() + sp(fake).mean()))
    assert d_loss("nonsaturating", real, fake) == d_loss("minimax", real, fake)
    assert d_loss("lsgan", real, fake) == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (1 + 9) / 2)
    assert d_loss("wgan-gp", real, fake) == pytest.approx(1.0 - 1.0)
    # the generator's gradient where D is sure a fake is fake (logit -5): minimax's vanishes
    for loss, expected in [("minimax", -torch.sigmoid(torch.tensor(-5.0))),
                           ("nonsaturating", -(1 - torch.sigmoid(torch.tensor(-5.0)))),
                           ("lsgan", torch.tensor(-6.0)), ("wgan-gp", torch.tensor(-1.0))]:
        f = torch.tensor([-5.0], requires_grad=True)
        g_loss(loss, f).backward()
        assert f.grad.item() == pytest.approx(expected.item(), rel=1e-5), loss
    f = torch.tensor([-5.0], requires_grad=True)
    assert g_loss("minimax", f).item() == pytest.approx(-math.log1p(math.exp(-5)), rel=1e-6)
    assert g_loss("nonsaturating", f).item() == pytest.approx(math.log1p(math.exp(5)), rel=1e-6)
    with pytest.raises(ValueError):
        d_loss("hinge", real, fake)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic_and_grows_with_the_slope():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen)
    for slope, expected in [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)]:
        critic = torch.nn.Linear(2, 1)
        with torch.no_grad():
            critic.weight.copy_(torch.tensor([[0.6, 0.8]]) * slope)
        assert gradient_penalty(critic, real, fake, gen).item() == pytest.approx(expected, abs=1e-5)


# ------------------------------------------------------------------ targets and measures
@pytest.mark.parametrize("target", ["ring", "two", "line", "spiral", "moons"])
def test_targets_are_on_the_plane_and_real_points_measure_as_a_perfect_generator(target):
    config = ToyConfig(target=target)
    gen = torch.Generator().manual_seed(0)
    real, again = sample_target(config, 3000, gen).numpy(), sample_target(config, 3000, gen).numpy()
    assert real.shape == (3000, 2) and (np.abs(real) < 3).mean() > 0.995
    m = measure(config, real, again)
    assert m.js_bits < 0.1
    if modes(config) is None:
        assert m.area > 0.9 and m.modes is None
    else:
        assert m.covered == m.modes == len(modes(config)) and m.quality > 0.97


def test_measures_see_a_collapsed_and_a_misplaced_generator():
    config = ToyConfig(target="ring")
    gen = torch.Generator().manual_seed(0)
    real = sample_target(config, 2000, gen).numpy()
    one_mode = np.array(modes(config)[0][:2]) + 0.05 * np.random.default_rng(0).normal(size=(2000, 2))
    m = measure(config, real, one_mode)
    assert m.covered == 1 and m.quality > 0.97 and 0.6 < m.js_bits < 1.0
    far = np.full((2000, 2), -2.9)
    m = measure(config, real, far)
    assert m.covered == 0 and m.quality == 0 and m.js_bits == pytest.approx(1.0)
    assert js_divergence(real, real) == 0.0


def test_settings_that_cannot_make_a_game_are_refused():
    with pytest.raises(ValueError, match="target"):
        ToyConfig(target="torus")
    with pytest.raises(ValueError, match="loss"):
        ToyConfig(loss="hinge")
    with pytest.raises(ValueError, match="at least one point"):
        ToyConfig(target="drawn")
    game = ToyGAN(ToyConfig(width=8))
    with pytest.raises(ValueError, match="new game"):
        game.tune(width=16)
    game.tune(lr_d=0.02, loss="lsgan")
    assert game.opt_d.param_groups[0]["lr"] == 0.02 and game.config.loss == "lsgan"


# ------------------------------------------------------------------ the named experiments
def test_the_default_game_covers_the_ring_and_the_collapse_setting_does_not():
    default = played(ToyConfig(), 2000)
    m = default.measure()
    assert m.covered == 8 and m.js_bits < 0.5, m
    collapse = played(experiment_config("collapse"), 3000)
    assert collapse.measure().covered <= 2, collapse.measure()
    strong = played(experiment_config("strong-d"), 2000)
    assert strong.measure().covered <= 3, strong.measure()


def test_wasserstein_with_gradient_penalty_cures_the_collapse():
    e = EXPERIMENTS["collapse-cure"]
    assert e.changes["noise_dim"] == EXPERIMENTS["collapse"].changes["noise_dim"]
    assert played(experiment_config("collapse-cure"), e.rounds).measure().covered == 8


def test_minimax_gradients_vanish_where_the_non_saturating_ones_do_not():
    minimax = played(experiment_config("vanishing"), 1)
    fixed = played(experiment_config("vanishing-cure"), 1)
    assert minimax.history[0].d_fake < 0.01          # the head start made D sure
    assert fixed.history[0].g_push > 100 * minimax.history[0].g_push
    single_threaded(1).submit(minimax.step, 399).result()
    single_threaded(1).submit(fixed.step, 399).result()
    assert minimax.measure().covered == 1 and fixed.measure().covered == 2


def test_a_seed_replays_the_same_game():
    a, b = played(ToyConfig(seed=3, width=16), 50), played(ToyConfig(seed=3, width=16), 50)
    assert [r.g_loss for r in a.history] == [r.g_loss for r in b.history]
    c = played(ToyConfig(seed=4, width=16), 50)
    assert [r.g_loss for r in a.history] != [r.g_loss for r in c.history]


def test_pictures_show_the_layers_asked_for():
    game = played(ToyConfig(width=32), 300)
    full = game.field(240)
    assert full.shape == (240, 240, 3)
    bare = game.field(240, heat=False, grid=False, arrows=False, points=False)
    assert len(np.unique(bare.reshape(-1, 3), axis=0)) == 1      # nothing but the background
    points = game.field(240, heat=False, grid=False, arrows=False)
    purple = (points[..., 0] > 90) & (points[..., 2] > 130) & (points[..., 1] < 80)
    green = (points[..., 1] > 90) & (points[..., 0] < 40)
    assert purple.sum() > 100 and green.sum() > 100
    heat = game.field(240, grid=False, arrows=False, points=False)
    assert heat.std() > 2                                          # the verdict varies
    curves = game.curves(480, 200)
    assert curves.shape == (200, 480, 3) and (curves < 200).any()


def test_single_threaded_workers_use_one_core_and_leave_the_default_alone():
    before = torch.get_num_threads()
    pool = single_threaded(2)
    assert pool.submit(torch.get_num_threads).result() == 1
    assert torch.get_num_threads() == before
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert seen == [before]


# ------------------------------------------------------------------ the tab's game loop
def knobs(**changes) -> list:
    from tabs.ganlab import SETTINGS

    c = ToyConfig()
    return [changes.get(k, getattr(c, k)) for k in SETTINGS]


def test_play_stops_at_its_caps_and_a_second_play_does_not_start_a_second_loop(monkeypatch):
    from tabs import ganlab

    layers = ganlab.LAYERS
    monkeypatch.setattr(ganlab, "MAX_PLAY_SECONDS", 0.6)
    frames = list(ganlab.play(None, "a few rounds per picture", *knobs(width=16), layers))
    field, curves, status, lab = frames[-1]
    assert "Paused after" in status and 5 <= lab.game.steps <= 200 and not lab.playing
    assert field.shape == (ganlab.SIZE, ganlab.SIZE, 3)
    monkeypatch.setattr(ganlab, "MAX_ROUNDS", lab.game.steps + 3)
    frames = list(ganlab.play(lab, "one round per picture", *knobs(width=16), layers))
    assert "reached its" in frames[-1][2] and lab.game.steps == ganlab.MAX_ROUNDS
    lab.heartbeat = time.monotonic()                  # a loop is drawing
    again = list(ganlab.play(lab, "one round per picture", *knobs(width=16), layers))
    assert len(again) == 1 and "Already playing" in again[0][2]
    with pytest.raises(gr.Error, match="Pause the game first"):
        ganlab.one_update("d")(lab, *knobs(width=16), layers)



def test_pause_returns_only_after_the_play_loop_has_drawn_its_last_picture(monkeypatch):
    # the page shows whichever arrives last; a frame the loop hands over after Pause answered
    # would cover "Paused" with a round count (seen in CI), so Pause waits for the loop to leave
    from tabs import ganlab

    _, _, _, lab = ganlab.show_game(None, *knobs(width=16), ganlab.LAYERS)
    slow = ganlab.pictures

    def slow_pictures(game, show, note=""):   # a slow machine: Pause lands while a frame is drawn
        if not note:                             # (the loop's frames; Pause's own is quick)
            time.sleep(0.4)
        return slow(game, show, note)

    monkeypatch.setattr(ganlab, "pictures", slow_pictures)
    drawn, started = [], threading.Event()

    def consumer():                   # as Gradio: send each frame, then ask for the next one
        for _ in ganlab.play(lab, "one round per picture", *knobs(width=16), ganlab.LAYERS):
            time.sleep(0.2)           # the frame on its way to the page
            drawn.append(time.monotonic())
            started.set()

    thread = threading.Thread(target=consumer)
    thread.start()
    assert started.wait(30)
    time.sleep(0.1)                     # the next frame is being drawn
    *_, status, _ = ganlab.pause(lab, ganlab.LAYERS)
    answered = time.monotonic()
    thread.join(10)
    assert "Paused" in status and not thread.is_alive() and lab.loops == 0
    assert len(drawn) >= 2 and max(drawn) < answered


def test_a_knob_retunes_the_game_or_starts_a_new_one():
    from tabs import ganlab

    field, curves, status, lab = ganlab.show_game(None, *knobs(width=16), ganlab.LAYERS)
    game = lab.game
    single_threaded(1).submit(game.step, 5).result()
    ganlab.settings_changed(lab, *knobs(width=16, lr_g=0.01), ganlab.LAYERS)
    assert lab.game is game and game.opt_g.param_groups[0]["lr"] == 0.01
    ganlab.settings_changed(lab, *knobs(width=16, lr_g=0.01, noise_dim=3), ganlab.LAYERS)
    assert lab.game is not game and lab.game.config.noise_dim == 3 and lab.game.steps == 0
    _, _, status, lab = ganlab.one_update("g")(lab, *knobs(width=16, lr_g=0.01, noise_dim=3), ganlab.LAYERS)
    assert "One G update" in status and lab.game.steps == 1


def test_clicks_place_points_and_a_game_plays_on_them():
    from tabs import ganlab

    layers = ganlab.LAYERS
    values = knobs(width=16)[1:]
    lab = None
    for x, y in [(120, 120), (360, 360)]:
        evt = gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})
        target, field, curves, status, lab = ganlab.click_plane(lab, layers, "ring", *values, evt)
    assert target == "drawn" and lab.points == [(-1.5, 1.5), (1.5, -1.5)]
    assert lab.game.config.target == "drawn" and modes(lab.game.config)[1][:2] == (1.5, -1.5)
    _, _, status, lab = ganlab.clear_points(lab, "drawn", *values, layers)
    assert lab.points == [] and lab.game is None and "Click on the plane" in status


@pytest.mark.parametrize("changes,message", [
    (dict(lr_d=float("nan")), "finite"), (dict(lr_g=5.0), "between"), (dict(d_steps=0), "between"),
    (dict(width=10_000), "between"), (dict(noise_dim=2.5), "whole number"),
    (dict(target="torus"), "Target"), (dict(loss="hinge"), "Loss"), (dict(seed=-1), "Seed"),
    (dict(target="drawn"), "place your points"), (dict(optimiser="rmsprop"), "Optimiser"),
])
def test_bad_settings_get_a_clear_error(changes, message):
    from tabs import ganlab

    values = dict(zip(ganlab.SETTINGS, knobs()))
    values.update(changes)
    with pytest.raises(gr.Error, match=message):
        ganlab.config_from(list(values.values()), [])


def test_bad_points_layers_and_experiments_get_a_clear_error():
    from tabs import ganlab

    for points, message in [([[0, 0]] * 65, "At most"), ([[0, 9]], "within"), ("abc", "pairs"),
                            ([[float("inf"), 0]], "finite")]:
        with pytest.raises(gr.Error, match=message):
            ganlab.parse_points(points)
    assert ganlab.parse_points([[1, 2], [0, 0]]) == [(1.0, 2.0), (0.0, 0.0)]
    with pytest.raises(gr.Error, match="Unknown layers"):
        ganlab.layers_from(["everything"])
    with pytest.raises(gr.Error, match="Experiment must be"):
        ganlab.choose_experiment(None, "unrolled", ganlab.LAYERS)


# ------------------------------------------------------------------ through gradio_client
def api_values(**changes) -> list:
    return knobs(**changes)


def test_ganlab_train_returns_pictures_and_measures(client):
    field, curves, m = client.predict(*api_values(), None, 1500, api_name="/ganlab_train")
    assert Image.open(field).size == (480, 480) and Image.open(curves).size == (480, 200)
    assert m["rounds"] == 1500 and m["modes"] == 8 and m["covered"] >= 7
    _, _, mine = client.predict(*api_values(target="drawn"), [[1, 1], [-1, -1]], 300,
                                api_name="/ganlab_train")
    assert mine["modes"] == 2
    for values, rounds, message in [(api_values(target="drawn"), 10, "place your points"),
                                    (api_values(), 10**6, "Rounds"),
                                    (api_values(d_steps=50), 10, "maximum")]:
        with pytest.raises(AppError, match=message):
            client.predict(*values, None, rounds, api_name="/ganlab_train")


def test_a_visitor_plays_pauses_steps_and_picks_an_experiment(client):
    from tabs.ganlab import LAYERS

    job = client.submit("as fast as it goes", *api_values(width=32), LAYERS, api_name="/ganlab_play")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    field, curves, status = client.predict(LAYERS, api_name="/ganlab_pause")
    assert "Paused" in status and "Round" in status
    time.sleep(0.5)                    # the loop's last frame, if one was under way, ends

    def rounds(status: str) -> int:
        return int(status.split("Round ")[1].split("**")[0].replace(",", ""))

    _, _, status = client.predict(*api_values(width=32), LAYERS, api_name="/ganlab_d_update")
    played_rounds = rounds(status)
    assert "One D update" in status and played_rounds > 0
    _, _, status = client.predict(*api_values(width=32), LAYERS, api_name="/ganlab_d_update")
    assert rounds(status) == played_rounds                      # D alone: no new round
    _, _, status = client.predict(*api_values(width=32), LAYERS, api_name="/ganlab_g_update")
    assert rounds(status) == played_rounds + 1 and "One G update" in status
    out = client.predict("collapse", LAYERS, api_name="/ganlab_experiment")
    values, lesson = out[:12], out[12]
    assert values[8] == 64 and values[3] == 1e-4 and "Metz" in lesson
    _, _, status = client.predict(*api_values(), LAYERS, api_name="/ganlab_new")
    assert "Round 0" in status


def test_the_experiments_measure_writes_its_table_and_sheet(tmp_path):
    import json

    from train.ganlab import main

    assert main(["--tiny", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "experiments.json").read_text())
    assert set(results) == set(EXPERIMENTS) and all(len(r["runs"]) == 1 for r in results.values())
    assert results["vanishing"]["runs"][0]["first_push"] < results["vanishing-cure"]["runs"][0]["first_push"]
    assert Image.open(tmp_path / "experiments.png").size == (3 * 328, 2 * 364)
