"""Notes and piano rolls: the little note language a visitor types, and the roll (onsets, what
sounds, how hard, for 88 keys at 100 frames a second) a note-conditioned WaveNet reads
(Hawthorne et al. 2019 condition theirs on onsets, frames and velocities the same way)."""
from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

LOWEST, KEYS = 21, 88            # A0 .. C8
FPS = 100                        # roll frames per second: 160 samples at 16 kHz
MAX_NOTES = 2000                 # one typed melody or uploaded file
RATE = 16000                     # the rendered audio's rate (the WaveNet's)
GRID = 0.004                     # fluidsynth starts notes on 64-sample blocks: 4 ms at 16 kHz
ONSET_DELAY = 64                 # samples from a grid onset to the note's start in its render
SOURCE_GAIN = 4.0                # the source's scale: its 1x1 projection starts at zero and
                                 # learns as fast as the code embeddings it is added to
ATTACK_TIME = 0.1                # s: how fast a played note's boosted source falls back
GAIN = 1.5           # fluidsynth's master gain: a velocity-80 piece near RMS 0.08, peaks under 0.5
SOUNDFONTS = ["/usr/share/sounds/sf3/MuseScore_General.sf3",
              "/usr/share/sounds/sf3/MuseScore_General_Full.sf3"]
NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
TOKEN = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)$")


@dataclasses.dataclass(frozen=True)
class Note:
    pitch: int                   # MIDI number, 21..108
    start: float                 # seconds
    end: float                   # seconds
    velocity: int = 80           # 1..127


def pitch_of(name: str) -> int:
    """'C4' -> 60, 'F#3' -> 54, 'Bb5' -> 82 (scientific pitch names, C4 = middle C)."""
    m = TOKEN.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a note name (a letter A-G, an optional # or b, an octave)")
    letter, accidental, octave = m.groups()
    pitch = 12 * (int(octave) + 1) + NAMES[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]
    if not LOWEST <= pitch < LOWEST + KEYS:
        raise ValueError(f"{name} is off the piano's keyboard (A0 to C8)")
    return pitch


def parse(text: str, bpm: float = 100.0, velocity: int = 80, transpose: int = 0) -> list[Note]:
    """The note language: notes separated by spaces, one beat each; ``C4/2`` half a beat,
    ``C4*2`` two; ``R`` a rest; ``C4+E4+G4`` a chord. Raises ValueError naming the bad token."""
    notes, time, beat = [], 0.0, 60.0 / bpm
    tokens = text.split()
    if not tokens:
        raise ValueError("No notes: type some, e.g. C4 E4 G4 C5*2")
    for k, token in enumerate(tokens, 1):
        body, length = token, 1.0
        m = re.match(r"^(.*?)([/*])(\d+(?:\.\d+)?)$", token)
        if m:
            body, op, amount = m.group(1), m.group(2), float(m.group(3))
            if amount <= 0 or amount > 64:
                raise ValueError(f"Token {k} ({token}): the length factor must be between 0 and 64")
            length = amount if op == "*" else 1.0 / amount
        if body.upper() != "R":
            for name in body.split("+"):
                try:
                    pitch = pitch_of(name) + transpose
                except ValueError as err:
                    raise ValueError(f"Token {k} ({token}): {err}") from None
                if not LOWEST <= pitch < LOWEST + KEYS:
                    raise ValueError(f"Token {k} ({token}) transposed is off the keyboard")
                notes.append(Note(pitch, time, time + length * beat, velocity))
        time += length * beat
        if len(notes) > MAX_NOTES:
            raise ValueError(f"More than {MAX_NOTES} notes")
    return notes


def frames_for(notes: list[Note], tail: float = 1.0) -> int:
    """Roll frames to hold the notes and ``tail`` seconds of their release."""
    return int(np.ceil((max((n.end for n in notes), default=0.0) + tail) * FPS))


def frame_of(seconds: float) -> int:
    """The frame a time falls in, rounded half up (so a window's frames shift exactly)."""
    return int(np.floor(seconds * FPS + 0.5))


def to_roll(notes: list[Note], frames: int | None = None, first: int = 0) -> np.ndarray:
    """(3, 88, frames) float32 of frames first, first + 1, ...: onset (1 in a note's first
    frame), sounding (1 while held), velocity / 127 while held. A note struck before the first
    frame sounds from it without an onset (a window into a longer piece)."""
    frames = frames_for(notes) - first if frames is None else frames
    roll = np.zeros((3, KEYS, frames), np.float32)
    for n in notes:
        k = n.pitch - LOWEST
        a = frame_of(n.start) - first
        b = max(a + 1, frame_of(n.end) - first)
        if a >= frames or b <= 0:
            continue
        roll[1, k, max(a, 0):b] = 1.0
        roll[2, k, max(a, 0):b] = n.velocity / 127.0
        if a >= 0:
            roll[0, k, a] = 1.0
    return roll


def hz_of(pitch: float) -> float:
    """A key's equal-tempered frequency (A4 = MIDI 69 = 440 Hz)."""
    return 440.0 * 2 ** ((pitch - 69) / 12)


def snap(notes: list[Note]) -> list[Note]:
    """Notes on the GRID (4 ms): where fluidsynth can start a note (it starts notes on its
    64-sample blocks), so that a render is the notes' exact performance, phase included."""
    out = []
    for n in notes:
        start = int(np.floor(n.start / GRID + 0.5)) * GRID            # half up
        end = int(np.floor(n.end / GRID + 0.5)) * GRID
        out.append(Note(n.pitch, start, max(start + GRID, end), n.velocity))
    return out


@dataclasses.dataclass
class Tuning:
    """The instrument the source imitates: each key's partial frequencies (Hz, KEYS x harmonics;
    a piano's partials are sharp of h x f) and, at each of ``velocities``, each partial's phase
    where the render starts the note (KEYS x velocities x harmonics, radians): fluidsynth's
    samples and velocity filters shift them. Measured by ``python -m train.pianowave
    --calibrate`` from renders of every key; saved as source.json beside the model."""
    freqs: list
    phases: list
    velocities: list

    @classmethod
    def equal(cls, harmonics: int = 4) -> "Tuning":
        """Equal temperament, harmonic partials, zero phases: the source without a measurement."""
        f = [[hz_of(k + LOWEST) * h for h in range(1, harmonics + 1)] for k in range(KEYS)]
        return cls(f, [[[0.0] * harmonics] for _ in range(KEYS)], [80])

    @classmethod
    def load(cls, path) -> "Tuning":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self)) + "\n")

    def partials(self, pitch: int, velocity: int) -> list[tuple[float, float]]:
        """(frequency, phase) of each partial of a key struck at a velocity (the nearest one
        measured)."""
        v = int(np.argmin([abs(velocity - u) for u in self.velocities]))
        k = pitch - LOWEST
        return list(zip(self.freqs[k], self.phases[k][v]))


