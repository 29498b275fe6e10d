"""WaveNet: mu-law, causality, receptive field, the three generation paths, the pipeline,
training, measuring, audio I/O, the shipped checkpoints and examples; the tab through
gradio_client."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from models.audio import AudioError, normalise, read_audio, spectrogram, wav_bytes
from models.hub import REPO_ROOT, WEIGHTS_DIR, from_pretrained
from models.runtime import generator
from models.wavenet import (SILENCE, FastWaveNet, IncrementalState, WaveNet, WaveNetConfig,
                            WaveNetPipeline, WaveRounds, draw, generate_incremental, generate_naive, mu_law_decode,
                            mu_law_encode, receptive_field,
                            teacher_forced_logits)
from tabs.wavenet import MODEL_NAMES as WAVENET_MODELS

SHIPPED = [name for name in ("wavenet-speech",)
           if (WEIGHTS_DIR / name / "README.md").is_file()]


def speech_data() -> bool:
    from train.data import data_root

    return (data_root() / "audio" / "ljspeech_16k").is_dir()


needs_speech_data = pytest.mark.skipif(not speech_data(), reason="the project's audio data is not here")


def tiny(seed: int = 0, cycle: int = 4, stacks: int = 2) -> WaveNet:
    torch.manual_seed(seed)
    model = WaveNet(WaveNetConfig(residual_channels=8, gate_channels=8, skip_channels=16,
                                  head_channels=16, cycle=cycle, stacks=stacks))
    with torch.no_grad():   # larger weights than the init, so every layer matters
        for p in model.parameters():
            p.mul_(2.0)
    return model.eval()


def codes_of(n: int, seed: int = 0) -> np.ndarray:
    """Audio-like codes: a decaying chirp plus noise, mu-law encoded."""
    t = np.arange(n) / 16000
    rng = np.random.default_rng(seed)
    x = 0.5 * np.sin(2 * np.pi * (200 + 300 * t) * t) * np.exp(-t) + 0.02 * rng.standard_normal(n)
    return mu_law_encode(x)


# ------------------------------------------------------------------ mu-law
def test_mu_law_round_trip():
    codes = np.arange(256)
    assert (mu_law_encode(mu_law_decode(codes)) == codes).all()       # every code is a fixed point
    x = np.linspace(-1, 1, 20001)
    back = mu_law_decode(mu_law_encode(x))
    # companding: error grows with amplitude but stays below a quantisation step there
    assert np.abs(back - x).max() < 0.035
    # near silence the steps are ~20x finer than linear 8-bit quantisation (error 0.0039)
    assert np.abs(back - x)[np.abs(x) < 0.01].max() < 3e-4
    assert SILENCE == 128 and abs(mu_law_decode(np.array([SILENCE]))[0]) < 1e-3
    torch.testing.assert_close(mu_law_encode(torch.from_numpy(x)), torch.from_numpy(mu_law_encode(x)))
    torch.testing.assert_close(mu_law_decode(torch.arange(256)), torch.from_numpy(mu_law_decode(codes)))


def test_mu_law_clips_out_of_range_audio():
    assert mu_law_encode(np.array([-3.0, 3.0])).tolist() == [0, 255]


# ------------------------------------------------------------------ the network
def test_output_shape_and_receptive_field_formula():
    model = tiny(cycle=4, stacks=2)
    assert model.config.dilations == [1, 2, 4, 8, 1, 2, 4, 8]
    assert model.config.receptive_field == receptive_field([1, 2, 4, 8] * 2) == 2 + 30
    assert WaveNetConfig().receptive_field == 2048                   # the shipped layout: 128 ms
    x = torch.from_numpy(codes_of(100))[None]
    assert model(x).shape == (1, 256, 100)


def test_causal_convolutions_never_see_the_future():
    model = tiny()
    x = torch.from_numpy(codes_of(120))[None]
    t0 = 70
    y = x.clone()
    y[0, t0] = (y[0, t0] + 100) % 256
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[..., :t0], b[..., :t0])                     # earlier outputs unchanged
    assert (a[..., t0] - b[..., t0]).abs().max() > 1e-3              # the changed one does react


def test_each_output_sees_exactly_its_receptive_field():
    model = tiny()
    rf = model.config.receptive_field
    x = torch.from_numpy(codes_of(150))[None]
    t = 120
    with torch.no_grad():
        base = model(x)[0, :, t]
        for back, expect_change in ((rf - 1, True), (rf, False)):
            y = x.clone()
            y[0, t - back] = (y[0, t - back] + 77) % 256
            changed = (model(y)[0, :, t] - base).abs().max() > 1e-6
            assert bool(changed) == expect_change, (back, rf)


# ------------------------------------------------------------------ the generation paths
def test_fast_and_eager_buffers_compute_the_plain_forward():
    model = tiny()
    codes = codes_of(300)
    plain = teacher_forced_logits(model, codes)
    fast = FastWaveNet(model).feed(codes, record=True)
    np.testing.assert_allclose(fast, plain, atol=2e-5, rtol=1e-5)
    state = IncrementalState(model)
    eager = np.stack([state.step(int(c)).numpy() for c in codes])
    np.testing.assert_allclose(eager, plain, atol=2e-5, rtol=1e-5)


def test_fast_path_with_channel_counts_that_are_not_multiples_of_four():
    """The compiled matrix-vector products take four rows at a time; the rows left over (here
    every layer has some) must be computed too."""
    torch.manual_seed(3)
    model = WaveNet(WaveNetConfig(residual_channels=6, gate_channels=5, skip_channels=7,
                                  head_channels=9, cycle=3, stacks=2)).eval()
    codes = codes_of(200, seed=1)
    plain = teacher_forced_logits(model, codes)
    np.testing.assert_allclose(FastWaveNet(model).feed(codes, record=True), plain,
                               atol=2e-5, rtol=1e-5)


# ------------------------------------------------------------------ conditioned on a roll
def tiny_conditioned(seed: int = 0, source: int = 0) -> WaveNet:
    torch.manual_seed(seed)
    model = WaveNet(WaveNetConfig(residual_channels=8, gate_channels=8, skip_channels=16,
                                  head_channels=16, cycle=3, stacks=1, cond_features=12,
                                  cond_channels=8, cond_hop=3, cond_kernel=5,
                                  source_channels=source))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    return model.eval()


def random_roll(frames: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((12, frames)) < 0.3).astype(np.float32)


def test_a_conditioned_wavenet_sees_its_roll_only_near_each_frame_and_is_causal():
    model = tiny_conditioned()
    m, hop, T = model.config.cond_margin, model.config.cond_hop, 60      # 20 frames
    codes = torch.as_tensor(codes_of(T))[None]
    roll = random_roll(20 + 2 * m)
    with torch.inference_mode():
        base = model(codes, torch.from_numpy(roll)[None])[0]
        later = codes.clone()
        later[0, 40:] = 255 - later[0, 40:]
        assert torch.equal(model(later, torch.from_numpy(roll)[None])[0][:, :40], base[:, :40])
        k = 12                                          # change roll frame 12 (and after)
        other = roll.copy()
        other[:, m + k:] = 1 - other[:, m + k:]
        changed = model(codes, torch.from_numpy(other)[None])[0]
    differs = (changed - base).abs().amax(dim=0) > 1e-6               # per position t
    first = int(torch.nonzero(differs)[0])
    # position t predicts sample t + 1, of frame (t + 1) // hop; the roll reaches m frames back
    assert (first + 1) // hop == k - m and differs[first:].all()
    with pytest.raises(ValueError, match="roll"):
        model(codes)


def test_fast_generation_with_a_roll_computes_the_plain_forward(fast_vs_plain):
    model = tiny_conditioned(1)
    roll = random_roll(30, seed=2)                     # the roll starts at the first new sample
    codes = codes_of(80, seed=3)
    recorded, plain = fast_vs_plain(model, codes, roll)
    np.testing.assert_allclose(recorded, plain, atol=2e-5, rtol=1e-5)
    # and the roll matters: another roll, other logits from its first frame on
    other = FastWaveNet(model)
    other.set_roll(1 - roll)
    other.prime(None)
    moved = other.feed(np.concatenate([[other.state[2]], codes[:-1]]), record=True)
    assert np.abs(moved - recorded).max() > 1e-3
    with pytest.raises(ValueError, match="not conditioned"):
        FastWaveNet(tiny()).set_roll(roll)


def test_a_source_reaches_the_prediction_of_its_own_sample_and_later_only():
    model = tiny_conditioned(2, source=2)
    m, T = model.config.cond_margin, 60
    codes = torch.as_tensor(codes_of(T))[None]
    roll = torch.from_numpy(random_roll(20 + 2 * m))[None]
    src = torch.randn(1, 2, T, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        base = model(codes, roll, src)[0]
        other = src.clone()
        other[..., 37:] += 1.0                             # the source from sample 37 on
        differs = (model(codes, roll, other)[0] - base).abs().amax(dim=0) > 1e-6
    # position t predicts sample t + 1 and reads that sample's source: 36 is the first to move
    assert not differs[:36].any() and differs[36:].all()
    with pytest.raises(ValueError, match="source"):
        model(codes, roll)


def test_fast_generation_with_a_roll_and_a_source_computes_the_plain_forward(fast_vs_plain):
    model = tiny_conditioned(3, source=2)
    roll = random_roll(30, seed=4)
    src = np.random.default_rng(5).standard_normal((2, 81)).astype(np.float32)
    recorded, plain = fast_vs_plain(model, codes_of(80, seed=6), roll, src)   # both start at the first new sample
    np.testing.assert_allclose(recorded, plain, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="source"):
        FastWaveNet(model).set_roll(roll)
    with pytest.raises(ValueError, match="source"):
        FastWaveNet(model).set_roll(roll, src[:1])


def test_compiled_gate_matches_tanh_and_sigmoid():
    """The loop's tanh is a rational approximation (no libm calls, so it vectorises): it must
    agree with float64 tanh to float32 precision everywhere, saturate, and be odd; the gate
    uses it for the sigmoid too."""
    import numba

    from models.wavenet_kernels import _gate

    @numba.njit
    def gate(a, b, out):
        for i in range(a.shape[0]):
            out[i] = _gate(a[i], b[i])

    x = np.concatenate([np.linspace(-20, 20, 400001), np.geomspace(1e-7, 1, 2000),
                        [1e4, -1e4, np.inf, -np.inf]]).astype(np.float32)
    ref = np.tanh(x.astype(np.float64))
    got = np.zeros_like(x)
    gate(x, np.full_like(x, 1e4), got)                 # sigmoid(1e4) = 1: the gate is tanh
    assert np.abs(got - ref).max() < 5e-7
    small = (np.abs(x) < 1e-3) & (x != 0)              # no cancellation near 0: relative error
    assert (np.abs(got - ref)[small] / np.abs(ref[small])).max() < 1e-6
    np.testing.assert_allclose(got[-4:], [1, -1, 1, -1], atol=5e-7)   # saturates, no NaN
    mirrored = np.zeros_like(x)
    gate(-x, np.full_like(x, 1e4), mirrored)
    np.testing.assert_array_equal(mirrored, -got)     # odd, exactly
    b = np.linspace(-30, 30, 60001).astype(np.float32)
    gate(np.full_like(b, 20.0), b, got[:len(b)])       # tanh(20) = 1: the gate is sigmoid
    sig = 1 / (1 + np.exp(-b.astype(np.float64)))
    assert np.abs(got[:len(b)] - sig).max() < 5e-7


def test_the_three_paths_sample_the_same_audio_from_a_seed():
    model = tiny()
    primer = codes_of(40)
    out = [fn(model, 60, 0.9, primer=primer, generator=torch.Generator().manual_seed(5))
           for fn in (generate_naive, generate_incremental)]
    out.append(FastWaveNet(model).generate(60, 0.9, primer=primer,
                                           generator=torch.Generator().manual_seed(5)))
    assert (out[0] == out[1]).all() and (out[0] == out[2]).all()


def test_the_floor_cuts_unlikely_codes_only_while_the_output_sounds():
    """LPCNet's floor: a code whose probability is under it is never drawn, the rest in
    proportion to what is left; the compiled loop does what the definition does, in any
    chunks; from silence the floor is off (or no note would start)."""
    logits = torch.tensor([3.0, 2.0, 0.0, -1.0, -5.0])
    p = torch.softmax(logits.double(), -1)
    kept = (p - 0.02).clamp(min=0)
    drawn = np.array([draw(logits, 1.0, u, 0.02) for u in np.linspace(0.001, 0.999, 999)])
    assert set(drawn) == {0, 1, 2} and float(p[3]) < 0.02 < float(p[2])
    np.testing.assert_allclose(np.bincount(drawn, minlength=5) / 999, kept / kept.sum(), atol=0.003)
    assert draw(logits, 1.0, 0.5, 0.9) == 0                   # nothing left: the likeliest

    model = tiny()
    ask = dict(primer=codes_of(40), generator=torch.Generator().manual_seed(5))
    naive = generate_naive(model, 120, 1.0, floor=0.02, **ask)
    ask["generator"] = torch.Generator().manual_seed(5)
    fast = FastWaveNet(model)
    assert (fast.generate(120, 1.0, floor=0.02, **ask) == naive).all()
    fast.prime(codes_of(40))
    parts = list(fast.stream(120, 1.0, generator=torch.Generator().manual_seed(5), chunk=7))
    assert (np.concatenate(parts) == naive).all()             # the moving level crosses chunks
    plain = FastWaveNet(model).generate(120, 1.0, primer=codes_of(40),
                                        generator=torch.Generator().manual_seed(5))
    assert (plain != naive).any()                             # the floor took effect
    silent = FastWaveNet(model)
    u = torch.Generator().manual_seed(6)
    first = silent.generate(1, 1.0, floor=0.5, generator=u)   # from silence: as without it
    assert first[0] == FastWaveNet(model).generate(1, 1.0, generator=torch.Generator().manual_seed(6))[0]


def test_seed_reproduces_audio_and_chunking_does_not_change_it():
    model = tiny()
    fast = FastWaveNet(model)
    a = fast.generate(3000, 1.0, generator=torch.Generator().manual_seed(1))
    b = fast.generate(3000, 1.0, generator=torch.Generator().manual_seed(1))
    c = fast.generate(3000, 1.0, generator=torch.Generator().manual_seed(2))
    assert (a == b).all() and (a != c).mean() > 0.1
    fast.prime()
    parts = list(fast.stream(3000, 1.0, generator=torch.Generator().manual_seed(1), chunk=700))
    assert [len(p) for p in parts] == [700, 700, 700, 700, 200]
    assert (np.concatenate(parts) == a).all()


def test_states_share_the_weights_layout_and_the_silence_but_not_their_buffers():
    """The pipeline lays the weights out once and primes silence once: every later start is
    a copy, and generates what a state laid out and primed from scratch generates."""
    model = tiny()
    pipe = WaveNetPipeline(model)
    want = mu_law_decode(FastWaveNet(model).generate(2000, 1.0, generator=generator(3)))
    a, b = pipe.primed(None, None), pipe.primed(None, None)
    assert a.wd is b.wd and a.hist is not b.hist and a.state is not b.state
    for _ in range(2):
        np.testing.assert_array_equal(pipe(2000, 1.0, generator=generator(3)), want)
    np.testing.assert_array_equal(pipe._silence[1], b.state)   # untouched by the generations


def heard_together(pipe: WaveNetPipeline, asks: list[dict]) -> list[np.ndarray]:
    """Each ask's samples through stream_shared, all asked at once from threads of their own
    (every third one a moment later)."""
    shared = [None] * len(asks)
    gate = threading.Barrier(len(asks))

    def visit(i, ask):
        gate.wait()
        time.sleep(0.002 * (i % 3))
        shared[i] = np.concatenate(list(pipe.stream_shared(**ask, chunk=300)))

    threads = [threading.Thread(target=visit, args=(i, a)) for i, a in enumerate(asks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return shared


def test_visitors_taking_turns_hear_what_they_would_alone():
    pipe = WaveNetPipeline(tiny())
    primer = np.sin(np.linspace(0, 60, 700)).astype(np.float32) * 0.5
    asks = [dict(n=n, temperature=t, primer=pr, generator=generator(seed)) for n, t, pr, seed in
            [(1234, 1.0, None, 0), (3000, 0.8, primer, 1), (900, 0.0, None, 2),
             (2500, 1.3, None, 3), (1234, 1.0, None, 0), (2000, 1.0, primer, 5)]]
    alone = [np.concatenate(list(pipe.stream(**a))) for a in asks]
    for a, seed in zip(asks, (0, 1, 2, 3, 0, 5)):
        a["generator"] = generator(seed)
    for got, want in zip(heard_together(pipe, asks), alone):
        np.testing.assert_array_equal(got, want)
    assert sum(r.turns for r in pipe._rounds) >= sum(a["n"] for a in asks) / 800   # in turns


def test_conditioned_visitors_taking_turns_hear_what_they_would_alone():
    """Eleven generations with rolls and sources of their own lengths, on one core in turns of
    100 samples: each gets exactly the codes its seed gets alone."""
    pipe = WaveNetPipeline(tiny_conditioned(3, source=2))
    rng = np.random.default_rng(0)
    asks = [dict(n=int(rng.integers(2000, 20000)), temperature=float(rng.choice([0.0, 0.7, 1.4])),
                 roll=random_roll(int(rng.integers(5, 400)), seed=i),
                 source=rng.standard_normal((2, int(rng.integers(1, 900)))).astype(np.float32))
            for i in range(11)]
    alone = [np.concatenate(list(pipe.stream(**a, generator=generator(i))))
             for i, a in enumerate(asks)]
    for i, a in enumerate(asks):
        a["generator"] = generator(i)
    pipe._rounds = [WaveRounds(round_samples=100)]
    for got, want in zip(heard_together(pipe, asks), alone):
        np.testing.assert_array_equal(got, want)
    assert pipe._rounds[0].turns >= sum(a["n"] for a in asks) / 100


def test_a_listener_who_leaves_frees_their_stream():
    pipe = WaveNetPipeline(tiny())
    gone = pipe.stream_shared(50_000, 1.0, generator=generator(1), chunk=400)
    next(gone)
    stays = pipe.stream_shared(3000, 1.0, generator=generator(2), chunk=400)
    first = next(stays)
    gone.close()
    rest = np.concatenate([first, *stays])
    np.testing.assert_array_equal(rest, np.concatenate(list(pipe.stream(3000, 1.0, generator=generator(2)))))
    deadline = time.monotonic() + 5
    while sum(r.active for r in pipe._rounds) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(r.active for r in pipe._rounds) == 0


def test_temperature_zero_is_greedy_and_high_temperature_spreads():
    model = tiny()
    fast = FastWaveNet(model)
    g1 = fast.generate(500, 0.0, generator=torch.Generator().manual_seed(1))
    g2 = fast.generate(500, 0.0, generator=torch.Generator().manual_seed(2))
    assert (g1 == g2).all()                                          # no randomness at T=0
    hot = fast.generate(4000, 3.0, generator=torch.Generator().manual_seed(1))
    cold = fast.generate(4000, 0.3, generator=torch.Generator().manual_seed(1))
    assert len(np.unique(hot)) > len(np.unique(cold))


def test_the_pipeline_speaks_audio_and_continues_a_primer():
    """The tab's pipeline: float audio in and out, the same samples streamed or at once, a seed
    reproduces them, and a primer is what the fast loop continues (heard through mu-law)."""
    wavenet = WaveNetPipeline(tiny())
    primer = (0.3 * np.sin(np.arange(500) / 5)).astype(np.float32)
    whole = wavenet(2500, 1.0, primer=primer, generator=torch.Generator().manual_seed(2))
    parts = list(wavenet.stream(2500, 1.0, primer=primer, generator=torch.Generator().manual_seed(2),
                                chunk=1000))
    assert whole.dtype == np.float32 and len(whole) == 2500 and np.abs(whole).max() <= 1
    assert [len(p) for p in parts] == [1000, 1000, 500] and np.array_equal(np.concatenate(parts), whole)
    codes = FastWaveNet(wavenet.model).generate(2500, 1.0, primer=mu_law_encode(primer),
                                                generator=torch.Generator().manual_seed(2))
    assert np.array_equal(mu_law_decode(codes), whole)
    heard = wavenet.heard(primer)
    assert np.abs(heard - primer).max() < 0.02 and np.array_equal(mu_law_encode(heard), mu_law_encode(primer))
    seen = []
    wavenet(300, 1.0, generator=torch.Generator().manual_seed(2), callback=seen.append)
    assert seen == [300]


# ------------------------------------------------------------------ training
@needs_speech_data
def test_tiny_training_run_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    from train.wavenet import main

    out, run = tmp_path / "wn", tmp_path / "run"
    main(["--data", "speech", "--tiny", "--steps", "20", "--out", str(out), "--run-dir", str(run)])
    model = from_pretrained(WaveNet, out)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20]
    assert all(3 < r["val_bits"] < 8.5 for r in log)
    main(["--data", "speech", "--tiny", "--steps", "30", "--out", str(out), "--run-dir", str(run)])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30]                   # resumed, not restarted
    assert model.config.receptive_field == 2 + 15
    training = json.loads((out / "config.json").read_text())["training"]
    assert [r["step"] for r in training["curve"]] == [10, 20, 30]      # the card's learning curve
    assert training["hardware"] and training["hours"] > 0


@needs_speech_data
def test_measure_writes_what_the_card_needs(tmp_path):
    from train.card import render
    from train.wavenet import main, measure

    out = tmp_path / "wn"
    main(["--data", "speech", "--tiny", "--steps", "10", "--out", str(out), "--run-dir", str(tmp_path / "run")])
    metrics = measure(out)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["data"] == "speech" and metrics["heldout_clips"] == 18
    assert metrics["val_bits"] < metrics["uniform_bits"] + 0.5 and metrics["real_time_factor"] > 0
    assert 0.3 < metrics["voicing"]["real_voiced"] < 0.6           # real speech, through mu-law
    assert [r["stem"] for r in metrics["examples"]] == ["t1_seed0", "t1_seed1", "t0.9_seed2", "t0.7_seed0"]
    for r in metrics["examples"]:
        audio, rate = sf.read(out / "samples" / f"{r['stem']}.flac")
        assert rate == 16000 and len(audio) == 64000 and (out / "samples" / f"{r['stem']}.png").is_file()
    card = render(out)
    assert f"{metrics['val_bits']:.3f}" in card and "## Is it voiced?" in card


@needs_speech_data
def test_the_shipped_example_clips_are_held_out_speech(tmp_path):
    """The tab's primers (examples/speech) are real LJSpeech clips the models never trained on,
    byte for byte, and their listing is what the exporter writes."""
    from train.data import AUDIO_SETS, data_root, held_out
    from train.wavenet import export_examples

    folder = REPO_ROOT / "examples" / "speech"
    listed = json.loads((folder / "clips.json").read_text())
    source = data_root() / "audio" / AUDIO_SETS["speech"][0]
    held = {p.name for p in held_out("speech", sorted(source.glob("*.flac")))}
    assert len(listed) == 3 and all(c["file"] in held for c in listed)
    for c in listed:
        assert (folder / c["file"]).read_bytes() == (source / c["file"]).read_bytes()
        assert sf.info(str(folder / c["file"])).duration == pytest.approx(c["seconds"], abs=0.01)
    assert export_examples(tmp_path) == listed


def test_voiced_share_tells_a_vowel_from_hiss_and_skips_silence():
    from models.audio import voiced_share

    t = np.arange(16000) / 16000
    vowel = 0.3 * np.sign(np.sin(2 * np.pi * 180 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    hiss = 0.1 * np.random.default_rng(0).standard_normal(16000)
    frames, share = voiced_share(np.concatenate([vowel, np.zeros(8000), hiss]), 16000)
    assert frames == pytest.approx(200, abs=3)       # 247 frames, less the 47 inside the silence
    assert share == pytest.approx(0.5, abs=0.03)
    assert voiced_share(np.zeros(100), 16000) == (0, 0.0)


def test_frame_kinds_label_silence_hiss_and_voice_where_they_are():
    from models.audio import SILENT, UNVOICED, VOICED, frame_kinds

    t = np.arange(16000) / 16000
    vowel = 0.3 * np.sign(np.sin(2 * np.pi * 180 * t))
    hiss = 0.1 * np.random.default_rng(0).standard_normal(16000)
    kinds, frame, hop = frame_kinds(np.concatenate([vowel, np.zeros(16000), hiss]), 16000, hop_ms=40)
    assert (frame, hop) == (640, 640) and len(kinds) == 75
    assert (kinds[:25] == VOICED).all() and (kinds[25:50] == SILENT).all()
    assert (kinds[50:] == UNVOICED).all()


def test_bits_are_grouped_by_the_kind_of_frame_they_fall_in():
    from models.audio import SILENT, UNVOICED, VOICED
    from train.wavenet import bits_by_kind

    kinds = np.array([VOICED, UNVOICED, VOICED, SILENT, UNVOICED])
    bits_at = np.repeat([9.0, 5.0, 2.0, 1.0, 4.0], 10)      # frames of 10 samples, hop 10
    bits_at[21] = 4.0                                       # frame 2 averages 2.2
    out = bits_by_kind(bits_at, kinds, frame=10, hop=10, start=10)
    assert out[VOICED] == [pytest.approx(2.2)]              # frame 0 starts before ``start``
    assert out[UNVOICED] == [5.0, 4.0] and out[SILENT] == [1.0]
    # a frame running past the end is left out
    assert bits_by_kind(bits_at[:45], kinds, 10, 10, 0)[UNVOICED] == [5.0]


@needs_speech_data
def test_the_voicing_diagnosis_runs_on_real_held_out_speech():
    from train.wavenet import voicing_diagnosis

    d = voicing_diagnosis(tiny().eval(), clips=2, primed=2, seconds=0.1)
    tf = d["teacher_forced"]
    assert sum(v["frames"] for v in tf.values()) > 100
    assert all(v["bits"] is None or 0 < v["bits"] < 12 for v in tf.values())
    assert d["primed_clips"] == 2 and 0 <= d["primed_voiced"] <= 1
    assert d["real_next_frames"] > 0 and 0 < d["real_next_voiced"] <= 1


# ------------------------------------------------------------------ audio input
def write(path, audio, rate, subtype="PCM_16"):
    sf.write(path, audio, rate, subtype=subtype)
    return str(path)


def test_read_audio_mixes_resamples_and_takes_the_tail(tmp_path):
    rate = 44100
    t = np.arange(rate * 3) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], 1)
    path = write(tmp_path / "a.wav", stereo, rate, "PCM_24")
    audio, notes = read_audio(path, 16000, 1.0)
    assert abs(len(audio) - 16000) <= 2
    assert any("mixed" in n for n in notes) and any("resampled" in n for n in notes)
    assert any("last 1 s" in n for n in notes) and any("pcm 24" in n for n in notes)
    db, _, freqs = spectrogram(audio, 16000)
    assert abs(freqs[db.mean(axis=1).argmax()] - 440) < 40          # still the same tone


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"\x00" * 1000])
def test_read_audio_refuses_empty_and_corrupt_files(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError):
        read_audio(str(path), 16000, 2.0)


def test_normalise_and_wav_bytes_keep_one_scale():
    quiet = np.full(100, 0.01, np.float32)
    louder, note = normalise(quiet)
    assert abs(np.abs(louder).max() - 0.7) < 1e-6 and "scaled" in note
    silent, note = normalise(np.zeros(100, np.float32))
    assert not silent.any() and "silent" in note
    data, rate = sf.read(__import__("io").BytesIO(wav_bytes(np.array([0.5, -0.25], np.float32), 16000)),
                         dtype="int16")
    assert rate == 16000 and data.tolist() == [16384, -8192]          # no per-chunk peak scaling


# ------------------------------------------------------------------ the shipped checkpoints
@pytest.mark.skipif(not SHIPPED, reason="no WaveNet checkpoint shipped yet")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_fast_path_is_exactly_the_model(name):
    """Teacher-forced on 6,000 samples (three receptive fields): the compiled loop's next-sample
    distributions equal the plain convolutional forward's, sample by sample."""
    model = from_pretrained(WaveNet, name)
    codes = codes_of(6000, seed=3)
    plain = torch.softmax(torch.from_numpy(teacher_forced_logits(model, codes)), -1)
    fast = torch.softmax(torch.from_numpy(FastWaveNet(model).feed(codes, record=True)), -1)
    total_variation = 0.5 * (plain - fast).abs().sum(-1)
    assert float(total_variation.max()) < 1e-4


