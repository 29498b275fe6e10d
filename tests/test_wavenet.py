"""WaveNet: mu-law, causality, receptive field, the three generation paths, training, audio I/O,
the shipped checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from models.audio import AudioError, normalise, read_audio, spectrogram, wav_bytes
from models.fastwavenet import FastWaveNet
from models.hub import WEIGHTS_DIR, from_pretrained
from models.wavenet import (SILENCE, IncrementalState, WaveNet, WaveNetConfig, generate_incremental,
                            generate_naive, mu_law_decode, mu_law_encode, receptive_field,
                            teacher_forced_logits)

SHIPPED = [name for name in ("wavenet-speech", "wavenet-piano", "wavenet-notes")
           if (WEIGHTS_DIR / name / "README.md").is_file()]


def tiny(classes: int = 0, seed: int = 0, cycle: int = 4, stacks: int = 2) -> WaveNet:
    torch.manual_seed(seed)
    model = WaveNet(WaveNetConfig(residual_channels=8, gate_channels=8, skip_channels=16,
                                  head_channels=16, cycle=cycle, stacks=stacks, classes=classes))
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


def test_conditioning_changes_the_output():
    model = tiny(classes=5)
    x = torch.from_numpy(codes_of(64))[None]
    with torch.no_grad():
        a, b = model(x, torch.tensor([1])), model(x, torch.tensor([3]))
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError):
        model(x)


# ------------------------------------------------------------------ the generation paths
@pytest.mark.parametrize("classes,cls", [(0, None), (5, 2)])
def test_fast_and_eager_buffers_compute_the_plain_forward(classes, cls):
    model = tiny(classes)
    codes = codes_of(300)
    plain = teacher_forced_logits(model, codes, cls)
    fast = FastWaveNet(model, cls).feed(codes, record=True)
    np.testing.assert_allclose(fast, plain, atol=2e-5, rtol=1e-5)
    state = IncrementalState(model, cls)
    eager = np.stack([state.step(int(c)).numpy() for c in codes])
    np.testing.assert_allclose(eager, plain, atol=2e-5, rtol=1e-5)


def test_fast_path_with_channel_counts_that_are_not_multiples_of_four():
    """The compiled matrix-vector products take four rows at a time; the rows left over (here
    every layer has some) must be computed too."""
    torch.manual_seed(3)
    model = WaveNet(WaveNetConfig(residual_channels=6, gate_channels=5, skip_channels=7,
                                  head_channels=9, cycle=3, stacks=2)).eval()
    codes = codes_of(200, seed=1)
    plain = teacher_forced_logits(model, codes, None)
    np.testing.assert_allclose(FastWaveNet(model).feed(codes, record=True), plain,
                               atol=2e-5, rtol=1e-5)


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


def test_temperature_zero_is_greedy_and_high_temperature_spreads():
    model = tiny()
    fast = FastWaveNet(model)
    g1 = fast.generate(500, 0.0, generator=torch.Generator().manual_seed(1))
    g2 = fast.generate(500, 0.0, generator=torch.Generator().manual_seed(2))
    assert (g1 == g2).all()                                          # no randomness at T=0
    hot = fast.generate(4000, 3.0, generator=torch.Generator().manual_seed(1))
    cold = fast.generate(4000, 0.3, generator=torch.Generator().manual_seed(1))
    assert len(np.unique(hot)) > len(np.unique(cold))


# ------------------------------------------------------------------ training
def test_tiny_training_run_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    pytest.importorskip("soundfile")
    from train.data import data_root
    from train.wavenet import main

    if not (data_root() / "audio" / "ljspeech_16k").is_dir():
        pytest.skip("the project's audio data is not here")
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


def test_notes_get_a_lead_in_of_silence_and_onset_windows_score_the_attack():
    """Generation starts from a receptive field of silence, so the note model must be trained
    to strike a note out of silence: every note gets rf + ONSET_LEAD silent codes in front and
    fades in over ONSET_FADE samples (the recordings start mid-wave), and onset windows put the
    attack inside the scored part with only silence as context."""
    from train.data import AudioSet
    from train.wavenet import ONSET_FADE, ONSET_LEAD, batch_of, with_lead_in

    rf, window = 17, 300                          # the trainer scores 8,000 (tiny: 1,000)
    audio = np.concatenate([np.full(100, 0.3), 0.5 * np.sin(np.arange(2900) / 3.0)])
    note = mu_law_encode(audio).astype(np.uint8)  # starts loud at once, as the recordings do
    data = with_lead_in(AudioSet("notes", "", [note, note], [note], [3, 5], [3], 16000), rf)
    clip = data.train[0]
    assert all(len(c) == rf + ONSET_LEAD + 3000 for c in data.train + data.val)
    assert (clip[:rf + ONSET_LEAD] == SILENCE).all()
    head = np.abs(mu_law_decode(clip[rf + ONSET_LEAD:][:ONSET_FADE].astype(np.int64)))
    assert head[0] < 0.003 and (np.diff(head) >= 0).all() and head[-1] > 0.28     # a ramp
    assert (clip[rf + ONSET_LEAD + ONSET_FADE:] == note[ONSET_FADE:]).all()        # then as is
    x, cls = batch_of(data.train, data.train_classes, rf + window, 64,
                      np.random.default_rng(0), onset_share=1.0)
    assert set(cls.tolist()) <= {3, 5}
    loud = note[0]
    for row in x.numpy():
        assert (row[:rf] == SILENCE).all()                    # context: silence only
        assert (row[rf:] == loud).any()                       # the attack is scored
    plain, _ = batch_of(data.train, data.train_classes, rf + window, 64, np.random.default_rng(0))
    assert sum((row[:rf] == SILENCE).all() for row in plain.numpy()) < 16   # mostly inside notes
    speech = AudioSet("speech", "", [note], [note], [], [], 16000)
    assert (with_lead_in(speech, rf).train[0] == note).all()  # only notes are changed


def harmonic_tone(f0: float, amplitudes, seconds: float = 1.5, rate: int = 16000, seed: int = 0):
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t) for h, a in enumerate(amplitudes))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (np.exp(-2 * t) * (tone + noise)).astype(np.float32)


def test_estimate_pitch_on_tones_with_a_weak_fundamental_or_a_single_partial():
    from models.audio import estimate_pitch, midi_to_hz

    assert estimate_pitch(np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000) == \
        pytest.approx(69, abs=0.05)
    # a low A (MIDI 33) whose fundamental is nearly missing, as on a piano: not an octave up
    bass = harmonic_tone(float(midi_to_hz(33)), [0.05, 0.5, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1])
    assert estimate_pitch(bass, 16000) == pytest.approx(33, abs=0.15)
    # a top note (MIDI 105, 3.5 kHz): one partial below Nyquist, plus a low thump
    t = np.arange(24000) / 16000
    top = harmonic_tone(float(midi_to_hz(105)), [0.3]) + 0.05 * np.sin(2 * np.pi * 90 * t) * (t < .05)
    assert estimate_pitch(top, 16000) == pytest.approx(105, abs=0.15)
    assert estimate_pitch(np.zeros(16000), 16000) is None
    assert estimate_pitch(1e-5 * bass, 16000) is None                  # below -60 dB: silent


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
    from train.wavenet_card import bits_by_kind

    kinds = np.array([VOICED, UNVOICED, VOICED, SILENT, UNVOICED])
    bits_at = np.repeat([9.0, 5.0, 2.0, 1.0, 4.0], 10)      # frames of 10 samples, hop 10
    bits_at[21] = 4.0                                       # frame 2 averages 2.2
    out = bits_by_kind(bits_at, kinds, frame=10, hop=10, start=10)
    assert out[VOICED] == [pytest.approx(2.2)]              # frame 0 starts before ``start``
    assert out[UNVOICED] == [5.0, 4.0] and out[SILENT] == [1.0]
    # a frame running past the end is left out
    assert bits_by_kind(bits_at[:45], kinds, 10, 10, 0)[UNVOICED] == [5.0]


def test_the_cards_voicing_verdict_follows_its_numbers():
    from train.wavenet_card import diagnosis_section

    def card(voiced_bits, primed):
        return diagnosis_section(dict(
            teacher_forced=dict(silent=dict(frames=10, bits=2.0), unvoiced=dict(frames=50, bits=4.4),
                                voiced=dict(frames=40, bits=voiced_bits)),
            clips=10, primed_clips=6, primer_seconds=1.0, seconds=0.5, primed_voiced=primed,
            primed_frames=200, real_next_voiced=0.45, real_next_frames=250))

    lost = card(3.0, 0.06)
    assert "| voiced | 40 | 3.00 |" in lost and "**6%**" in lost
    assert "the first 0.5 s it writes after a real voice are mostly unvoiced" in lost
    assert "keeps a real voice" in card(3.0, 0.4)
    assert "does not yet predict voiced frames" in card(4.6, 0.06)


def test_the_voicing_diagnosis_runs_on_real_held_out_speech():
    pytest.importorskip("soundfile")
    from train.data import data_root
    from train.wavenet_card import voicing_diagnosis

    if not (data_root() / "audio" / "ljspeech_16k").is_dir():
        pytest.skip("the project's audio data is not here")
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
    cls = model.config.class_names.index("MIDI 60") if model.config.classes else None
    codes = codes_of(6000, seed=3)
    plain = torch.softmax(torch.from_numpy(teacher_forced_logits(model, codes, cls)), -1)
    fast = torch.softmax(torch.from_numpy(FastWaveNet(model, cls).feed(codes, record=True)), -1)
    total_variation = 0.5 * (plain - fast).abs().sum(-1)
    assert float(total_variation.max()) < 1e-4


@pytest.mark.skipif(not SHIPPED, reason="no WaveNet checkpoint shipped yet")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_its_baselines_and_makes_sound(name):
    metrics = json.loads((WEIGHTS_DIR / name / "metrics.json").read_text())
    assert metrics["val_bits"] < metrics["histogram_heldout_bits"] - 0.5 < 8
    model = from_pretrained(WaveNet, name)
    cls = model.config.class_names.index("MIDI 60") if model.config.classes else None
    # 4 s from silence, as the card's examples: the piano model may wait a second or two before
    # it plays (its pieces have rests), but it must play
    codes = FastWaveNet(model, cls).generate(64000, 1.0, generator=torch.Generator().manual_seed(0))
    audio = mu_law_decode(codes)
    assert 0.003 < float(np.sqrt((audio ** 2).mean())) < 0.5        # neither silence nor clipping


@pytest.mark.skipif(not SHIPPED, reason="no WaveNet checkpoint shipped yet")
def test_without_ffmpeg_the_tab_delivers_the_whole_clip_at_the_end(monkeypatch):
    """Gradio needs ffmpeg to stream audio; without it the tab yields no chunks and hands the
    player the complete clip (the same audio the streaming path writes to the WAV file)."""
    import io

    from tabs import wavenet as tab

    name = next(n for n, folder in tab.CHECKPOINTS.items() if folder == SHIPPED[0])
    args = (name, 1.5, 1.0, 5, None, None, 1.0, None)
    monkeypatch.setattr(tab, "STREAMING", False)
    outputs = list(tab.generate(*args))
    assert len(outputs) == 1
    (rate, pcm), _, wav_path, status = outputs[0]
    assert rate == 16000 and pcm.dtype == np.int16 and len(pcm) == 24000 and "Done" in status
    monkeypatch.setattr(tab, "STREAMING", True)
    streamed = list(tab.generate(*args))
    assert len(streamed) == 3     # chunks of 1 s and 0.5 s, then the plot and the file
    chunks = [sf.read(io.BytesIO(out[0]), dtype="int16")[0] for out in streamed[:-1]]
    assert np.array_equal(np.concatenate(chunks), pcm)
    assert np.array_equal(sf.read(wav_path, dtype="int16")[0], pcm)


def test_the_tab_says_which_note_was_played():
    from tabs.wavenet import played

    t = np.arange(24000) / 16000
    a4 = harmonic_tone(440.0, [0.3, 0.2, 0.1])
    assert played(a4, 16000, "MIDI 69") == (" You asked for A4; it played **A4** (+0 cents, "
                                            "measured from the harmonics).")
    sharp_c5 = 0.3 * np.sin(2 * np.pi * 523.25 * 2 ** (20 / 1200) * t)
    assert "asked for A4; it played **C5** (+20 cents" in played(sharp_c5, 16000, "MIDI 69")
    assert "stayed silent" in played(np.zeros(24000), 16000, "MIDI 60")


def test_the_cards_loss_curve_lists_each_record_once_and_drops_a_stop_records_training_bits():
    from train.wavenet_card import curve_rows

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