def source(notes: list[Note], first: int, n: int, rate: int = RATE, harmonics: int = 4,
           tuning: Tuning | None = None, attack: float = 1.0) -> np.ndarray:
    """(2 * harmonics, n) float32 for samples first .. first + n - 1: the sum over sounding notes
    of SOURCE_GAIN * velocity / 127 * sin(theta_h), then of the cosines, for the first
    ``harmonics`` partials (none at or above Nyquist), theta_h = 2 pi f_h t + phase_h from where
    fluidsynth starts the note (ONSET_DELAY after its grid onset), f_h and phase_h from the
    ``tuning`` (equal temperament and zero phase without one): a fixed excitation at the notes'
    pitches (the "sine source" of neural source-filter vocoders, Wang et al. 2019) that the
    WaveNet shapes into a piano. With ``attack`` > 1 (playing, not training) each note's level
    starts ``attack`` times higher and falls back with time constant ATTACK_TIME."""
    tuning = tuning or Tuning.equal(harmonics)
    out = np.zeros((2 * harmonics, n), np.float64)
    for note in notes:
        level = SOURCE_GAIN * note.velocity / 127.0
        begin = int(round(note.start * rate)) + ONSET_DELAY
        a, b = max(begin, first), min(int(round(note.end * rate)) + ONSET_DELAY, first + n)
        if b <= a:
            continue
        t = (np.arange(a, b) - begin) / rate
        envelope = level * (1 + (attack - 1) * np.exp(-t / ATTACK_TIME)) if attack != 1 else level
        for h, (f, phase) in enumerate(tuning.partials(note.pitch, note.velocity)[:harmonics]):
            if 0 < f < rate / 2:
                theta = 2 * np.pi * f * t + phase
                out[h, a - first:b - first] += envelope * np.sin(theta)
                out[harmonics + h, a - first:b - first] += envelope * np.cos(theta)
    return out.astype(np.float32)