@pytest.mark.skipif(not SHIPPED, reason="no WaveNet checkpoint shipped yet")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_its_baselines_and_makes_sound(name):
    metrics = json.loads((WEIGHTS_DIR / name / "metrics.json").read_text())
    assert metrics["val_bits"] < metrics["histogram_heldout_bits"] - 0.5 < 8
    model = from_pretrained(WaveNet, name)
    # 4 s from silence, as the card's examples: the piano model may wait a second or two before
    # it plays (its pieces have rests), but it must play
    codes = FastWaveNet(model).generate(64000, 1.0, generator=torch.Generator().manual_seed(0))
    audio = mu_law_decode(codes)
    assert 0.003 < float(np.sqrt((audio ** 2).mean())) < 0.5        # neither silence nor clipping


@pytest.mark.skipif(not SHIPPED, reason="no WaveNet checkpoint shipped yet")
def test_without_ffmpeg_the_tab_delivers_the_whole_clip_at_the_end(monkeypatch):
    """Gradio needs ffmpeg to stream audio; without it the tab yields no chunks and hands the
    player the complete clip (the same audio the streaming path writes to the WAV file)."""
    import io

    from tabs import wavenet as tab

    name = next(n for n, folder in tab.CHECKPOINTS.items() if folder == SHIPPED[0])
    args = (name, 1.5, 1.0, 5, None, None, 1.0)
    monkeypatch.setattr(tab, "STREAMING", False)
    outputs = list(tab.generate(*args))
    assert len(outputs) == 1
    (rate, pcm), _, wav_path, status = outputs[0]
    assert rate == 16000 and pcm.dtype == np.int16 and len(pcm) == 24000 and "Done" in status
    monkeypatch.setattr(tab, "STREAMING", True)
    streamed = list(tab.generate(*args))
    # chunks of 0.1 s (the first comes soon), 1 s and 0.4 s, then the plot and the file
    assert len(streamed) == 4
    chunks = [sf.read(io.BytesIO(out[0]), dtype="int16")[0] for out in streamed[:-1]]
    assert np.array_equal(np.concatenate(chunks), pcm)
    assert np.array_equal(sf.read(wav_path, dtype="int16")[0], pcm)


