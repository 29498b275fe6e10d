"""Vocoders: the mel front end against hand-computed cases, Griffin-Lim, the edits, the GAN
vocoder's lengths, the WaveNet vocoder's causality and fast loop, the trainers, the tab's
bad inputs and the tab through gradio_client."""
from __future__ import annotations

import json
import math

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch

from models.hub import WEIGHTS_DIR, from_pretrained
from models.mel import (MEL, MelConfig, band_centres, edit, griffin_lim, hz_to_mel, log_mel,
                        log_mel_torch, mel_filters, mel_to_hz, shift, stft, stretch)
from models.runtime import generator
from models.vocoder import GanVocoder, GanVocoderConfig, VocoderPipeline, mel_figure
from models.wavenet import WaveNet, WaveNetConfig, WaveNetPipeline
from tabs import vocoder as tab

RATE = MEL.sample_rate
GAN_SHIPPED = WEIGHTS_DIR / "gan-vocoder-speech"
WAVENET_SHIPPED = WEIGHTS_DIR / "wavenet-vocoder-speech"
needs_models = pytest.mark.skipif(not ((GAN_SHIPPED / "README.md").is_file() and
                                       (WAVENET_SHIPPED / "README.md").is_file()),
                                  reason="the vocoder checkpoints are not installed")