def to_midi(notes: list[Note], ticks_per_beat: int = 125, bpm: float = 120.0) -> bytes:
    """A one-track standard MIDI file (acoustic grand piano) of the notes, exact to the tick
    (by default a tick is the 4 ms GRID)."""
    import mido

    tempo = mido.bpm2tempo(bpm)
    per_second = ticks_per_beat * 1e6 / tempo
    events = []
    for n in notes:
        events.append((round(n.start * per_second), 1, "note_on", n.pitch, n.velocity))
        events.append((round(n.end * per_second), 0, "note_off", n.pitch, 0))
    events.sort()                                # at one tick: offs before ons
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo),
                            mido.Message("program_change", program=0, time=0)])
    now = 0
    for tick, _, kind, pitch, velocity in events:
        track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    out = io.BytesIO()
    mido.MidiFile(tracks=[track], ticks_per_beat=ticks_per_beat).save(file=out)
    return out.getvalue()


def from_midi(data: bytes, max_seconds: float = 120.0) -> list[Note]:
    """The notes of a MIDI file (every track and channel but drums), cut at ``max_seconds``."""
    import mido

    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
        messages = list(midi)                     # merged tracks, times in seconds
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as err:
        raise ValueError(f"Not a MIDI file this can read ({err})") from None
    notes, held, time = [], {}, 0.0
    for msg in messages:
        time += msg.time
        if time > max_seconds:
            break
        if msg.type not in ("note_on", "note_off") or getattr(msg, "channel", 0) == 9:
            continue
        key = (msg.channel, msg.note)
        if key in held:                           # released, or struck again
            start, velocity = held.pop(key)
            if LOWEST <= msg.note < LOWEST + KEYS and time > start:
                notes.append(Note(msg.note, start, time, velocity))
        if msg.type == "note_on" and msg.velocity > 0:
            held[key] = (time, msg.velocity)
        if len(notes) > MAX_NOTES:
            raise ValueError(f"More than {MAX_NOTES} notes in the first {max_seconds:.0f} s")
    end = min(time, max_seconds)
    notes += [Note(p, s, end, v) for (_, p), (s, v) in held.items()
              if LOWEST <= p < LOWEST + KEYS and end > s]
    return sorted(notes, key=lambda n: (n.start, n.pitch))


# ------------------------------------------ fluidsynth (training; the app when installed)
def can_render() -> bool:
    """Whether fluidsynth and the soundfont are installed here."""
    return shutil.which("fluidsynth") is not None and any(Path(p).is_file() for p in SOUNDFONTS)


def soundfont() -> str:
    for path in SOUNDFONTS:
        if Path(path).is_file():
            return path
    raise FileNotFoundError("no soundfont: install Debian's musescore-general-soundfont")


def render(notes: list[Note], tail: float = 1.0, gain: float = GAIN) -> np.ndarray:
    """fluidsynth's performance of the notes: float32 mono at RATE, as long as the notes plus
    ``tail`` seconds of release, sample 0 at time 0 (the roll's frame 0)."""
    return render_many([notes], tail, gain)[0]


def render_many(pieces: list[list[Note]], tail: float = 1.0, gain: float = GAIN,
                gap: float = 3.0) -> list[np.ndarray]:
    """Several renders from one fluidsynth run (loading the soundfont takes seconds): the
    pieces one after another, ``gap`` seconds of silence apart, then cut out again."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise FileNotFoundError("fluidsynth is not installed (Debian: fluidsynth, musescore-general-soundfont)")
    spans, joined, at = [], [], 0.0
    for notes in pieces:
        length = max((n.end for n in notes), default=0.0) + tail
        joined += [Note(n.pitch, n.start + at, n.end + at, n.velocity) for n in notes]
        spans.append((at, length))
        at = float(np.ceil((at + length + gap) * 10) / 10)   # whole MIDI ticks and synth blocks
    with tempfile.TemporaryDirectory(prefix="gdl-render-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(to_midi(joined))
        subprocess.run([exe, "-ni", "-q", "-g", str(gain), "-r", str(RATE), "-F", str(wav),
                        "-T", "wav", "-O", "s16", "-R", "0", "-C", "0", soundfont(), str(mid)],
                       check=True, capture_output=True, timeout=3600)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    assert rate == RATE, rate
    audio = audio.mean(axis=1)
    audio = np.pad(audio, (0, max(0, int(round(at * RATE)) - len(audio))))
    return [audio[int(round(a * RATE)): int(round(a * RATE)) + int(round(n * RATE))]
            for a, n in spans]