def test_the_cards_loss_curve_lists_each_record_once_and_drops_a_stop_records_training_bits():
    from train.wavenet import curve_rows

    log = [dict(step=s, train_bits=4.0 - s / 1e4, val_bits=4.1 - s / 1e4) for s in range(250, 5001, 250)]
    log.append(dict(step=5001, train_bits=2.9, val_bits=3.6))  # a run stopped one step later
    rows = curve_rows(log, rows=6)
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[0] == 250 and steps[-1] == 5001
    assert 6 <= len(rows) <= 8
    assert rows[-1]["train_bits"] is None and rows[-1]["val_bits"] == 3.6
    assert all(r["train_bits"] is not None for r in rows[:-1])
    whole = curve_rows(log[:-1], rows=6)  # ending on a full record: kept as it is
    assert whole[-1]["step"] == 5000 and whole[-1]["train_bits"] is not None
    assert curve_rows([]) == []


# ------------------------------------------------------------------ the tab, through gradio_client

SPEECH = "Speech (LJSpeech, one speaker)"
WAVE = dict(model_name=SPEECH, seconds=2, temperature=1.0, seed=3, upload=None, clip=None,
            primer_seconds=1.0)
needs_wavenet = pytest.mark.skipif(SPEECH not in WAVENET_MODELS, reason="no speech WaveNet")


