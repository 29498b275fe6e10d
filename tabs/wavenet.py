"""WaveNet audio tab: widgets, validation and wiring; the networks are models/wavenet.py, audio
handling models/audio.py; the example clips are examples/speech."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from models.audio import AudioError, figure, figure_rows, normalise, read_audio, to_int16, wav_bytes
from models.hub import REPO_ROOT, WEIGHTS_DIR
from models.runtime import generator
from models.wavenet import WaveNetPipeline

from .common import (STREAMING, Deadline, Lane, Lazy, TabContext, Technique, number, seed_value,
                     sentence, timed, visitor_of)

TECHNIQUE = Technique("wavenet", "WaveNet audio", "sound",
                      "Raw audio written one sample at a time, from nothing: babbling speech.",
                      tab="WaveNet")
CHECKPOINTS = {  # label -> checkpoint folder under weights/ (or a hub id)
    "Speech (LJSpeech, one speaker)": "wavenet-speech",
}
MODEL_NAMES = [label for label, folder in CHECKPOINTS.items()
               if (WEIGHTS_DIR / folder / "config.json").is_file()]
DEFAULT_MODEL = MODEL_NAMES[0] if MODEL_NAMES else None
AVAILABLE = bool(MODEL_NAMES)
MAX_SECONDS = 30.0          # longest generation (the API too): at least real time, so <= 30 s
MAX_PRIMER = 4.0            # seconds of a primer the model continues (the tail of longer ones)
CHUNK_SECONDS = 1.0         # streamed to the player a second at a time (the first: a tenth)
AUDIO_STREAMS = 48          # generations open at once (they take turns, a core each)
AUDIO_LANE = Lane("audio", slots=AUDIO_STREAMS, per_visitor=2)
COMPARE_TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.3)
COMPARE_SECONDS = 1.5       # per temperature
CLIP_FOLDER = REPO_ROOT / "examples" / "speech"  # held-out clips shipped with the app


def _config(folder: str) -> dict:
    return json.loads((WEIGHTS_DIR / folder / "config.json").read_text())


PIPELINES = {label: Lazy(f"the {label} WaveNet",
                         lambda report, folder=folder: WaveNetPipeline.from_pretrained(folder, report),
                         warm=True)
             for label, folder in CHECKPOINTS.items() if label in MODEL_NAMES}


def example_clips() -> dict[str, Path]:
    """The held-out LJSpeech clips shipped in examples/speech: label -> file."""
    listing = CLIP_FOLDER / "clips.json"
    if not listing.is_file():
        return {}
    return {f"LJSpeech {c['id']} ({c['seconds']:g} s, held out)": CLIP_FOLDER / c["file"]
            for c in json.loads(listing.read_text())}


CLIPS = example_clips()
# model, temperature, seed, clip: each one audible (tests/test_wavenet.py checks); below about
# 0.95 these models fall silent, which "Compare temperatures" shows
EXAMPLES = [row for row in (
    ["Speech (LJSpeech, one speaker)", 1.0, 0, None],
    ["Speech (LJSpeech, one speaker)", 1.1, 1, None],
    ["Speech (LJSpeech, one speaker)", 1.0, 2, next(iter(CLIPS), None)]) if row[0] in MODEL_NAMES]

EXPLAIN = """
**How it works.** WaveNet writes audio one sample at a time: 16,000 numbers per second, each
one of 256 levels (8-bit *mu-law*, finer steps near silence, where the ear is sensitive). For
every new sample it reads the recent past through *dilated causal convolutions*, turns its
output into a probability for each of the 256 levels, and draws one.

* **Temperature** divides the network's scores before the softmax. At 1 you hear the model as
  trained. Lower, it keeps choosing the likeliest level: the sound collapses into steady tones
  or silence (at 0 it always takes the likeliest). Higher, unlikely levels get picked: hiss.
* **Primer**: WaveNet continues a recording (its last few seconds, resampled to 16 kHz). Without
  one it starts from silence.
