"""Speech vocoders tab: a recording's mel spectrogram (optionally stretched, shifted or edited)
rebuilt into speech by Griffin-Lim, the GAN vocoder and the WaveNet vocoder, side by side.
Widgets, validation and wiring; the maths is models/mel.py and models/vocoder.py."""
from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import gradio as gr
import numpy as np

from models.audio import AudioError, figure_rows, normalise, read_audio, to_int16, wav_bytes
from models.hub import REPO_ROOT, WEIGHTS_DIR
from models.mel import MEL, edit, log_mel, shift, stretch
from models.runtime import generator, shared_result
from models.vocoder import VocoderPipeline, mel_figure

from .common import STREAMING, Deadline, Lane, Lazy, TabContext, Technique, number, seed_value, \
    sentence, timed, visitor_of

TECHNIQUE = Technique("vocoder", "Speech vocoders", "sound",
                      "Speech rebuilt from a mel spectrogram: Griffin-Lim, a GAN and a WaveNet.",
                      tab="Vocoders")
GAN_FOLDER, WAVENET_FOLDER = "gan-vocoder-speech", "wavenet-vocoder-speech"


def _installed(folder: str) -> str | None:
    return folder if (WEIGHTS_DIR / folder / "config.json").is_file() else None


GAN, WAVENET = _installed(GAN_FOLDER), _installed(WAVENET_FOLDER)
AVAILABLE = True             # Griffin-Lim needs no checkpoint
PIPELINES = {"vocoders": Lazy("the vocoders",
                              lambda report: VocoderPipeline.from_pretrained(GAN, WAVENET, report))}
CLIP_FOLDER = REPO_ROOT / "examples" / "speech"
MAX_SECONDS = 8.0            # of a recording (the first 8 s; stretched, at most 16 s are written)
LEVEL = 0.85                 # uploads are scaled to LJSpeech's typical peak
SOURCES = ["Example sentence", "Your recording"]
EDITS = ["None", "Erase", "Paint"]
LANE = Lane("vocoder", slots=48, per_visitor=2)
# Griffin-Lim and the GAN use every core for a second or two: one rebuild at a time, in turn
# (the WaveNets then take turns in models/wavenet.py's shared rounds)
CPU_LANE = Lane("Griffin-Lim and GAN", slots=1, per_visitor=2)
CHUNK_SECONDS = 0.5


def card(folder: str | None) -> dict:
    path = WEIGHTS_DIR / (folder or "-") / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def example_clips() -> dict[str, dict]:
    listing = CLIP_FOLDER / "clips.json"
    if not listing.is_file():
        return {}
    return {f"{c['id']}: \u201c{c['transcript'][:60]}{'...' if len(c['transcript']) > 60 else ''}"
            f"\u201d": c for c in json.loads(listing.read_text())}


CLIPS = example_clips()
DEFAULT_CLIP = next(iter(CLIPS), None)

EXPLAIN = """
**What a mel spectrogram keeps, and what it loses.** Every 10 ms the recording's spectrum is
measured in 80 bands, narrow at low pitches and wide at high ones, as the ear hears (the *mel*
scale), and only the loudness of each band is kept. Gone are the *phases*: where in its cycle
each frequency is. A vocoder has to invent them.

* **Griffin-Lim** (1984, no learning) guesses random phases and repeatedly makes them agree with
  the loudness it was given. The loudness comes out right, but the phases of neighbouring
  frequencies do not line up as a voice's do: it sounds *metallic*, phasey.
* **GAN vocoder** (HiFi-GAN's design): a network of transposed convolutions turns the 80 numbers
  per frame into 160 samples per frame, all at once, in one pass. During training, discriminators
  judged whether its audio was real: it learned what speech waveforms look like. One pass makes it
  tens of times faster than real time.
* **WaveNet vocoder**: the WaveNet of the WaveNet tab, writing one sample at a time, but
  **conditioned** on the mel: every layer's gates get a bias computed from the current frames, so
  the spectrogram tells it what to say and it only has to decide the exact waveform. 16,000
  network steps per second of audio make it the slowest (streamed as it writes).
* **Change the conditioning**: *speed* stretches the frames in time (slower or faster speech,
  same pitch); *pitch* moves every band up or down (voice and formants together); *edit*
  erases a box of the spectrogram (that sound disappears) or paints one (a buzz the vocoders
  must make a waveform for).
"""


