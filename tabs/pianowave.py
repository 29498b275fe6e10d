"""Piano WaveNet tab: notes in (typed, an example, or a MIDI file), a WaveNet conditioned on the
piano roll performs them, streamed, beside fluidsynth's render of the same notes; and a
single-note pitch check. Widgets, validation and wiring; the maths is models/pianowave.py."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from models.audio import figure_rows, to_int16, wav_bytes
from models.hub import REPO_ROOT, WEIGHTS_DIR
from models.pianoroll import KEYS, LOWEST, Note, can_render, from_midi, parse, render, snap
from models.pianowave import PianoPipeline, cents, hz_of, note_key_name, note_pitch, notes_key, \
    roll_figure
from models.runtime import generator

from .common import STREAMING, Deadline, Lane, Lazy, TabContext, Technique, number, seed_value, \
    sentence, timed, visitor_of

TECHNIQUE = Technique("pianowave", "Piano WaveNet", "sound",
                      "A WaveNet that plays the notes you give it: type a tune or upload MIDI.",
                      tab="Piano")
FOLDER = "wavenet-pianoroll"
AVAILABLE = (WEIGHTS_DIR / FOLDER / "config.json").is_file()
PIPELINES = {"piano": Lazy("the piano WaveNet",
                           lambda report: PianoPipeline.from_pretrained(FOLDER, report))}
EXAMPLE_FOLDER = REPO_ROOT / "examples" / "piano"
MAX_SECONDS = 20.0           # of music performed (a second of release follows)
MAX_MIDI_BYTES = 1_000_000
MAX_MIDI_SECONDS = 600.0     # read at most this much of a file (then cut at MAX_SECONDS)
BASE_BPM = 120.0             # typed notes at tempo 100%
MODES = ["Typed notes", "Example", "MIDI file"]
PIANO_LANE = Lane("piano", slots=48, per_visitor=2)
NOTE_SECONDS, CHECK_SECONDS = 0.5, 1.0      # the single-note check: held, generated
KEY_NAMES = [note_key_name(p) for p in range(36, 97)]


def card_metrics() -> dict:
    path = WEIGHTS_DIR / FOLDER / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


METRICS = card_metrics()
TEMPERATURE = float(METRICS.get("temperature", 1.0))   # the card's best for pitch
FLOOR = float(METRICS.get("floor", 0.0))               # the floor the card measured with
ATTACK = float(METRICS.get("attack", 1.0))             # and the attack
VELOCITY = 100   # the card: keys struck at 100 are right at least as often as at 50


def how_good() -> str:
    """What the card measured, said before anyone presses Play (a model still learning says so)."""
    pitch = METRICS.get("pitch", {}).get("wavenet")
    if not pitch:
        return ""
    share = pitch["accuracy"]
    line = (f"**How good is it?** On its model card it plays **{share:.0%}** of single keys "
            f"(C2-C7, two velocities) at the right pitch, within a quarter tone")
    if share < 0.95:
        line += (" (the goal is 95%): it is still learning, on a CPU, and often writes noise "
                 "where a note should be. fluidsynth's render beside it is what it imitates")
    else:
        line += (". It is not yet a clean piano: beside fluidsynth's render (what it imitates) "
                 "you will hear the hiss it writes around the notes")
    return line + "."


def load_examples() -> dict[str, dict]:
    listing = EXAMPLE_FOLDER / "pieces.json"
    if not listing.is_file():
        return {}
    return {e["title"]: e for e in json.loads(listing.read_text())}


EXAMPLES = load_examples()
DEFAULT_TEXT = next((e["text"] for e in EXAMPLES.values() if "text" in e),
                    "C4 C4 G4 G4 A4 A4 G4*2 F4 F4 E4 E4 D4 D4 C4*2")

EXPLAIN = """
**How it works.** The notes become a *piano roll*: for each of the 88 keys and every 10 ms, is a
key struck now (onset), is it held, and how hard. A small convolutional network turns the roll
into a bias for every gate of the WaveNet, and the WaveNet also reads a sine at each held key's
pitch (and three overtones): that is its *conditioning*. It then writes the audio one sample at
a time, 16,000 a second, as the WaveNet tab does, but told what to play.