def read_wav(path):
    import soundfile as sf

    return sf.read(path, dtype="int16")


@needs_wavenet
def test_wavenet_streams_audio_and_a_seed_reproduces_it(client):
    job = client.submit(**WAVE, api_name="/wavenet_generate")
    updates = list(job)
    audio, plot, wav, status = job.result()
    assert len(updates) >= 3                       # streamed a second at a time, then the end
    assert "Done: 2.0 s" in status and "real time" in status
    data, rate = read_wav(wav)
    assert rate == 16000 and len(data) == 32000
    assert audio and Image.open(plot).size[0] >= 600
    _, _, again, _ = client.predict(**WAVE, api_name="/wavenet_generate")
    assert (read_wav(again)[0] == data).all()
    _, _, other, _ = client.predict(**{**WAVE, "seed": 4}, api_name="/wavenet_generate")
    assert (read_wav(other)[0] != data).mean() > 0.5


@needs_wavenet
def test_a_class_generating_at_once_each_hears_their_own_seed(client, app_url):
    """Six visitors (own sessions) press Generate together with their own seeds and lengths,
    taking turns in the shared loop, while another leaves a long one half-way (cancelled, as a
    closed tab): each WAV is the one their settings give alone."""
    from gradio_client import Client

    asks = [{**WAVE, "seed": 40 + i, "seconds": 0.5 + 0.25 * i} for i in range(6)]
    alone = [read_wav(client.predict(**kw, api_name="/wavenet_generate")[2])[0] for kw in asks]
    visitors = [Client(app_url, verbose=False) for _ in range(len(asks) + 1)]
    leaver = visitors[-1].submit(**{**WAVE, "seconds": 30}, api_name="/wavenet_generate")
    jobs = [v.submit(**kw, api_name="/wavenet_generate") for v, kw in zip(visitors, asks)]
    time.sleep(0.5)
    leaver.cancel()
    for job, want in zip(jobs, alone):
        np.testing.assert_array_equal(read_wav(job.result(timeout=120)[2])[0], want)