def pipeline(progress=None) -> VocoderPipeline:
    return PIPELINES["vocoders"].get(progress)


@shared_result(maxsize=8)
def decoded(path: str, stamp: tuple[int, int]) -> tuple[np.ndarray, tuple[str, ...]]:
    """A file read and resampled once for the preview and the rebuild that follows it (a
    browser's recording goes through ffmpeg); ``stamp`` (size, mtime) tells a new file at the
    same path. The cached array is kept read-only; callers take a copy."""
    audio, notes = read_audio(path, MEL.sample_rate, MAX_SECONDS, head=True)
    audio.flags.writeable = False
    return audio, tuple(notes)


def recording(source, clip, upload) -> tuple[np.ndarray, list[str], str]:
    """The recording to rebuild (float at 16 kHz), notes on what was done to it, a title."""
    if source not in SOURCES:
        raise gr.Error(f"Unknown source {source!r}; choose one of: {', '.join(SOURCES)}.")
    if source == "Example sentence":
        if clip not in CLIPS:
            raise gr.Error(f"Unknown example {clip!r}.")
        path, title = CLIP_FOLDER / CLIPS[clip]["file"], f"LJSpeech {CLIPS[clip]['id']} (held out)"
    else:
        if not upload:
            raise gr.Error("Record or upload your voice first (or pick an example sentence).")
        path, title = upload, "your recording"
    try:
        info = Path(path).stat()
        audio, read_notes = decoded(str(path), (info.st_size, info.st_mtime_ns))
    except OSError:
        raise gr.Error("The recording could not be read; upload it again.") from None
    except AudioError as exc:
        raise gr.Error(str(exc))
    audio, notes = audio.copy(), list(read_notes)         # this request's own
    if len(audio) < MEL.sample_rate // 10:
        raise gr.Error("The recording is shorter than 0.1 s: record a sentence.")
    peak = float(np.abs(audio).max())
    if peak < 1e-3:
        raise gr.Error("The recording is silent (its loudest sample is below -60 dB): check "
                       "the microphone.")
    clipped = float(np.mean(np.abs(audio) > 0.99))
    if clipped > 0.001:
        notes.append(f"{clipped:.1%} of its samples are clipped (too loud at the microphone)")
    if source != "Example sentence":
        audio, note = normalise(audio, LEVEL)
        if note:
            notes.append(note.replace("primer level", "level"))
    return audio, notes, title


def rebuild(source, clip, upload, speed, pitch, mode, start, end, low, high, temperature, seed,
            request: gr.Request = None, progress=gr.Progress()):
    """Mel first; then Griffin-Lim and the GAN (instant); then the WaveNet, streamed."""
    with LANE.ticket(visitor_of(request)) as ticket:
        while not ticket.admitted(timeout=1.0):
            yield (gr.skip(),) * 7 + (ticket.message(),)
        yield from rebuilding(source, clip, upload, speed, pitch, mode, start, end, low, high,
                              temperature, seed, progress)


def checked(speed, pitch, mode, start, end, low, high, temperature, seed):
    speed = number(speed, "Speed (x slower)", 0.5, 2.0)
    pitch = number(pitch, "Pitch (semitones)", -12, 12)
    if mode not in EDITS:
        raise gr.Error(f"Unknown edit {mode!r}; choose one of: {', '.join(EDITS)}.")
    start = number(start, "Edit from (s)", 0, 2 * MAX_SECONDS)
    end = number(end, "Edit to (s)", 0, 2 * MAX_SECONDS)
    low = number(low, "Edit lowest frequency (Hz)", 0, MEL.fmax)
    high = number(high, "Edit highest frequency (Hz)", 0, MEL.fmax)
    if mode != "None" and (end <= start or high <= low):
        raise gr.Error("The edit box is empty: its end must be after its start and its highest "
                       "frequency above its lowest.")
    temperature = number(temperature, "WaveNet temperature", 0, 2)
    return speed, pitch, mode, (start, end, low, high), temperature, seed_value(seed)


