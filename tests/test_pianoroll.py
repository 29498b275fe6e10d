"""The note language, piano rolls, MIDI in and out, and the render step that makes aligned
(roll, audio) pairs for the note-conditioned WaveNet (fluidsynth: `make test` installs it)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.pianoroll import (FPS, LOWEST, Note, from_midi, parse, pitch_of, source, to_midi,
                              to_roll)


def test_note_names_and_the_note_language():
    assert [pitch_of(n) for n in ["C4", "A4", "F#3", "Bb5", "A0", "C8", "c4"]] == [60, 69, 54, 82, 21, 108, 60]
    notes = parse("C4 E4/2 R G4*2 C4+E4", bpm=120, velocity=90)
    assert [(n.pitch, n.start, n.end) for n in notes] == [
        (60, 0.0, 0.5), (64, 0.5, 0.75), (67, 1.25, 2.25), (60, 2.25, 2.75), (64, 2.25, 2.75)]
    assert {n.velocity for n in notes} == {90}
    assert [n.pitch for n in parse("C4 D4", transpose=-12)] == [48, 50]


@pytest.mark.parametrize("text, message", [
    ("", "No notes"), ("   ", "No notes"), ("C4 H4", "Token 2 \\(H4\\)"), ("C9", "off the piano"),
    ("C4/0", "length factor"), ("C4 E4+X1", "Token 2"), ("C4*100", "length factor"),
    ("C8 C8", None)])
def test_bad_note_strings_say_which_token(text, message):
    if message is None:
        assert len(parse(text)) == 2
        with pytest.raises(ValueError, match="off the keyboard"):
            parse(text, transpose=1)
        return
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_the_roll_marks_onsets_held_frames_and_velocity():
    notes = [Note(60, 0.10, 0.50, 127), Note(64, 0.30, 0.31, 64), Note(60, 0.50, 0.70, 32)]
    roll = to_roll(notes)
    assert roll.shape == (3, 88, int(np.ceil(1.7 * FPS))) and roll.dtype == np.float32
    c, e = 60 - LOWEST, 64 - LOWEST
    assert np.flatnonzero(roll[0, c]).tolist() == [10, 50]          # struck again at 0.5 s
    assert np.flatnonzero(roll[1, c]).tolist() == list(range(10, 70))
    assert roll[2, c, 10] == 1.0 and roll[2, c, 60] == pytest.approx(32 / 127)
    assert np.flatnonzero(roll[1, e]).tolist() == [30]                # a 10 ms note: one frame
    assert roll[:, [k for k in range(88) if k not in (c, e)]].max() == 0
    # a window starting at 0.2 s: the first note sounds on, unstruck; the others as before
    window = to_roll(notes, 20, first=20)
    assert np.array_equal(window, roll[:, :, 20:40])
    assert to_roll([Note(60, -1.0, -0.5)], 10).max() == 0            # over before the window


def test_midi_round_trip_and_garbage():
    notes = parse("C4 E4/2 R G4*2 C4+E4 A0 C8", bpm=97, velocity=70)
    back = from_midi(to_midi(notes))
    assert [(n.pitch, n.velocity) for n in back] == [(n.pitch, n.velocity) for n in
                                                    sorted(notes, key=lambda n: (n.start, n.pitch))]
    for a, b in zip(back, sorted(notes, key=lambda n: (n.start, n.pitch))):
        assert abs(a.start - b.start) <= 2.001e-3 and abs(a.end - b.end) <= 2.001e-3  # 4 ms ticks
    assert [n.pitch for n in from_midi(to_midi(notes), max_seconds=1.0)] == [60, 64]
    for junk in [b"", b"MThd", b"not a midi file at all", bytes(range(256))]:
        with pytest.raises(ValueError, match="MIDI"):
            from_midi(junk)


# ------------------------------------------------------------------ the render step (training)
@pytest.mark.parametrize("kind", ["single", "scale", "chord", "run"])
def test_every_exercise_kind_stays_on_the_keyboard_and_in_time(kind):
    from train.pianoroll import exercise

    for seed in range(20):
        notes = exercise(kind, np.random.default_rng(seed), seconds=8.0)
        assert notes and all(LOWEST <= n.pitch < LOWEST + 88 and 1 <= n.velocity <= 127
                             and 0 <= n.start < 8.0 and n.end > n.start for n in notes)
    if kind == "chord":
        assert any(sum(m.start == n.start for m in notes) >= 3 for n in notes)


needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf3").is_dir(),
    reason="fluidsynth and musescore-general-soundfont are not installed (make train-deps)")


def onsets_in(audio: np.ndarray, rate: int) -> np.ndarray:
    """Onset times from the audio alone: frames (5 ms) where the energy jumps well above the
    frame before."""
    hop = rate // 200
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    energy = np.log(1e-7 + (frames ** 2).mean(axis=1))
    rise = energy[2:] - energy[:-2]
    hits = np.flatnonzero(rise > 3.0) + 2
    keep = [h for i, h in enumerate(hits) if i == 0 or h - hits[i - 1] > 10]
    return np.array(keep) * hop / rate


@needs_fluidsynth
def test_the_render_lines_up_with_the_roll_and_plays_the_right_pitch():
    from train.pianoroll import RATE, render

    notes = [Note(69, 0.25, 0.75, 100), Note(48, 1.0, 1.4, 60), Note(76, 1.75, 2.5, 110)]
    audio = render(notes, tail=0.5)
    assert audio.shape == (int(3.0 * RATE),) and audio.dtype == np.float32
    assert np.abs(audio[: int(0.24 * RATE)]).max() < 1e-3                # silence before the first
    found = onsets_in(audio, RATE)
    want = [n.start for n in notes]
    assert len(found) == len(want) and np.abs(found - want).max() < 0.02, found
    a4 = audio[int(0.3 * RATE): int(0.7 * RATE)]
    spectrum = np.abs(np.fft.rfft(a4 * np.hanning(len(a4)), 16 * len(a4)))
    peak = np.argmax(spectrum) * RATE / (16 * len(a4))
    assert abs(1200 * np.log2(peak / 440.0)) < 25, peak                  # A4 within 25 cents


@needs_fluidsynth
def test_one_fluidsynth_run_for_many_renders_gives_each_as_alone():
    from train.pianoroll import render, render_many

    pieces = [parse("C2*4 C2+G2+E3*2", bpm=90, velocity=127),         # long low notes ring on
              parse("A4 B4 C5/2", bpm=150), parse("C6", bpm=60)]
    together = render_many(pieces)
    for notes, audio in zip(pieces, together):
        alone = render(notes)
        # the same performance: fluidsynth's attacks differ by a sample or two between runs,
        # (correlation 0.9998 at worst); a shifted cut or a ringing tail would be far lower
        assert audio.shape == alone.shape
        assert np.corrcoef(audio, alone)[0, 1] > 0.999
        assert np.sqrt((audio ** 2).mean() / (alone ** 2).mean()) == pytest.approx(1, abs=0.01)


@needs_fluidsynth
def test_the_tiny_build_writes_shards_and_resumes(tmp_path):
    from train.pianoroll import build, read_shard

    manifest = build(tmp_path, tiny=True)
    assert manifest["train"] == 3 and manifest["test"] == 1 and manifest["rate"] == 16000
    for name in manifest["shards"]:
        audio, notes, source = read_shard(tmp_path / name)
        assert notes and source and len(audio) >= int(max(n.end for n in notes) * 16000)
        assert 0.005 < np.sqrt((audio ** 2).mean()) and np.abs(audio).max() < 1.0
    again = build(tmp_path, tiny=True)
    assert again["shards"] == manifest["shards"]


@needs_fluidsynth
def test_windows_line_up_and_a_tiny_conditioned_wavenet_trains_and_plays(tmp_path):
    import torch

    from models.hub import from_pretrained, save_pretrained
    from models.pianowave import PianoPipeline
    from models.wavenet import WaveNet, WaveNetPipeline, mu_law_encode
    from train.pianoroll import build
    from train.pianowave import HOP, Pieces, main

    build(tmp_path / "rolls", tiny=True)
    data = Pieces(tmp_path / "rolls", "train")
    # a window's roll is the whole roll's frames, margins included (zeros before the start)
    i = max(range(len(data.codes)), key=lambda k: len(data.codes[k]))
    whole = to_roll([Note(int(p), s, e, int(v)) for p, s, e, v in data.notes[i]],
                    len(data.codes[i]) // HOP).reshape(264, -1)
    codes, roll = data.window(i, 50, 30 * HOP, 3)
    assert np.array_equal(roll, whole[:, 47:83]) and np.array_equal(codes, data.codes[i][50 * HOP:80 * HOP])
    first, window = data.window(i, 0, 10 * HOP, 3)[1], whole[:, :13]
    assert first[:, :3].max() == 0 and np.array_equal(first[:, 3:], window[:, :13])
    assert np.array_equal(codes, mu_law_encode(read_back(tmp_path / "rolls", data, i))[50 * HOP:80 * HOP])
    notes = [Note(int(p), s, e, int(v)) for p, s, e, v in data.notes[i]]
    np.testing.assert_allclose(data.window(i, 50, 30 * HOP, 3, 4)[2],
                               source(notes, 0, 80 * HOP)[:, 50 * HOP:], atol=1e-5)

    main(["--tiny", "--data", str(tmp_path / "rolls"), "--out", str(tmp_path / "pw"),
          "--run-dir", str(tmp_path / "run")])
    model = from_pretrained(WaveNet, str(tmp_path / "pw"))
    assert model.config.cond_features == 264 and model.config.cond_hop == 160
    assert model.config.source_channels == 8            # sines and cosines of 4 harmonics
    notes = parse("C4 E4 G4", bpm=240)
    pipe = PianoPipeline(WaveNetPipeline(model))
    audio = pipe(notes, generator=torch.Generator().manual_seed(0))
    assert len(audio) == pipe.samples(notes) == (75 + 100) * HOP and np.abs(audio).max() <= 1
    again = np.concatenate(list(pipe.stream(notes, generator=torch.Generator().manual_seed(0),
                                            chunk=1000)))
    assert np.array_equal(audio, again)                # a seed reproduces it, in any chunks

    # chosen by a quick pitch check: every evaluation scored, the export the best-scored one
    main(["--tiny", "--data", str(tmp_path / "rolls"), "--out", str(tmp_path / "pitched"),
          "--run-dir", str(tmp_path / "run2"), "--select-by-pitch", "--harmonics", "0"])
    import json

    log = [json.loads(line) for line in (tmp_path / "run2" / "log.jsonl").read_text().splitlines()]
    assert log and all(0 <= r["select"] <= 1 for r in log)
    exported = json.loads((tmp_path / "pitched" / "config.json").read_text())["training"]["step"]
    firsts = [r["step"] for r in log if r["select"] == max(x["select"] for x in log)]
    assert exported == firsts[0]

    # the check scores the weights as exported: float16, reloaded
    from train.pianowave import as_exported

    shipped = from_pretrained(WaveNet, str(tmp_path / "pw"))
    nudged = WaveNet(shipped.config)
    nudged.load_state_dict({k: v + 1e-4 * v.abs() for k, v in shipped.state_dict().items()})
    rounded = as_exported(nudged).state_dict()
    assert not all(torch.equal(v, nudged.state_dict()[k]) for k, v in rounded.items())
    save_pretrained(nudged, tmp_path / "again")
    reloaded = from_pretrained(WaveNet, str(tmp_path / "again")).state_dict()
    assert all(torch.equal(v, reloaded[k]) for k, v in rounded.items())


def test_the_source_is_the_notes_sines_and_cosines_from_where_fluidsynth_starts_them():
    from models.pianoroll import ONSET_DELAY, SOURCE_GAIN

    notes = [Note(69, 0.5, 1.0, 127), Note(81, 0.75, 1.25, 64)]
    src = source(notes, 8000, 8000, 16000, harmonics=2)       # samples 8,000 .. 15,999
    assert src.shape == (4, 8000)
    k = np.arange(8000, 16000)
    a4 = (k >= 8000 + ONSET_DELAY) & (k < 16000 + ONSET_DELAY)
    a5 = k >= 12000 + ONSET_DELAY
    ta4, ta5 = (k - 8000 - ONSET_DELAY) / 16000, (k - 12000 - ONSET_DELAY) / 16000
    for h, row in ((1, 0), (2, 1)):
        for wave, offset in ((np.sin, 0), (np.cos, 2)):
            want = SOURCE_GAIN * (np.where(a4, wave(2 * np.pi * h * 440 * ta4), 0) +
                                  np.where(a5, 64 / 127 * wave(2 * np.pi * h * 880 * ta5), 0))
            np.testing.assert_allclose(src[row + offset], want, atol=1e-4)
    # a window cut from a longer run of samples is that run's slice (phases carry over)
    whole = source(notes, 0, 24000, 16000, harmonics=2)
    np.testing.assert_allclose(whole[:, 8000:16000], src, atol=1e-5)
    # above Nyquist: nothing
    high = source([Note(108, 0, 1, 100)], 0, 1600, 16000, harmonics=4)
    assert high[[0, 4]].any() and not high[[2, 3, 6, 7]].any()
    # played with an attack: each note starts that many times stronger and falls back to 1x
    from models.pianoroll import ATTACK_TIME

    one = [Note(60, 0.5, 1.5, 100)]
    plain, hard = source(one, 0, 32000, 16000, 2), source(one, 0, 32000, 16000, 2, attack=8)
    assert np.array_equal(source(one, 0, 32000, 16000, 2, attack=1), plain)
    start = int(0.5 * 16000) + ONSET_DELAY
    np.testing.assert_allclose(hard[:, start], 8 * plain[:, start], rtol=1e-5)
    later = start + int(ATTACK_TIME * 16000)                          # 1 + 7 / e
    np.testing.assert_allclose(hard[:, later], (1 + 7 / np.e) * plain[:, later], rtol=1e-3)
    np.testing.assert_allclose(hard[:, start + 16000 - 100], plain[:, start + 16000 - 100], rtol=1e-3, atol=1e-4)
    assert not hard[:, :start].any()


def test_notes_snap_to_the_grid_fluidsynth_plays_exactly():
    from models.pianoroll import GRID, snap

    snapped = snap([Note(60, 0.1013, 0.5507, 80), Note(62, 0.2, 0.2001, 90)])
    assert snapped == [Note(60, 0.1, 0.552, 80), Note(62, 0.2, 0.2 + GRID, 90)]
    assert snap(snapped) == snapped
    back = from_midi(to_midi(snapped))                           # a tick is the grid
    assert [(n.pitch, round(n.start, 9), round(n.end, 9)) for n in back] == \
        [(n.pitch, round(n.start, 9), round(n.end, 9)) for n in snapped]


def read_back(folder, data, i):
    from train.pianoroll import read_shard

    return read_shard(sorted(folder.glob("train-*.npz"))[i])[0]


def test_the_exercise_share_sets_how_many_windows_come_from_the_exercises(tmp_path):
    from train.pianoroll import EXERCISES, jobs
    from train.pianowave import Pieces, batch_of

    assert {name.split("-")[1] for name, kind, _ in jobs(False, 0) if kind == "exercise"} == set(EXERCISES)
    seconds = {"train-single-0001": 4, "train-chord-0002": 4, "train-bach_bwv1-t+0-x1": 60,
               "train-joplin-t+0-x1": 60, "test-run-0019": 4}
    for name, s in seconds.items():       # a shard's audio level says which shard it is
        level = 1000 * (list(seconds).index(name) + 1)
        np.savez_compressed(tmp_path / f"{name}.npz", audio=np.full(s * 16000, level, np.int16),
                            notes=np.array([[60, 0.0, 1.0, 80]]), source=np.array(name))
    data = Pieces(tmp_path, "train")
    assert data.exercise.tolist() == [False, True, False, True]    # sorted: bach, chord, joplin, single
    for share, expected in ((0.0, 8 / 128), (0.5, 0.5)):
        codes = batch_of(data, 2000, 3000, 1, np.random.default_rng(0), exercise_share=share)[0]
        from_drills = np.isin(codes[:, 0].numpy(), [data.codes[i][0] for i in (1, 3)])
        assert abs(from_drills.mean() - expected) < 0.03, (share, from_drills.mean())