@needs_wavenet
def test_wavenet_continues_an_uploaded_primer(client, tmp_path):
    import numpy as np
    import soundfile as sf

    rate = 44100
    t = np.arange(int(rate * 6)) / rate                          # 6 s stereo 24-bit at 44.1 kHz
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "primer.wav"
    sf.write(path, np.stack([tone, tone], 1), rate, subtype="PCM_24")
    _, _, wav, status = client.predict(**{**WAVE, "seconds": 1, "upload": handle_file(str(path)),
                                          "primer_seconds": 1.5}, api_name="/wavenet_generate")
    data, out_rate = read_wav(wav)
    assert out_rate == 16000 and len(data) == 16000 + 24000   # the primer's tail, then 1 s new
    for note in ("last 1.5 s", "mixed to mono", "resampled from 44.1 kHz", "pcm 24"):
        assert note.lower() in status.lower()


@needs_wavenet
@pytest.mark.parametrize("change,message", [
    (dict(seconds=0), "less than minimum"),
    (dict(seconds=-2), "less than minimum"),
    (dict(seconds=10**6), "greater than maximum"),
    (dict(temperature=-0.5), "less than minimum"),
    (dict(temperature=99), "greater than maximum"),
    (dict(seed=-1), "less than minimum"),
    (dict(model_name="WaveNet 2"), "WaveNet 2"),
])
def test_wavenet_bad_settings_get_clear_errors(client, change, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{**WAVE, **change}, api_name="/wavenet_generate")