def rebuilding(source, clip, upload, speed, pitch, mode, start, end, low, high, temperature,
               seed, progress):
    speed, pitch, mode, box, temperature, seed = checked(speed, pitch, mode, start, end, low,
                                                         high, temperature, seed)
    audio, notes, title = recording(source, clip, upload)
    vocoders = pipeline(progress)
    rate, hop = MEL.sample_rate, MEL.hop
    mel = vocoders.mel_of(audio)
    changes = []
    if speed != 1:
        mel = stretch(mel, speed)
        changes.append(f"{speed:g}x as long")
    if pitch:
        mel = shift(mel, pitch)
        changes.append(f"{pitch:+g} semitones")
    if mode != "None":
        mel = edit(mel, *box, mode.lower())
        changes.append(f"{mode.lower()}d {box[0]:g}-{box[1]:g} s, {box[2]:g}-{box[3]:g} Hz")
    what = f"{title}{': ' + ', '.join(changes) if changes else ''}"
    mel_image = mel_figure(mel, f"the conditioning: {what}", box if mode != "None" else None)
    n = (mel.shape[1] - 1) * hop
    original = (rate, to_int16(audio))
    times: dict[str, str] = {}
    yield (mel_image, original, None, None, None, None, "",
           sentence(notes) + "Griffin-Lim and the GAN vocoder...")

    gan = None
    with CPU_LANE.ticket(None) as ticket:
        while not ticket.admitted(timeout=1.0):
            yield (gr.skip(),) * 7 + (sentence(notes) + ticket.message(),)
        t = time.perf_counter()
        gl = vocoders.griffin_lim(mel, generator=generator(seed))
        times["Griffin-Lim"] = speed_line(time.perf_counter() - t, n)
        if vocoders.gan is not None:
            t = time.perf_counter()
            gan = vocoders.gan_vocode(mel)
            times["GAN vocoder"] = speed_line(time.perf_counter() - t, n)
    yield (gr.skip(), gr.skip(), (rate, to_int16(gl)),
           (rate, to_int16(gan)) if gan is not None else None, gr.skip(), gr.skip(),
           table(times), sentence(notes) + ("WaveNet vocoder, streaming..." if vocoders.wavenet
                                            else "No WaveNet vocoder is installed."))
    parts: list[np.ndarray] = []
    busy = 0.0
    if vocoders.wavenet is not None:
        deadline = Deadline()
        chunks = vocoders.wavenet_stream(mel, temperature, generator=generator(seed),
                                         chunk=int(CHUNK_SECONDS * rate))
        for part, busy in timed(chunks):
            parts.append(part)
            done = sum(map(len, parts))
            message = (f"WaveNet vocoder: {done / rate:.1f} / {n / rate:.1f} s written, "
                       f"{done / max(busy, 1e-9) / rate:.1f}x real time")
            progress(done / max(n, 1), desc=message)
            if deadline.passed():
                notes.append(f"the WaveNet stopped at the {deadline.seconds:.0f} s limit")
                break
            if STREAMING:
                yield (gr.skip(),) * 4 + (wav_bytes(part, rate), gr.skip(), gr.skip(),
                                          sentence(notes) + message)
        times["WaveNet vocoder"] = speed_line(busy, sum(map(len, parts)))
    wavenet = np.concatenate(parts) if parts else None
    rows = [(audio, "original" + (" (before the changes)" if changes else ""))]
    rows.append((gl, "Griffin-Lim (60 iterations)"))
    if gan is not None:
        rows.append((gan, "GAN vocoder"))
    if wavenet is not None:
        rows.append((wavenet, f"WaveNet vocoder (temperature {temperature:g})"))
    longest = max(len(a) for a, _ in rows)
    rows = [(np.pad(a, (0, longest - len(a))), label) for a, label in rows]
    compare = figure_rows(rows, rate, textwrap.fill(f"{what}: rebuilt from the mel", 85))
    final = gr.skip() if STREAMING or wavenet is None else (rate, to_int16(wavenet))
    yield (gr.skip(), gr.skip(), gr.skip(), gr.skip(), final, compare, table(times),
           sentence(notes) + f"Done: {what}. Listen to each, and compare their "
           "spectrograms (aligned, below).")