* **Temperature** divides the network's scores before it draws each sample: 1 is the model as
  trained; lower gives a cleaner, quieter tone (at 0 it may fall silent); higher adds hiss. The
  default is the temperature at which the model card found the most keys at the right pitch.
* **Floor** (LPCNet's trick): while the output sounds, every sample value's probability is
  lowered by this much before the draw, so the many unlikely values, which add up to hiss, are
  not drawn. 0 is plain sampling: compare them. It is off in silence, or no note would start.
* **Attack**: how many times stronger than in training each note's sine starts (it falls back
  within about a tenth of a second). Running on its own samples, the model has to find a new
  note's period in the noise of the last one; a stronger start lets it lock on, and its own
  past carries the note from there. It would also play louder: the audio is scaled back by
  1/sqrt(attack). 1 is the sine as trained.
* **Tempo** scales time (typed notes are 120 beats a minute at 100%); **transpose** moves every
  note by semitones. **Seed**: the same seed and settings give the same performance.
* **Compare** with *fluidsynth*, a sample-based synthesiser playing the same notes with the
  Steinway soundfont the training audio was rendered with: what the WaveNet learned to imitate.
* The note language: notes separated by spaces, one beat each; `C4/2` half a beat, `C4*2` two;
  `R` a rest; `C4+E4+G4` a chord; `F#3`, `Bb5` sharps and flats; C4 is middle C.