@needs_wavenet
def test_wavenet_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEfmt this is not audio")
    with pytest.raises(AppError, match="Could not read the upload as audio"):
        client.predict(**{**WAVE, "upload": handle_file(str(junk))}, api_name="/wavenet_generate")
    empty = tmp_path / "empty.wav"
    import numpy as np
    import soundfile as sf

    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AppError, match="empty|no samples"):
        client.predict(**{**WAVE, "upload": handle_file(str(empty))}, api_name="/wavenet_generate")
    *_, status = client.predict(**{**WAVE, "seconds": 0.5}, api_name="/wavenet_generate")
    assert "Done" in status


@needs_wavenet
def test_wavenet_compare_temperatures(client):
    import numpy as np

    audio, plot, status = client.predict(SPEECH, 3, None, None, 1.0, api_name="/wavenet_compare")
    assert "Done: 5 temperatures" in status
    data, rate = read_wav(audio)
    clip, gap = int(1.5 * rate), rate // 4
    assert rate == 16000 and len(data) == 5 * (clip + gap)
    clips = [data[i * (clip + gap):i * (clip + gap) + clip] for i in range(5)]
    assert all(not data[i * (clip + gap) + clip:(i + 1) * (clip + gap)].any() for i in range(5))
    def entropy(c):                                        # bits, of the levels used
        p = np.unique(c, return_counts=True)[1] / len(c)
        return float(-(p * np.log2(p)).sum())

    spread = [entropy(c) for c in clips]                   # T = 0, 0.5, 0.8, 1, 1.3
    assert spread[0] < 1 and spread[0] < spread[1] < spread[3] < spread[4], spread
    assert Image.open(plot).size[1] > 500                  # five spectrogram rows