def sine(hz: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def speech() -> np.ndarray:
    path = sorted((tab.CLIP_FOLDER).glob("*.flac"))[0]
    return sf.read(path, dtype="float32")[0]


# ------------------------------------------------------------------ the mel front end
def test_a_one_band_filterbank_is_the_hand_drawn_triangle():
    """8 Hz audio, an 8-point FFT (bins 0-4 Hz), one band: edges 0, 2, 4 Hz (linear below
    1 kHz), so the triangle 0, 1/2, 1, 1/2, 0 scaled to area 1 (x 2 / 4 Hz)."""
    c = MelConfig(sample_rate=8, n_fft=8, win=8, hop=2, n_mels=1, fmax=4)
    assert np.allclose(mel_filters(c), [[0, 0.25, 0.5, 0.25, 0]])


def test_slaneys_mel_scale_is_linear_then_logarithmic():
    assert float(hz_to_mel(1000)) == pytest.approx(15)            # 1 kHz = 15 mels
    assert float(hz_to_mel(6400)) == pytest.approx(42)            # x 6.4 = 27 mels more
    assert float(hz_to_mel(300)) == pytest.approx(4.5)
    f = np.array([50.0, 700, 1000, 3000, 7999])
    assert np.allclose(mel_to_hz(hz_to_mel(f)), f)


def test_the_stft_of_a_sine_on_a_bin_peaks_at_half_the_window_sum():
    """A sine of amplitude A at bin 64 (1 kHz): |X| = A x sum(Hann 640) / 2 = A x 160."""
    with torch.inference_mode():
        mag = stft(torch.from_numpy(sine(1000, amplitude=0.5))).abs().numpy()
    middle = mag[:, 20:-20]
    assert np.all(middle.argmax(0) == 64)
    assert np.allclose(middle[64], 0.5 * 160, rtol=1e-3)


def test_log_mel_frames_floor_and_loudest_band():
    audio = sine(1000)
    mel = log_mel(audio)
    assert mel.shape == (80, len(audio) // 160 + 1) and mel.dtype == np.float32
    nearest = int(np.argmin(np.abs(band_centres() - 1000)))
    assert set(mel[:, 10:-10].argmax(0)) <= {nearest - 1, nearest, nearest + 1}
    assert np.all(log_mel(np.zeros(3200, np.float32)) == pytest.approx(math.log(MEL.floor)))
    assert log_mel(np.zeros(50, np.float32)).shape == (80, 1)       # shorter than half a window


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    audio = speech()
    want = np.log(np.maximum(librosa.feature.melspectrogram(
        y=audio, sr=RATE, n_fft=1024, hop_length=160, win_length=640, n_mels=80, power=1.0,
        pad_mode="reflect"), MEL.floor))
    assert np.abs(log_mel(audio) - want).max() < 1e-3


def test_a_frame_hears_only_half_a_window_either_side():
    """Frame k of the mel depends on samples k x 160 - 320 .. k x 160 + 319, no further: the
    future a vocoder reading frame k knows."""
    audio = speech()[:8000]
    base = log_mel(audio)
    j = 4050
    bumped = audio.copy()
    bumped[j] += 0.5
    changed = np.nonzero(np.abs(log_mel(bumped) - base).max(0) > 1e-6)[0]
    assert set(changed) == {k for k in range(base.shape[1]) if abs(k * 160 - j) < 320}


def test_log_mel_has_gradients_for_the_gan_loss():
    x = torch.from_numpy(sine(440, 0.2)).requires_grad_()
    log_mel_torch(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ------------------------------------------------------------------ Griffin-Lim and the edits
def test_griffin_lim_rebuilds_a_sine_and_a_seed_reproduces_it():
    mel = log_mel(sine(1000, 0.5))
    a = griffin_lim(mel, 30, generator=torch.Generator().manual_seed(1))
    b = griffin_lim(mel, 30, generator=torch.Generator().manual_seed(1))
    c = griffin_lim(mel, 30, generator=torch.Generator().manual_seed(2))
    assert len(a) == (mel.shape[1] - 1) * 160 and np.array_equal(a, b) and not np.array_equal(a, c)
    spec = np.abs(np.fft.rfft(a[800:-800]))
    assert abs(np.argmax(spec) * RATE / len(a[800:-800]) - 1000) < 5


def test_stretch_shift_and_edit_change_what_they_say():
    mel = log_mel(sine(1000, 1.0))
    assert stretch(mel, 2.0).shape == (80, 2 * mel.shape[1])
    assert stretch(mel, 0.5).shape == (80, round(mel.shape[1] / 2))
    up = shift(mel, 12)                                 # an octave: the peak band near 2 kHz
    peak = band_centres()[int(np.median(up[:, 10:-10].argmax(0)))]
    assert 1800 < peak < 2200
    assert np.array_equal(shift(mel, 0), mel)
    erased = edit(mel, 0.2, 0.6, 500, 2000, "erase")
    frames = np.arange(mel.shape[1]) * 0.01
    inside = (frames >= 0.2) & (frames <= 0.6)
    bands = (band_centres() >= 500) & (band_centres() <= 2000)
    assert np.all(erased[np.ix_(bands, inside)] == np.float32(math.log(MEL.floor)))
    assert np.array_equal(erased[:, ~inside], mel[:, ~inside])
    painted = edit(mel, 0.2, 0.6, 3000, 4000, "paint")
    assert painted[np.ix_(band_centres() > 3000, inside)].mean() > mel.mean()
    with pytest.raises(ValueError):
        edit(mel, 0, 1, 0, 100, "smudge")


def test_the_mel_figure_draws():
    image = mel_figure(log_mel(sine(300, 0.5)), "a sine", box=(0.1, 0.3, 200, 500))
    assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 10


# ------------------------------------------------------------------ the GAN vocoder
def tiny_gan() -> GanVocoder:
    torch.manual_seed(0)
    return GanVocoder(GanVocoderConfig(channels=16, resblock_kernels=(3,),
                                       resblock_dilations=((1, 3),))).eval()


@pytest.mark.parametrize("frames", [1, 2, 7, 51])
def test_the_gan_writes_a_hop_of_audio_per_frame_in_range(frames):
    gan = tiny_gan()
    mel = np.random.default_rng(frames).normal(-5, 2, (80, frames)).astype(np.float32)
    audio = gan(mel)
    assert audio.shape == (frames * 160,) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 1
    pipe = VocoderPipeline(gan=gan)
    assert len(pipe.gan_vocode(mel)) == (frames - 1) * 160      # as long as Griffin-Lim's
    assert np.array_equal(pipe.gan_vocode(mel), pipe.gan_vocode(mel))


def test_a_gan_trained_on_another_front_end_is_refused():
    config = GanVocoderConfig(channels=16, resblock_kernels=(3,), resblock_dilations=((1,),),
                              mel=MelConfig(hop=160, n_mels=80, win=400).to_dict())
    with pytest.raises(ValueError, match="front end"):
        VocoderPipeline(gan=GanVocoder(config))
    with pytest.raises(ValueError, match="hop"):
        GanVocoderConfig(upsample=(4, 4))


# ------------------------------------------------------------------ the WaveNet vocoder
def tiny_wavenet() -> WaveNet:
    torch.manual_seed(0)
    model = WaveNet(WaveNetConfig(residual_channels=8, gate_channels=8, skip_channels=8,
                                  head_channels=16, cycle=4, stacks=1, cond_features=80,
                                  cond_hop=160, cond_channels=8,
                                  cond_pad=math.log(MEL.floor), cond_offset=-5.9,
                                  cond_scale=1 / 2.2)).eval()
    with torch.no_grad():                        # make the conditioning matter
        model.cond_proj.weight.mul_(10)
    return model


def test_the_wavenet_vocoder_never_reads_beyond_its_frames():
    """Output t (predicting sample t + 1) may read codes up to t and mel frames up to that of
    sample t + 1 plus the conditioning net's margin, and nothing later."""
    model = tiny_wavenet()
    c = model.config
    m, frames = c.cond_margin, 12
    codes = torch.from_numpy(np.random.default_rng(0).integers(0, 256, frames * 160))[None]
    mel = torch.randn(1, 80, frames + 2 * m)
    t = 5 * 160 + 37                                             # in frame 5
    with torch.no_grad():
        base = model(codes, mel)[0, :, :t + 1]
        later = codes.clone()
        later[0, t + 1:] = 128
        assert torch.equal(model(later, mel)[0, :, :t + 1], base)
        last = (t + 1) // 160 + m                                # the frame of t + 1, + margin
        future = mel.clone()
        future[..., m + last + 1:] += 3
        assert torch.allclose(model(codes, future)[0, :, :t + 1], base, atol=1e-6)
        near = mel.clone()
        near[..., m + last] += 3
        assert not torch.allclose(model(codes, near)[0, :, :t + 1], base, atol=1e-4)


def test_the_fast_loop_is_the_plain_forward_with_a_mel(fast_vs_plain):
    model = tiny_wavenet()
    fast_and_plain_agree(fast_vs_plain, model, log_mel(speech()[:6400]))


def fast_and_plain_agree(fast_vs_plain, model: WaveNet, mel: np.ndarray) -> None:
    """Teacher-forced through a mel: the compiled loop's next-sample distributions equal the
    convolutional forward's."""
    from models.wavenet import SILENCE

    c = model.config
    codes = np.random.default_rng(0).integers(90, 166, (mel.shape[1] - 1) * c.cond_hop)
    primer = np.full(-(-c.receptive_field // c.cond_hop) * c.cond_hop, SILENCE)
    recorded, plain = fast_vs_plain(model, codes, mel, primer=primer, fill=math.log(MEL.floor))
    p, q = torch.softmax(torch.from_numpy(plain), -1), torch.softmax(torch.from_numpy(recorded), -1)
    assert float((0.5 * (p - q).abs().sum(-1)).max()) < 1e-4


def test_a_warm_start_from_an_unconditioned_export_begins_as_that_model(tmp_path):
    """The mel branch's last projection starts at zero (so the model is the old one), the
    rest of the branch at its fresh initialisation (so it can learn)."""
    from models.hub import save_pretrained
    from train.common import WeightAverage
    from train.wavenet import warm_start

    torch.manual_seed(0)
    sizes = dict(residual_channels=8, gate_channels=8, skip_channels=8, head_channels=16,
                 cycle=4, stacks=1)
    old = WaveNet(WaveNetConfig(**sizes)).eval()
    save_pretrained(old, tmp_path / "old", half=False, training=dict(step=7, samples_seen=70))
    new = WaveNet(WaveNetConfig(**sizes, cond_features=80, cond_channels=8))
    ema = WeightAverage(new, 0.9)
    assert warm_start(new, ema, tmp_path / "old") == (7, 70)
    assert float(new.cond_proj.weight.detach().abs().max()) == 0
    assert float(new.cond_net[0].weight.detach().abs().max()) > 0
    codes = torch.from_numpy(np.random.default_rng(1).integers(0, 256, 800))[None]
    mel = torch.randn(1, 80, 5 + 2 * new.config.cond_margin)
    with torch.no_grad():
        assert torch.allclose(new.eval()(codes, mel), old(codes), atol=1e-5)
    with pytest.raises(ValueError, match="lacks"):
        warm_start(WaveNet(WaveNetConfig(**{**sizes, "cycle": 3})), ema, tmp_path / "old")


def test_the_pipeline_streams_the_mels_length_and_a_seed_reproduces_it():
    pipe = VocoderPipeline(wavenet=WaveNetPipeline(tiny_wavenet()))
    mel = log_mel(speech()[:4800])
    a = pipe.wavenet_vocode(mel, generator=generator(3))
    b = pipe.wavenet_vocode(mel, generator=generator(3))
    assert len(a) == (mel.shape[1] - 1) * 160 and np.array_equal(a, b)
    assert not np.array_equal(a, pipe.wavenet_vocode(mel, generator=generator(4)))
    parts = list(pipe.wavenet_stream(mel, generator=generator(3), chunk=1000, shared=False))
    assert np.array_equal(np.concatenate(parts), a) and len(parts) == math.ceil(len(a) / 1000)


# ------------------------------------------------------------------ trainers
def speech_data() -> bool:
    from train.data import AUDIO_SETS, data_root

    return (data_root() / "audio" / AUDIO_SETS["speech"][0]).is_dir()


@pytest.mark.skipif(not speech_data(), reason="the training data is not here")
@pytest.mark.parametrize("model", ["gan", "wavenet"])
def test_the_tiny_trainers_export_and_resume(model, tmp_path):
    from train.vocoder import main

    out, run = tmp_path / "out", tmp_path / "run"
    main(["--model", model, "--tiny", "--steps", "10", "--out", str(out), "--run-dir", str(run)])
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    main(["--model", model, "--tiny", "--steps", "20", "--out", str(out), "--run-dir", str(run)])
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [10, 20]


# ------------------------------------------------------------------ the tab's inputs
def rebuild(**change):
    args = dict(source="Example sentence", clip=tab.DEFAULT_CLIP, upload=None, speed=1.0,
                pitch=0, mode="None", start=0.5, end=1.0, low=0, high=8000, temperature=1.0,
                seed=0)
    args.update(change)
    return list(tab.rebuilding(**args, progress=lambda *a, **k: None))


@pytest.mark.parametrize("change, message", [
    (dict(speed=5), "Speed"), (dict(speed=float("nan")), "Speed"), (dict(pitch=40), "Pitch"),
    (dict(temperature=-1), "temperature"), (dict(mode="Smudge"), "Unknown edit"),
    (dict(mode="Erase", start=2, end=1), "edit box is empty"), (dict(seed=-3), "Seed"),
    (dict(clip="LJ999"), "Unknown example"), (dict(source="Telepathy"), "Unknown source"),
    (dict(source="Your recording"), "Record or upload"),
])
def test_bad_settings_get_a_clear_error(change, message):
    with pytest.raises(gr.Error, match=message):
        rebuild(**change)


def test_bad_recordings_get_a_clear_error_and_long_ones_are_cut(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    short = tmp_path / "short.wav"
    sf.write(short, sine(200, 0.05), 16000)
    for path, message in ((silent, "silent"), (corrupt, "Could not read"), (short, "shorter")):
        with pytest.raises(gr.Error, match=message):
            tab.recording("Your recording", None, str(path))
    long = tmp_path / "minute.flac"       # a minute of stereo 44.1 kHz, clipping
    t = np.arange(60 * 44100) / 44100
    wave = np.clip(1.5 * np.sin(2 * np.pi * 220 * t), -1, 1).astype(np.float32)
    sf.write(long, np.stack([wave, wave], 1), 44100)
    audio, notes, _ = tab.recording("Your recording", None, str(long))
    said = " ".join(notes)
    assert len(audio) == tab.MAX_SECONDS * RATE
    assert "first 8 s are used" in said and "2 channels" in said and "44.1 kHz" in said
    assert "clipped" in said
    assert abs(np.abs(audio).max() - tab.LEVEL) < 0.01


def test_a_recording_is_read_once_per_visit_and_a_new_file_again(tmp_path, monkeypatch):
    calls = []
    real = tab.read_audio
    monkeypatch.setattr(tab, "read_audio", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    tab.decoded.cache_clear()
    voice = tmp_path / "voice.wav"
    sf.write(voice, np.stack([sine(200, 1.0)] * 2, 1), 16000)     # stereo: a note each time
    first = tab.recording("Your recording", None, str(voice))
    first[0][:] = 0                                              # a request's copy is its own
    again = tab.recording("Your recording", None, str(voice))
    assert calls == [str(voice)] and np.abs(again[0]).max() > 0.1
    assert again[1] == first[1] and sum("channels" in n for n in again[1]) == 1
    sf.write(voice, sine(300, 2.0), 16000)                       # a new file at the same path
    assert len(tab.recording("Your recording", None, str(voice))[0]) == 2 * RATE
    assert len(calls) == 2


def test_music_instead_of_speech_is_rebuilt_too(tmp_path):
    """A chord is not speech: the vocoders still make a sound of the mel's length."""
    chord = tmp_path / "chord.wav"
    sf.write(chord, sine(262, 1.0, 0.3) + sine(330, 1.0, 0.3) + sine(392, 1.0, 0.3), 16000)
    outputs = rebuild(source="Your recording", upload=str(chord))
    rate, gl = outputs[1][2]
    assert rate == RATE and abs(len(gl) - RATE) <= 160
    assert "Done" in outputs[-1][-1]


# ------------------------------------------------------------------ the shipped checkpoints
@needs_models
def test_shipped_wavenet_vocoder_fast_loop_is_the_plain_forward(fast_vs_plain):
    model = from_pretrained(WaveNet, WAVENET_SHIPPED)
    fast_and_plain_agree(fast_vs_plain, model, log_mel(speech()[:8000]))


@needs_models
def test_shipped_vocoders_match_their_cards_on_a_held_out_clip():
    """The first held-out clip, as train.vocoder_measure measures it: the GAN's log-mel
    distance and PESQ are what its card's per-clip row says."""
    pytest.importorskip("pesq")
    from train.vocoder_measure import compare

    card = json.loads((GAN_SHIPPED / "metrics.json").read_text())
    name, row = next(iter(card["per_clip"].items()))
    path = tab.CLIP_FOLDER / f"{name}.flac"
    if not path.is_file():
        pytest.skip(f"{name} does not ship in examples/speech")
    audio = sf.read(path, dtype="float32")[0]
    gan = GanVocoder.from_pretrained(str(GAN_SHIPPED))
    got = compare(VocoderPipeline(gan=gan).gan_vocode(log_mel(audio)), audio)
    assert got["mel_db"] == pytest.approx(row["gan"]["mel_db"], abs=0.05)
    assert got["pesq"] == pytest.approx(row["gan"]["pesq"], abs=0.05)
    table, learning = tab.measured()                      # the tab shows the card's numbers
    assert f"| GAN vocoder | {card['rows']['gan']['mel_db']:.1f} dB |" in table
    assert ("Still learning" in learning) == (not all(card["beats_griffin_lim"].values()))


def latest(job) -> list:
    """Each output's last value over a streaming job's updates (skipped ones are updates)."""
    outs = job.outputs()
    skipped = lambda v: isinstance(v, dict) and v.get("__type__") == "update"  # noqa: E731
    return [next((o[i] for o in reversed(outs) if not skipped(o[i])), None)
            for i in range(len(outs[-1]))]


@needs_models
def test_the_tab_rebuilds_through_the_api(client):
    from gradio_client.exceptions import AppError

    args = dict(source="Example sentence", clip=tab.DEFAULT_CLIP, upload=None, speed=1.0,
                pitch=0, mode="None", start=0.5, end=1.0, low=0, high=8000, temperature=1.0,
                seed=0)
    job = client.submit(**args, api_name="/vocoder_rebuild")
    job.result()
    mel, original, gl, gan, wavenet, compare, times, status = latest(job)
    assert len(job.outputs()) >= 3 and "Done" in status
    assert all(x for x in (mel, original, gl, gan, wavenet, compare))
    assert "Griffin-Lim" in times and "GAN vocoder" in times and "WaveNet vocoder" in times
    clip = sf.read(tab.CLIP_FOLDER / tab.CLIPS[tab.DEFAULT_CLIP]["file"])[0]
    for path in (gl, gan):
        data, rate = sf.read(path)
        assert rate == RATE and abs(len(data) - len(clip)) <= 160
    job = client.submit(**{**args, "speed": 1.5, "pitch": 3}, api_name="/vocoder_rebuild")
    job.result()
    assert abs(len(sf.read(latest(job)[2])[0]) - 1.5 * len(clip)) <= 320
    with pytest.raises(AppError, match="Speed|greater than maximum"):
        client.predict(**{**args, "speed": 9}, api_name="/vocoder_rebuild")
    assert "Done" in client.predict(**args, api_name="/vocoder_rebuild")[-1]


@pytest.mark.skipif(not speech_data(), reason="the training data is not here")
def test_a_gan_snapshot_goes_on_where_the_run_stopped(tmp_path):
    from train.vocoder import main

    out, run, snap = tmp_path / "out", tmp_path / "run", tmp_path / "snap"
    main(["--model", "gan", "--tiny", "--steps", "10", "--out", str(out), "--run-dir", str(run)])
    main(["--snapshot", str(run), str(snap)])
    assert json.loads((snap / "state.json").read_text())["step"] == 10
    main(["--model", "gan", "--tiny", "--steps", "20", "--out", str(out), "--run-dir",
          str(tmp_path / "run2"), "--warm-start", str(snap)])
    steps = [json.loads(line)["step"] for line in (tmp_path / "run2" / "log.jsonl").read_text().splitlines()]
    assert steps == [20]
    main(["--snapshot", str(tmp_path / "run2"), str(snap)])       # the history stays in the log
    assert [json.loads(line)["step"] for line in (snap / "log.jsonl").read_text().splitlines()] \
        == [10, 20]