"""


def pipeline(progress=None) -> PianoPipeline:
    if not AVAILABLE:
        raise gr.Error("The piano WaveNet is not installed on this server.")
    return PIPELINES["piano"].get(progress)


def shifted(notes: list[Note], tempo: float, transpose: int) -> tuple[list[Note], list[str]]:
    """Notes at ``tempo`` percent and ``transpose`` semitones; those pushed off the keyboard are
    dropped (and said)."""
    out = [Note(n.pitch + transpose, n.start * 100 / tempo, n.end * 100 / tempo, n.velocity)
           for n in notes]
    kept = [n for n in out if LOWEST <= n.pitch < LOWEST + KEYS]
    said = [f"{len(out) - len(kept)} notes transposed off the keyboard were left out"] \
        if len(kept) < len(out) else []
    return kept, said


def read_midi(path) -> list[Note]:
    try:
        data = Path(path).read_bytes()
    except (OSError, TypeError) as err:
        raise gr.Error(f"Could not read the uploaded file ({err}).")
    if len(data) > MAX_MIDI_BYTES:
        raise gr.Error(f"That file is {len(data) / 1e6:.1f} MB; a MIDI file here may be at most "
                       f"{MAX_MIDI_BYTES / 1e6:.0f} MB.")
    try:
        return from_midi(data, MAX_MIDI_SECONDS)
    except ValueError as err:
        raise gr.Error(f"{err}. Upload a standard MIDI file (.mid).")


def notes_for(mode, text, example, midi, tempo, transpose, velocity) -> tuple[list[Note], list[str], str]:
    """The notes to play, what was changed on the way, and a title."""
    tempo = number(tempo, "Tempo (%)", 25, 400)
    transpose = number(transpose, "Transpose (semitones)", -24, 24, integer=True)
    velocity = number(velocity, "Loudness (velocity)", 1, 127, integer=True)
    if mode not in MODES:
        raise gr.Error(f"Unknown input {mode!r}; choose one of: {', '.join(MODES)}.")
    said: list[str] = []
    title, typed = "your notes", mode == "Typed notes"
    if mode == "Example":
        if example not in EXAMPLES:
            raise gr.Error(f"Unknown example {example!r}.")
        entry, title = EXAMPLES[example], example
        if "text" in entry:                       # a tune: typed notes, at these settings
            text, typed = entry["text"], True
        else:
            notes = [Note(int(p), float(s), float(e), int(v)) for p, s, e, v in entry["notes"]]
            notes, said = shifted(notes, tempo, transpose)
    if typed:
        text = str(text or "")
        if len(text) > 20_000:
            raise gr.Error("That is too much text: at most 20,000 characters of notes.")
        try:
            notes = parse(text, BASE_BPM * tempo / 100, velocity, transpose)
        except ValueError as err:
            raise gr.Error(str(err))
    elif mode == "MIDI file":
        if not midi:
            raise gr.Error("Upload a MIDI file first (or pick typed notes or an example).")
        notes, said = shifted(read_midi(midi), tempo, transpose)
        title = Path(str(midi)).name
    notes = snap(notes)                  # the 4 ms grid the model (and fluidsynth) play on
    if not notes:
        raise gr.Error("There are no notes to play in that.")
    if max(n.end for n in notes) > MAX_SECONDS:
        notes = [Note(n.pitch, n.start, min(n.end, MAX_SECONDS), n.velocity)
                 for n in notes if n.start < MAX_SECONDS]
        said.append(f"played the first {MAX_SECONDS:g} s")
    return notes, said, title


def comparison(notes: list[Note]) -> tuple[np.ndarray | None, str]:
    """fluidsynth's render of the notes: made ahead of time for the examples at their default
    settings, else here when fluidsynth is installed, else none."""
    ahead = EXAMPLE_FOLDER / "renders" / f"{notes_key(notes)}.flac"
    if ahead.is_file():
        import soundfile as sf

        audio, _ = sf.read(ahead, dtype="float32")
        return audio, "fluidsynth's render, made ahead of time"
    if can_render():
        try:
            return render(notes), "fluidsynth's render, made on this server just now"
        except Exception:                 # the comparison is a bonus: never fail the request
            pass
    return None, "no fluidsynth on this server: comparisons only for the examples at 100% / 0"


def perform(mode, text, example, midi, tempo, transpose, velocity, temperature, seed,
            floor=FLOOR, attack=ATTACK, request: gr.Request = None, progress=gr.Progress()):
    """Stream the WaveNet's performance; then its spectrogram beside fluidsynth's, and both."""
    temperature = number(temperature, "Temperature", 0, 2)
    floor = number(floor, "Floor", 0, 0.5)
    attack = number(attack, "Attack", 1, 16)
    seed = seed_value(seed)
    notes, said, title = notes_for(mode, text, example, midi, tempo, transpose, velocity)
    with PIANO_LANE.ticket(visitor_of(request)) as ticket:
        while not ticket.admitted(timeout=1.0):
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), ticket.message()
        yield from performing(notes, said, title, temperature, seed, floor, attack, progress)


def performing(notes, said, title, temperature, seed, floor, attack, progress):
    pipe = pipeline(progress)
    rate = pipe.rate
    n = pipe.samples(notes)
    seconds = n / rate
    picture = roll_figure(notes, seconds, f"{title}: {len(notes)} notes")
    yield picture, gr.skip(), gr.skip(), gr.skip(), gr.skip(), sentence(said) + "Writing..."
    deadline, parts, busy = Deadline(), [], 0.0
    chunks = pipe.stream(notes, temperature, generator=generator(seed), chunk=rate, shared=True,
                         floor=floor, attack=attack)
    for audio, busy in timed(chunks):
        parts.append(audio)
        done = sum(map(len, parts))
        speed = done / max(busy, 1e-9)
        message = (f"{done / rate:.1f} / {seconds:.1f} s written, {speed / rate:.1f}x real time")
        progress(done / n, desc=message)
        if deadline.passed():
            said.append(f"stopped at the {deadline.seconds:.0f} s limit")
            break
        if STREAMING:
            yield gr.skip(), wav_bytes(audio, rate), gr.skip(), gr.skip(), gr.skip(), \
                sentence(said) + message
    made = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    ref, how = comparison(notes)
    rows = [(made, f"WaveNet, temperature {temperature:g}, floor {floor:g}, attack {attack:g}, "
                   f"seed {seed}")]
    if ref is not None:
        rows.append((ref, how))
    plot = figure_rows(rows, rate, title)
    path = Path(tempfile.mkdtemp(prefix="piano-")) / f"piano_seed{seed}_t{temperature:g}.wav"
    path.write_bytes(wav_bytes(made, rate))
    speed = len(made) / max(busy, 1e-9)
    message = (f"Done: {len(made) / rate:.1f} s written in {busy:.1f} s = **{speed / rate:.1f}x "
               f"real time**. Below: {how}.")
    final = gr.skip() if STREAMING else (rate, to_int16(made))
    yield (gr.skip(), final, plot, None if ref is None else (rate, to_int16(ref)), str(path),
           sentence(said) + message)


def check_note(key, velocity, temperature, seed, floor=FLOOR, attack=ATTACK,
               request: gr.Request = None, progress=gr.Progress()):
    """One key alone: the WaveNet plays it for half a second; YIN reads the pitch it played.
    While it waits for a slot, the verdict says its place in line."""
    if key not in KEY_NAMES:
        raise gr.Error(f"Unknown key {key!r}: pick one from C2 to C7.")
    velocity = number(velocity, "Velocity", 1, 127, integer=True)
    temperature = number(temperature, "Temperature", 0, 2)
    floor = number(floor, "Floor", 0, 0.5)
    attack = number(attack, "Attack", 1, 16)
    seed = seed_value(seed)
    pitch = 36 + KEY_NAMES.index(key)
    with PIANO_LANE.ticket(visitor_of(request)) as ticket:
        while not ticket.admitted(timeout=1.0):
            yield gr.skip(), gr.skip(), ticket.message()
        pipe = pipeline(progress)
        rate = pipe.rate
        audio = pipe.perform([Note(pitch, 0.0, NOTE_SECONDS, velocity)], int(CHECK_SECONDS * rate),
                             temperature, generator=generator(seed), floor=floor,
                             attack=attack)
    heard, periodic = note_pitch(audio, rate, 0.05, NOTE_SECONDS - 0.05)
    want = hz_of(pitch)
    if heard is None:
        verdict = (f"Asked for **{key}** ({want:.1f} Hz). What it played has **no clear pitch** "
                   "(noise, or silence): try another seed, or the card's attack and floor (its "
                   "card lists the keys it misses).")
    else:
        off = cents(heard, pitch)
        near = note_key_name(int(round(pitch + off / 100)))
        if abs(off) <= 50:
            verdict = (f"Asked for **{key}** ({want:.1f} Hz); it played **{heard:.1f} Hz, "
                       f"{off:+.0f} cents**: the right note (within a quarter tone).")
        else:
            verdict = (f"Asked for **{key}** ({want:.1f} Hz); it played **{heard:.1f} Hz, "
                       f"{off:+.0f} cents** off, nearest key {near}: a wrong note.")
        verdict += f" Pitch read by YIN over 50-450 ms ({periodic:.0%} of it periodic)."
    plot = figure_rows([(audio, f"WaveNet: {key}, velocity {velocity}")], rate,
                       f"{key} = {want:.1f} Hz, held 0.5 s")
    yield (rate, to_int16(audio)), plot, verdict


def example_picked(title):
    """A tune goes into the notes box (to edit); a piece is played as the example."""
    entry = EXAMPLES.get(title)
    if entry is None:
        return gr.skip(), gr.skip()
    if "text" in entry:
        return "Typed notes", entry["text"]
    return "Example", gr.skip()


def build(ctx: TabContext) -> None:
    gr.Markdown("### Piano WaveNet\nA WaveNet that plays the notes you give it, written sample by "
                "sample (Hawthorne et al. 2019 perform any MIDI this way). Type a tune, pick an "
                "example or upload a MIDI file, press **Play**, and hear it beside a "
                "synthesiser playing the same notes.")
    if how_good():
        gr.Markdown(how_good(), elem_id="piano-quality")
    with gr.Tabs():
        with gr.Tab("Play"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    mode = gr.Radio(MODES, value="Typed notes", label="Play",
                                    elem_id="piano-mode")
                    text = gr.Textbox(DEFAULT_TEXT, label="Notes", lines=2, max_lines=6,
                                      info="e.g. C4 E4 G4 C5*2 (C4/2: half a beat, R: rest, "
                                           "C4+E4: a chord)", elem_id="piano-text")
                    example = gr.Dropdown(list(EXAMPLES), value=None, label="or an example",
                                          info="tunes, and openings of pieces never trained on",
                                          elem_id="piano-example")
                    midi = gr.File(label="or a MIDI file (the first 20 s)",
                                   file_types=[".mid", ".midi"], type="filepath",
                                   elem_id="piano-midi")
                    tempo = gr.Slider(50, 200, value=100, step=5, label="Tempo (%)")
                    transpose = gr.Slider(-12, 12, value=0, step=1,
                                          label="Transpose (semitones)")
                    velocity = gr.Slider(20, 127, value=VELOCITY, step=1,
                                         label="Loudness of typed notes (MIDI velocity)",
                                         info="how hard the typed notes are struck")
                    temperature = gr.Slider(0, 1.5, value=TEMPERATURE, step=0.05,
                                            label="Temperature",
                                            info=f"{TEMPERATURE:g}: the best for pitch on the "
                                                 "model card; lower: cleaner, may fall silent; "
                                                 "higher: hiss")
                    floor = gr.Slider(0, 0.1, value=FLOOR, step=0.005, label="Floor",
                                      info=f"{FLOOR:g}: the model card's; cuts the unlikely "
                                           "sample values (hiss) while a note sounds; 0: plain "
                                           "sampling")
                    attack = gr.Slider(1, 16, value=ATTACK, step=0.5, label="Attack",
                                       info=f"{ATTACK:g}: the model card's; how much harder "
                                            "than in training each note's pitch signal starts "
                                            "(for 0.1 s): notes start in tune more often; 1: "
                                            "as trained")
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1,
                                     label="Seed")
                with gr.Column(scale=2, min_width=300):
                    with gr.Row():
                        run = gr.Button("Play", variant="primary", elem_id="piano-run")
                        stop = gr.Button("Stop", variant="stop")
                    status = gr.Markdown("", elem_id="piano-status")
                    roll = gr.Image(label="piano roll", format="png", interactive=False,
                                    buttons=["download", "fullscreen"], elem_id="piano-roll")
                    audio = gr.Audio(label="WaveNet", streaming=STREAMING, autoplay=True,
                                     interactive=False, elem_id="piano-audio")
                    reference = gr.Audio(label="fluidsynth, the same notes", interactive=False,
                                         elem_id="piano-reference")
                    plot = gr.Image(label="spectrograms: WaveNet above, fluidsynth below",
                                    format="png", interactive=False,
                                    buttons=["download", "fullscreen"], elem_id="piano-plot")
                    wav = gr.File(label="WAV (16 kHz, 16-bit)", interactive=False,
                                  elem_id="piano-wav")
                    gr.Markdown(EXPLAIN)
        with gr.Tab("Single notes"):
            gr.Markdown("Pick a key: the WaveNet plays it alone for half a second, and the "
                        "studio measures the pitch it played (YIN) and says how close it came.")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    key = gr.Dropdown(KEY_NAMES, value="A4", label="Key",
                                      elem_id="piano-key")
                    key_velocity = gr.Slider(20, 127, value=VELOCITY, step=1, label="Velocity",
                                             info="how hard the key is struck")
                    key_temperature = gr.Slider(0, 1.5, value=TEMPERATURE, step=0.05,
                                                label="Temperature")
                    key_floor = gr.Slider(0, 0.1, value=FLOOR, step=0.005, label="Floor",
                                          info="0: plain sampling")
                    key_attack = gr.Slider(1, 16, value=ATTACK, step=0.5, label="Attack",
                                           info="1: the pitch signal as trained")
                    key_seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1,
                                         label="Seed")
                    check = gr.Button("Play and measure", variant="primary",
                                      elem_id="piano-check")
                with gr.Column(scale=2, min_width=300):
                    verdict = gr.Markdown("", elem_id="piano-verdict")
                    key_audio = gr.Audio(label="WaveNet", interactive=False, autoplay=True,
                                         elem_id="piano-key-audio")
                    key_plot = gr.Image(label="waveform and spectrogram", format="png",
                                        interactive=False, elem_id="piano-key-plot")
    # choosing a source switches the radio to it
    example.change(example_picked, example, [mode, text], api_visibility="private", queue=False)
    midi.upload(lambda: "MIDI file", None, mode, api_visibility="private", queue=False)
    text.input(lambda: "Typed notes", None, mode, api_visibility="private", queue=False)
    event = run.click(perform, [mode, text, example, midi, tempo, transpose, velocity,
                                temperature, seed, floor, attack], [roll, audio, plot, reference, wav, status],
                      api_name="piano_play", concurrency_id="piano",
                      concurrency_limit=PIANO_LANE.slots)
    stop.click(lambda: "Stopped.", None, status, cancels=[event], api_name="piano_stop",
               queue=False)
    check.click(check_note, [key, key_velocity, key_temperature, key_seed, key_floor, key_attack],
                [key_audio, key_plot, verdict], api_name="piano_note", concurrency_id="piano",
                concurrency_limit=PIANO_LANE.slots)