@needs_wavenet
def test_wavenet_continues_a_shipped_example_clip(client):
    from tabs.wavenet import CLIPS

    clip = next(iter(CLIPS))
    _, _, wav, status = client.predict(**{**WAVE, "seconds": 0.5, "clip": clip, "primer_seconds": 1.0},
                                       api_name="/wavenet_generate")
    data, rate = read_wav(wav)
    assert rate == 16000 and len(data) == 16000 + 8000 and "Done" in status
    assert np.abs(data[:16000]).max() > 3000          # the primer is the real speech clip
    with pytest.raises(AppError, match="LJ999-9999"):
        client.predict(**{**WAVE, "clip": "LJ999-9999"}, api_name="/wavenet_generate")


@needs_wavenet
def test_every_example_is_audible(monkeypatch):
    """The tab's examples, as a visitor runs them (4 s, the default): each writes sound, not
    silence (below about 0.95 these models fall silent)."""
    from tabs import wavenet as tab

    monkeypatch.setattr(tab, "STREAMING", False)
    assert tab.EXAMPLES
    for model_name, temperature, seed, clip in tab.EXAMPLES:
        (rate, pcm), _, _, status = list(tab.generate(model_name, 4.0, temperature, seed, None, clip,
                                                      1.5, progress=lambda *a, **k: None))[-1]
        new = pcm[-4 * rate:].astype(np.float64) / 32768
        frames = new.reshape(-1, rate // 10)
        audible = (np.sqrt((frames ** 2).mean(1)) > 0.01).mean()
        assert np.sqrt((new ** 2).mean()) > 0.01 and audible > 0.3, (model_name, temperature, seed)


def test_input_noise_moves_the_inputs_within_their_range_and_zero_is_no_noise():
    from train.wavenet import noisy

    codes = torch.tensor([[0, 1, 128, 254, 255] * 400])
    rng = np.random.default_rng(0)
    assert noisy(codes, 0.0, rng) is codes
    moved = noisy(codes, 2.0, rng)
    assert moved.dtype == codes.dtype and moved.min() >= 0 and moved.max() <= 255
    step = (moved - codes)[:, 2::5].float()                   # the unclamped middle ones
    assert 1.6 < float(step.std()) < 2.4 and abs(float(step.mean())) < 0.3
    assert torch.equal(codes, torch.tensor([[0, 1, 128, 254, 255] * 400]))   # left alone