def speed_line(seconds: float, samples: int) -> str:
    audio = samples / MEL.sample_rate
    return f"{seconds:.2f} s for {audio:.1f} s of audio = **{audio / max(seconds, 1e-9):.1f}x real time**"


def table(times: dict[str, str]) -> str:
    if not times:
        return ""
    return "| vocoder | time taken |\n|---|---|\n" + "".join(
        f"| {k} | {v} |\n" for k, v in times.items())


def measured() -> tuple[str, str]:
    """The cards' held-out table, and how far along each learned vocoder is (a model that does
    not yet beat Griffin-Lim says so), shown before anyone presses a button."""
    rows, behind = {}, []
    for folder in (GAN, WAVENET):
        m = card(folder)
        if not m:
            continue
        rows.setdefault("original", m["rows"]["original"])
        rows.setdefault("Griffin-Lim", m["rows"]["griffin_lim"])
        rows[m["vocoder"]] = m["rows"][m["key"]]
        won = sum(m["beats_griffin_lim"].values())
        if won < len(m["beats_griffin_lim"]):
            training = json.loads((WEIGHTS_DIR / folder / "config.json").read_text()).get("training", {})
            behind.append(f"the {m['vocoder']} beats Griffin-Lim on {won} of "
                          f"{len(m['beats_griffin_lim'])} measures after "
                          f"{training.get('hours', 0):.1f} h of training on a CPU")
    if not rows:
        return "", ""
    head = ("| | log-mel distance | F0 error | voiced share | STOI | PESQ |\n"
            "|---|---|---|---|---|---|\n")
    body = "".join(f"| {k} | {r['mel_db']:.1f} dB | {r['f0_cents']:.0f} cents | "
                   f"{r['voiced_share']:.0%} | {r['stoi']:.3f} | {r['pesq']:.2f} |\n"
                   for k, r in rows.items())
    said = ("**Still learning**: " + "; ".join(behind) + ". Training goes on; until then the "
            "learned vocoders sound buzzier than Griffin-Lim (their model cards say more).\n\n"
            if behind else "")
    return ("Measured on the held-out sentences (model cards; lower distance and error and "
            "higher STOI/PESQ are better):\n\n" + head + body), said


def preview(source, clip, upload):
    """The recording and its mel, before anything is rebuilt (first view, a new clip)."""
    if source == "Your recording" and not upload:
        return gr.skip(), gr.skip(), "Record or upload a sentence, then press **Rebuild**."
    audio, notes, title = recording(source, clip, upload)
    mel = log_mel(audio)
    return (mel_figure(mel, f"the mel spectrogram of {title}"), (MEL.sample_rate, to_int16(audio)),
            sentence(notes) + "Press **Rebuild** to hear the three vocoders rebuild it.")


def source_changed(source):
    return gr.update(visible=source == "Example sentence"), gr.update(visible=source != "Example sentence")