* **Seed**: the same seed and settings give the same audio.
* **Fast generation**: each layer keeps a buffer of its past inputs, so a new sample costs one
  step of each layer instead of a pass over the whole receptive field, in a compiled loop.
"""


def receptive_field_html(folder: str | None) -> str:
    """The receptive field in samples and milliseconds, with a diagram of dilations 1, 2, 4, 8."""
    if folder is None:
        return ""
    c = _config(folder)
    dil = [2 ** i for i in range(c["cycle"])] * c["stacks"]
    rf = 2 + sum(dil)
    ms = 1000 * rf / c["sample_rate"]
    # the diagram: 16 inputs, layers with dilations 1, 2, 4, 8; the lines feeding the last output
    n, w, h, top = 16, 22, 34, 14
    rows = [1, 2, 4, 8]
    parts = []
    needed = {n - 1}
    for level in range(len(rows), -1, -1):
        y = top + (len(rows) - level) * h
        for i in range(n):
            on = i in needed
            parts.append(f'<circle cx="{12 + i * w}" cy="{y}" r="4.5" fill="'
                         f'{"#4f46e5" if on else "#cbd5e1"}"/>')
        if level:
            d = rows[level - 1]
            below = set()
            for i in needed:
                for j in (i - d, i):
                    if j >= 0:
                        below.add(j)
                        parts.append(f'<line x1="{12 + i * w}" y1="{y}" x2="{12 + j * w}" '
                                     f'y2="{y + h}" stroke="#4f46e5" stroke-width="1.4"/>')
            parts.append(f'<text x="{12 + n * w}" y="{y + h / 2 + 4}" font-size="11" '
                         f'fill="currentColor">dilation {d}</text>')
            needed = below
    height = top + len(rows) * h + 12
    svg = (f'<svg viewBox="0 0 {12 + n * w + 80} {height}" width="100%" style="max-width:460px" '
           f'role="img" aria-label="dilated causal convolutions">{"".join(parts)}</svg>')
    return (f'<div class="gdl-rf">{svg}<p>Each layer looks at two samples of the layer below, '
            f'<i>dilation</i> steps apart, never at the future. Doubling the dilation layer '
            f'after layer (1, 2, 4 ... {max(dil)}, {c["stacks"]} times) makes the receptive field '
            f'grow exponentially with depth: the shipped models see <b>{rf:,} samples = '
            f'{ms:.0f} ms</b> of the past with {len(dil)} layers (a plain causal convolution '
            f'stack would need {rf - 1:,}).</p></div>')


def model_for(name) -> Lazy:
    if name not in PIPELINES:
        raise gr.Error(f"Unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}.")
    return PIPELINES[name]


def check(seconds, temperature, seed, primer_seconds):
    seconds = number(seconds, "Duration (seconds)", 0.1, MAX_SECONDS)
    temperature = number(temperature, "Temperature", 0, 5)
    primer_seconds = number(primer_seconds, "Primer length (seconds)", 0.05, MAX_PRIMER)
    return seconds, temperature, seed_value(seed), primer_seconds


def load_primer(upload, clip, primer_seconds: float, rate: int) -> tuple[np.ndarray | None, list[str]]:
    """The primer's audio at the model's rate (or None), from an upload or an example clip."""
    path = upload or None
    notes: list[str] = []
    if path is None and clip:
        if clip not in CLIPS:
            raise gr.Error(f"Unknown clip {clip!r}.")
        path = str(CLIPS[clip])
    if path is None:
        return None, notes
    try:
        audio, notes = read_audio(path, rate, primer_seconds)
    except AudioError as exc:
        raise gr.Error(str(exc))
    audio, note = normalise(audio)
    if note:
        notes.append(note)
    return audio, notes


def generate(model_name, seconds, temperature, seed, upload, clip, primer_seconds,
             request: gr.Request = None, progress=gr.Progress()):
    """Stream the audio a second at a time; then the waveform/spectrogram and a WAV file."""
    with AUDIO_LANE.ticket(visitor_of(request)):
        yield from generating(model_name, seconds, temperature, seed, upload, clip,
                              primer_seconds, progress)


def generating(model_name, seconds, temperature, seed, upload, clip, primer_seconds, progress):
    seconds, temperature, seed, primer_seconds = check(seconds, temperature, seed, primer_seconds)
    wavenet = model_for(model_name).get(progress)
    rate = wavenet.config.sample_rate
    primer, notes = load_primer(upload, clip, primer_seconds, rate)
    n = int(round(seconds * rate))
    deadline = Deadline()
    parts = [wavenet.heard(primer)] if primer is not None else []
    if primer is not None and STREAMING:
        yield wav_bytes(parts[0], rate), gr.skip(), gr.skip(), sentence(notes) + "Primer..."
    busy, done = 0.0, 0          # seconds spent generating (not streaming or drawing)
    # taking turns with every other visitor's open stream (models/wavenet.py, WaveRounds)
    chunks = wavenet.stream_shared(n, temperature, primer=primer, generator=generator(seed),
                                   chunk=int(CHUNK_SECONDS * rate))
    for audio, busy in timed(chunks):
        parts.append(audio)
        done += len(audio)
        speed = done / max(busy, 1e-9)
        message = (f"{done / rate:.1f} / {seconds:g} s generated, {speed:,.0f} samples/s "
                   f"({speed / rate:.1f}x real time)")
        progress(done / n, desc=message)
        if deadline.passed():
            notes.append(f"stopped at the {deadline.seconds:.0f} s limit")
            break
        if STREAMING:
            yield wav_bytes(audio, rate), gr.skip(), gr.skip(), sentence(notes) + message
    full = np.concatenate(parts)
    primer_len = 0 if primer is None else len(primer)
    image = figure(full, rate, primer_len, f"{model_name}, temperature {temperature:g}, seed {seed}")
    path = Path(tempfile.mkdtemp(prefix="wavenet-")) / f"wavenet_seed{seed}_t{temperature:g}.wav"
    path.write_bytes(wav_bytes(full, rate))
    speed = done / max(busy, 1e-9)
    message = (f"Done: {done / rate:.1f} s of audio written in {busy:.1f} s, {speed:,.0f} samples/s = "
               f"**{speed / rate:.1f}x real time**"
               f"{'; primer shaded green in the plot' if primer_len else ''}.")
    final_audio = gr.skip() if STREAMING else (rate, to_int16(full))
    yield final_audio, image, str(path), sentence(notes) + message


def compare(model_name, seed, upload, clip, primer_seconds, progress=gr.Progress()):
    """The same seed (and primer) at five temperatures: one spectrogram each, and the five
    clips one after another with a short pause."""
    _, _, seed, primer_seconds = check(1, 1, seed, primer_seconds)
    wavenet = model_for(model_name).get(progress)
    rate = wavenet.config.sample_rate
    primer, notes = load_primer(upload, clip, primer_seconds, rate)
    n = int(COMPARE_SECONDS * rate)
    rows, clips = [], []
    for i, temperature in enumerate(COMPARE_TEMPERATURES):
        progress(i / len(COMPARE_TEMPERATURES), desc=f"temperature {temperature:g}")
        audio = wavenet(n, temperature, primer=primer, generator=generator(seed))
        level = float(np.sqrt((audio ** 2).mean()))
        rows.append((audio, f"temperature {temperature:g}{' (greedy)' if temperature == 0 else ''}"
                            f": RMS {level:.3f}"))
        clips += [audio, np.zeros(rate // 4, np.float32)]
    image = figure_rows(rows, rate, f"{model_name}: seed {seed}, {COMPARE_SECONDS:g} s each"
                                    f"{' after the primer' if primer is not None else ''}")
    joined = np.concatenate(clips)
    message = (f"Done: {len(COMPARE_TEMPERATURES)} temperatures, "
               f"{', '.join(f'{t:g}' for t in COMPARE_TEMPERATURES)}, played one after another. "
               "Low temperatures fall into silence or a steady tone; high ones turn to hiss.")
    return (rate, to_int16(joined)), image, sentence(notes) + message


def model_changed(model_name):
    return receptive_field_html(CHECKPOINTS.get(model_name))


def build(ctx: TabContext) -> None:
    gr.Markdown("### WaveNet audio\nRaw audio written sample by sample by an *unconditioned* "
                "WaveNet the studio trained on real speech: nothing tells it what to say, so it "
                "babbles in the speaker's voice: the chapter's demo of an *unconditioned* WaveNet. "
                "The **Vocoders** tab shows the same network told what to say (conditioned on a "
                "spectrogram), and **Piano** one told which notes to play. Press **Generate**, and "
                "listen while it is written (faster than it plays).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(MODEL_NAMES, value=DEFAULT_MODEL, label="Model",
                                info="what it learned from")
            seconds = gr.Slider(0.5, 20, value=4, step=0.5, label="Duration (seconds)")
            temperature = gr.Slider(0, 1.5, value=1.0, step=0.05, label="Temperature",
                                    info="1 = the model as trained; low: stuck tones and "
                                         "silence; high: hiss")
            seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed")
            with gr.Accordion("Primer (optional): WaveNet continues a recording", open=False):
                upload = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                  label="Upload or record", elem_id="wavenet-primer")
                clip = gr.Dropdown(list(CLIPS), value=None, label="or a real held-out clip",
                                   info="LJSpeech sentences the model never trained on",
                                   visible=bool(CLIPS))
                primer_seconds = gr.Slider(0.25, MAX_PRIMER, value=1.5, step=0.25,
                                           label="Primer length (seconds, the tail is used)")
        with gr.Column(scale=2, min_width=300):
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="wavenet-run")
                stop = gr.Button("Stop", variant="stop")
                run_compare = gr.Button("Compare temperatures", elem_id="wavenet-compare")
            status = gr.Markdown("", elem_id="wavenet-status")
            with gr.Tabs() as views:
                with gr.Tab("Audio", id="wavenet-out"):
                    audio = gr.Audio(label="WaveNet", streaming=STREAMING, autoplay=True,
                                     interactive=False, elem_id="wavenet-audio")
                    plot = gr.Image(label="waveform and spectrogram", format="png",
                                    show_label=False, interactive=False,
                                    buttons=["download", "fullscreen"], elem_id="wavenet-plot")
                    wav = gr.File(label="WAV (16 kHz, 16-bit)", interactive=False,
                                  elem_id="wavenet-wav")
                with gr.Tab("Compare", id="wavenet-compare-tab"):
                    cmp_audio = gr.Audio(label="temperatures 0, 0.5, 0.8, 1, 1.3 in turn",
                                         interactive=False, elem_id="wavenet-compare-audio")
                    cmp_plot = gr.Image(label="one spectrogram per temperature", format="png",
                                        interactive=False, buttons=["download", "fullscreen"],
                                        elem_id="wavenet-compare-plot")
            gr.Examples(EXAMPLES, inputs=[model, temperature, seed, clip], label="Examples")
            rf = gr.HTML(receptive_field_html(CHECKPOINTS.get(DEFAULT_MODEL)),
                         elem_id="wavenet-rf")
            gr.Markdown(EXPLAIN)
    model.change(model_changed, model, rf, api_name="wavenet_model_changed",
                 queue=False)
    event = run.click(generate, [model, seconds, temperature, seed, upload, clip,
                                 primer_seconds], [audio, plot, wav, status],
                      api_name="wavenet_generate", concurrency_id="wavenet",
                      concurrency_limit=AUDIO_STREAMS)
    cmp_event = run_compare.click(
        compare, [model, seed, upload, clip, primer_seconds],
        [cmp_audio, cmp_plot, status], api_name="wavenet_compare",
        concurrency_id="wavenet-compare", concurrency_limit=2)
    for button, view in ((run, "wavenet-out"), (run_compare, "wavenet-compare-tab")):
        button.click(lambda view=view: gr.Tabs(selected=view), None, views, queue=False,
                     api_visibility="private")
    stop.click(lambda: "Stopped.", None, status, cancels=[event, cmp_event],
               api_name="wavenet_stop", queue=False)