def build(ctx: TabContext) -> None:
    gr.Markdown("### Speech vocoders\nA recording becomes a *mel spectrogram* (what speech "
                "recognisers and text-to-speech models work with), and three vocoders turn it "
                "back into sound: **Griffin-Lim** (no learning), a **GAN** (all at once) and a "
                "**WaveNet** (one sample at a time). Press **Rebuild**; then change the "
                "spectrogram and hear what each vocoder does with it.")
    table_md, behind_md = measured()
    if behind_md:
        gr.Markdown(behind_md, elem_id="vocoder-learning")
    if table_md:
        with gr.Accordion("How good is each vocoder? (measured)", open=False):
            gr.Markdown(table_md, elem_id="vocoder-measured")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            source = gr.Radio(SOURCES, value=SOURCES[0], label="Speech",
                              elem_id="vocoder-source")
            clip = gr.Dropdown(list(CLIPS), value=DEFAULT_CLIP, label="Held-out sentence",
                               info="LJSpeech recordings no vocoder trained on",
                               elem_id="vocoder-clip")
            upload = gr.Audio(sources=["microphone", "upload"], type="filepath",
                              label=f"Record or upload (the first {MAX_SECONDS:g} s are used)",
                              visible=False, elem_id="vocoder-upload")
            speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed (x as long)",
                              info="above 1: slower speech; below: faster. Pitch stays")
            pitch = gr.Slider(-12, 12, value=0, step=1, label="Pitch (semitones)",
                              info="moves every band up or down: voice and formants together")
            with gr.Accordion("Edit the spectrogram", open=False):
                mode = gr.Radio(EDITS, value="None", label="Edit",
                                info="erase a box to silence, or paint it loud")
                with gr.Row():
                    start = gr.Number(value=0.5, minimum=0, maximum=2 * MAX_SECONDS,
                                      label="from (s)")
                    end = gr.Number(value=1.0, minimum=0, maximum=2 * MAX_SECONDS, label="to (s)")
                with gr.Row():
                    low = gr.Number(value=0, minimum=0, maximum=MEL.fmax, label="lowest (Hz)")
                    high = gr.Number(value=8000, minimum=0, maximum=MEL.fmax,
                                     label="highest (Hz)")
            temperature = gr.Slider(0, 1.5, value=1.0, step=0.05, label="WaveNet temperature",
                                    info="1 = as trained; lower: cleaner but duller; higher: hiss")
            seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed",
                             info="the random phases of Griffin-Lim and the WaveNet's draws")
        with gr.Column(scale=2, min_width=300):
            with gr.Row():
                run = gr.Button("Rebuild", variant="primary", elem_id="vocoder-run")
                stop = gr.Button("Stop", variant="stop")
            status = gr.Markdown("", elem_id="vocoder-status")
            mel_image = gr.Image(label="the mel spectrogram the vocoders read", format="png",
                                 interactive=False, buttons=["download", "fullscreen"],
                                 elem_id="vocoder-mel")
            with gr.Row():
                original = gr.Audio(label="original", interactive=False, elem_id="vocoder-original")
                gl = gr.Audio(label="Griffin-Lim", interactive=False, elem_id="vocoder-gl")
            with gr.Row():
                gan = gr.Audio(label="GAN vocoder", interactive=False, elem_id="vocoder-gan")
                wavenet = gr.Audio(label="WaveNet vocoder (streamed)", streaming=STREAMING,
                                   autoplay=False, interactive=False, elem_id="vocoder-wavenet")
            times = gr.Markdown("", elem_id="vocoder-times")
            compare = gr.Image(label="spectrograms, aligned", format="png", interactive=False,
                               buttons=["download", "fullscreen"], elem_id="vocoder-compare")
            gr.Markdown(EXPLAIN)
    source.change(source_changed, source, [clip, upload], queue=False,
                  api_visibility="private")
    gr.on([*ctx.shown, clip.change, upload.change], preview, [source, clip, upload],
          [mel_image, original, status], api_name="vocoder_preview", concurrency_id="vocoder-preview",
          concurrency_limit=4)
    event = run.click(rebuild, [source, clip, upload, speed, pitch, mode, start, end, low, high,
                                temperature, seed],
                      [mel_image, original, gl, gan, wavenet, compare, times, status],
                      api_name="vocoder_rebuild", concurrency_id="vocoder",
                      concurrency_limit=48)
    stop.click(lambda: "Stopped.", None, status, cancels=[event], api_name="vocoder_stop",
               queue=False)
