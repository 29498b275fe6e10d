"""Train a WaveNet that plays the notes it is given: local conditioning on the piano roll
(models/pianoroll.py) of aligned pairs rendered by train/pianoroll.py.

    python -m train.pianoroll --out runs/pianoroll                       # the pairs, once
    python -m train.pianowave --data runs/pianoroll --out runs/pianowave-export --minutes 60
    python -m train.pianowave --tiny --data /tmp/rolls --out /tmp/pw     # seconds, for tests

Resumable (``runs/pianowave/last.pt`` every evaluation; rerun the same command). Windows start
on a roll frame; the loss counts outputs that see a full receptive field; the held-out windows
come from whole pieces never trained on (and held-out exercises).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from models.audio import figure_rows
from models.hub import from_pretrained
from models.pianoroll import (ATTACK_TIME, FPS, KEYS, LOWEST, ONSET_DELAY, Note, Tuning, hz_of,
                              render_many, snap, source, to_roll)
from models.pianowave import (ATTACK, FLOOR, TUNING_NAME, PianoPipeline, cents, note_pitch,
                              spectral_peak)
from models.runtime import generator
from models.wavenet import FastWaveNet, WaveNet, WaveNetConfig, WaveNetPipeline, bits_per_sample, \
    mu_law_decode, mu_law_encode

from .common import RunDir, command_line, hardware, pick_device
from .pianoroll import EXERCISES, RATE, read_shard
from .wavenet import add_training_args, fit
from .wavenet import evaluate as plain_evaluate

HOP = RATE // FPS
FEATURES = 3 * KEYS
TINY = dict(residual_channels=8, gate_channels=8, skip_channels=8, head_channels=16, cycle=4,
            stacks=1, cond_channels=8)


class Pieces:
    """One split's shards: mu-law codes (uint8) and the notes as an array (pitch, start, end,
    velocity) for cutting windows of the roll."""

    def __init__(self, folder: Path, split: str, limit: int | None = None):
        paths = sorted(Path(folder).glob(f"{split}-*.npz"))[:limit]
        if not paths:
            raise FileNotFoundError(f"no {split} shards in {folder}: run python -m train.pianoroll")
        self.codes, self.notes = [], []
        self.exercise = np.array([p.name.split("-")[1] in EXERCISES for p in paths])
        for path in paths:
            audio, notes, _ = read_shard(path)
            self.codes.append(mu_law_encode(audio).astype(np.uint8))
            self.notes.append(np.array([[n.pitch, n.start, n.end, n.velocity] for n in notes],
                                       np.float64).reshape(-1, 4))

    def seconds(self) -> float:
        return sum(map(len, self.codes)) / RATE

    def window(self, i: int, frame: int, length: int, margin: int, harmonics: int = 0,
               tuning: Tuning | None = None) -> tuple[np.ndarray, ...]:
        """``length`` codes from roll frame ``frame`` on, and the roll of their frames with
        ``margin`` frames either side, flattened to (264, frames); with ``harmonics``, also
        the codes' source (models.pianoroll.source)."""
        codes = self.codes[i][frame * HOP: frame * HOP + length]
        frames = -(-length // HOP) + 2 * margin
        t0 = (frame - margin) / FPS
        table = self.notes[i]
        near = table[(table[:, 2] > t0 - 1) & (table[:, 1] < t0 + frames / FPS + 1)]
        notes = [Note(int(p), s, e, int(v)) for p, s, e, v in near]
        roll = to_roll(notes, frames, first=frame - margin).reshape(FEATURES, frames)
        if not harmonics:
            return codes, roll
        return codes, roll, source(notes, frame * HOP, len(codes), RATE, harmonics, tuning)


def stacked(windows: list[tuple[np.ndarray, ...]]) -> tuple[torch.Tensor, ...]:
    """Windows (codes, roll[, source]) as batch tensors, the codes as int64."""
    parts = [np.stack(column) for column in zip(*windows)]
    return (torch.from_numpy(parts[0].astype(np.int64)), *map(torch.from_numpy, parts[1:]))


def batch_of(data: Pieces, length: int, size: int, margin: int, rng: np.random.Generator,
             harmonics: int = 0, tuning: Tuning | None = None, exercise_share: float = 0.0):
    """Windows uniform over the audio, or with ``exercise_share`` of them from the exercises
    (single keys, scales, chords, runs: a few percent of the audio)."""
    usable = [i for i, c in enumerate(data.codes) if len(c) >= length + HOP]
    weights = np.array([len(data.codes[i]) - length for i in usable], np.float64)
    drill = data.exercise[usable]
    if exercise_share > 0 and drill.any() and not drill.all():
        weights = np.where(drill, exercise_share * weights / weights[drill].sum(),
                           (1 - exercise_share) * weights / weights[~drill].sum())
    windows = []
    for i in rng.choice(usable, size=size, p=weights / weights.sum()):
        frame = int(rng.integers(0, (len(data.codes[i]) - length) // HOP + 1))
        windows.append(data.window(i, frame, length, margin, harmonics, tuning))
    return stacked(windows)


def validation(data: Pieces, length: int, limit: int, margin: int, harmonics: int = 0,
               tuning: Tuning | None = None):
    """Non-overlapping windows spread evenly over the held-out shards (the same every time)."""
    spots = [(i, f) for i, c in enumerate(data.codes)
             for f in range(0, (len(c) - length) // HOP + 1, -(-length // HOP))]
    picks = np.linspace(0, len(spots) - 1, min(limit, len(spots))).astype(int)
    return stacked([data.window(*spots[k], length, margin, harmonics, tuning) for k in picks])


@torch.inference_mode()
def evaluate(model: WaveNet, codes: torch.Tensor, *cond: torch.Tensor, batch: int = 8) -> float:
    """Held-out bits per sample; ``cond``: the rolls (and sources) of the windows."""
    model.eval()
    start = model.config.receptive_field - 1
    total, count = 0.0, 0
    for i in range(0, len(codes), batch):
        x = codes[i:i + batch]
        n = x.shape[0] * (x.shape[1] - start - 1)
        total += float(bits_per_sample(model(x, *(c[i:i + batch] for c in cond)), x, start)) * n
        count += n
    return total / count


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    limit = 4 if args.tiny else None
    data, held = Pieces(args.data, "train", limit), Pieces(args.data, "test", limit)
    sizes = TINY if args.tiny else dict(
        residual_channels=args.channels, gate_channels=args.channels, skip_channels=args.skip,
        head_channels=args.head, cycle=args.cycle, stacks=args.stacks, cond_channels=args.cond)
    config = WaveNetConfig(**sizes, sample_rate=RATE, cond_features=FEATURES, cond_hop=HOP,
                           source_channels=2 * args.harmonics,
                           dataset="piano rolls rendered with fluidsynth (train/pianoroll.py)")
    rf, m, h = config.receptive_field, config.cond_margin, config.source_channels // 2
    tuning = None
    if h and (Path(args.data) / TUNING_NAME).is_file():    # the measured partials; else equal
        tuning = Tuning.load(Path(args.data) / TUNING_NAME)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        tuning.save(Path(args.out) / TUNING_NAME)
    val = [t.to(device) for t in validation(held, rf + (2000 if args.tiny else 8000),
                                            4 if args.tiny else args.val_windows, m, h, tuning)]
    print(f"receptive field {rf} samples; {data.seconds():.0f} s training, "
          f"{held.seconds():.0f} s held out", flush=True)
    return fit(args, config, device, RunDir(args.run_dir or f"runs/pianowave{'-tiny' if args.tiny else ''}"),
               lambda rng: batch_of(data, rf + args.window, args.batch_size, m, rng, h, tuning,
                                    args.exercise_share),
               lambda model: evaluate(model, *val),
               (lambda model: quick_pitch(model, tuning, QUICK_KEYS[:2] if args.tiny else QUICK_KEYS))
               if args.select_by_pitch else None)


def quick_pitch(model: WaveNet, tuning: Tuning | None, keys=None) -> float:
    """Share of keys in tune, every other key C2-C7 at alternating velocities 50 / 100, as the
    pipeline plays them by default (floor and attack), with the weights as they are exported: a
    cheap guide for which weights to export."""
    pipe = PianoPipeline(WaveNetPipeline(as_exported(model)), tuning)
    rows = [(p, pipe.perform([Note(p, 0.0, NOTE_SECONDS, PITCH_VELOCITIES[i % 2])],
                             int(PITCH_SECONDS * RATE), 1.0, generator=generator(p)))
            for i, p in enumerate(QUICK_KEYS if keys is None else keys)]
    return float(np.mean([in_tune(a, p) for p, a in rows]))


def as_exported(model: WaveNet) -> WaveNet:
    """A copy of ``model`` whose float weights went through float16, as ``save_pretrained`` writes
    them."""
    copy = WaveNet(model.config)
    copy.load_state_dict({k: v.detach().half().float() if v.is_floating_point() else v
                          for k, v in model.state_dict().items()})
    return copy.eval()


def in_tune(audio: np.ndarray, pitch: int) -> bool:
    """Whether YIN reads the key's pitch, within CENTS_OK, from a note played from time 0."""
    hz = note_pitch(audio, RATE)[0]
    return hz is not None and abs(cents(hz, pitch)) <= CENTS_OK


# ---------------------------------------------------------------- measurements
PITCH_KEYS = range(36, 97)           # C2 .. C7, each alone
PITCH_VELOCITIES = (50, 100)
NOTE_SECONDS, PITCH_SECONDS = 0.5, 0.6   # held; generated (the pitch is read from 50-450 ms)
CENTS_OK = 50
QUICK_KEYS = PITCH_KEYS[::2]
MUSIC = ["joplin_maple_leaf_rag-t+0-x1", "chopin_mazurka06-2-t+0-x1",
         "bach_bwv66_6_mxl-t+0-x1", "bach_bwv25_6_mxl-t+0-x1"]   # held-out pieces
MUSIC_SECONDS = 10.0
TEMPERATURES = (1.0, 0.9, 0.8, 0.7, 0.6)   # tried on a subset of keys; the best is measured
UNCONDITIONED = Path("checkpoints/wavenet-piano-unconditioned")   # the old piano model


def pitch_table(perform, keys=PITCH_KEYS) -> list[dict]:
    """Every key alone at each velocity: the pitch YIN reads from ``perform(note, k)`` (audio
    from time 0) and how far it is from the key, in cents."""
    rows = []
    for k, (velocity, pitch) in enumerate((v, p) for v in PITCH_VELOCITIES for p in keys):
        audio = perform(Note(pitch, 0.0, NOTE_SECONDS, velocity), k)
        hz, periodic = note_pitch(audio, RATE)
        off = None if hz is None else float(cents(hz, pitch))
        rows.append(dict(pitch=pitch, velocity=velocity, hz=hz, cents=off, periodic=periodic,
                         ok=off is not None and abs(off) <= CENTS_OK))
    return rows


def pitch_summary(rows: list[dict]) -> dict:
    offs = [abs(r["cents"]) for r in rows if r["cents"] is not None]
    return dict(notes=len(rows), within=sum(r["ok"] for r in rows),
                accuracy=sum(r["ok"] for r in rows) / len(rows),
                median_abs_cents=float(np.median(offs)) if offs else None,
                missed=[f"{r['pitch']}@{r['velocity']}" for r in rows if not r["ok"]])


def truncated(notes: list[Note], seconds: float) -> list[Note]:
    return [Note(n.pitch, n.start, min(n.end, seconds), n.velocity) for n in notes if n.start < seconds]


def music_features(audio: np.ndarray) -> dict:
    import librosa

    hop = RATE // FPS
    chroma = librosa.feature.chroma_stft(y=audio, sr=RATE, n_fft=2048, hop_length=hop)
    mel = librosa.feature.melspectrogram(y=audio, sr=RATE, n_fft=1024, hop_length=hop, n_mels=80)
    onsets = librosa.onset.onset_detect(y=audio, sr=RATE, hop_length=hop, units="time")
    rms = librosa.feature.rms(y=audio, frame_length=2048, hop_length=hop)[0]
    return dict(chroma=chroma, mel_db=10 * np.log10(np.maximum(mel, 1e-8)), onsets=onsets, rms=rms)


def compare_music(made: np.ndarray, ref: np.ndarray) -> dict:
    """Frame-wise chroma cosine similarity (on frames where the reference is audible), onset
    F-measure (50 ms), log-mel distance (dB) and loudness (RMS, dB) of ``made`` against the
    reference render."""
    import mir_eval

    n = min(len(made), len(ref))
    a, b = music_features(made[:n].astype(np.float32)), music_features(ref[:n].astype(np.float32))
    audible = b["rms"] > 0.05 * b["rms"].max()
    ca, cb = a["chroma"][:, audible], b["chroma"][:, audible]
    cos = (ca * cb).sum(0) / np.maximum(np.linalg.norm(ca, axis=0) * np.linalg.norm(cb, axis=0), 1e-9)
    floor = b["mel_db"].max() - 80                       # 80 dB below the reference's peak
    da, db = np.maximum(a["mel_db"], floor), np.maximum(b["mel_db"], floor)
    f, precision, recall = mir_eval.onset.f_measure(b["onsets"], a["onsets"], window=0.05)
    return dict(chroma=float(cos.mean()), onset_f=float(f), onset_precision=float(precision),
                onset_recall=float(recall), log_mel_db=float(np.sqrt(((da - db) ** 2).mean(0)).mean()),
                onsets=len(a["onsets"]), reference_onsets=len(b["onsets"]),
                level_db=float(10 * np.log10(max((made[:n] ** 2).mean(), 1e-12)
                                             / max((ref[:n] ** 2).mean(), 1e-12))))


def mean_rows(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("piece",)}


def heldout_bits(model: WaveNet, data: Pieces, windows: int = 300,
                 tuning: Tuning | None = None) -> dict:
    rf, m = model.config.receptive_field, model.config.cond_margin
    codes, *cond = validation(data, rf + 8000, windows, m, model.config.source_channels // 2,
                              tuning)
    t = time.time()
    bits = evaluate(model, codes, *cond)
    return dict(val_bits=bits, val_windows=int(codes.shape[0]),
                val_seconds_evaluated=codes.shape[0] * 8000 / RATE, eval_seconds=time.time() - t)


def histogram_bits(train: Pieces, held: Pieces) -> dict:
    counts = np.bincount(np.concatenate(train.codes), minlength=256).astype(np.float64) + 1
    p = counts / counts.sum()
    h = np.bincount(np.concatenate(held.codes), minlength=256).astype(np.float64)
    return dict(uniform_bits=8.0, histogram_entropy_bits=float(-(p * np.log2(p)).sum()),
                histogram_heldout_bits=float(-(h * np.log2(p)).sum() / h.sum()))


@torch.inference_mode()
def unconditioned_bits(model: WaveNet, data: Pieces, windows: int = 300) -> float:
    codes, _ = validation(data, model.config.receptive_field + 8000, windows, 0)
    return plain_evaluate(model, codes)


def measure(folder: Path, data: Path = Path("runs/pianoroll"), quick: bool = False) -> dict:
    """The piano-roll WaveNet against fluidsynth's render of the same notes: pitch of every key
    C2-C7 alone at two velocities, chroma / onsets / log-mel on held-out pieces, held-out bits
    against the histogram baselines, speed; the unconditioned piano model on the same rows where
    it is on disk. Writes metrics.json and samples/ (FLAC + spectrograms)."""
    folder = Path(folder)
    pipe = PianoPipeline(WaveNetPipeline(from_pretrained(WaveNet, folder)),
                         Tuning.load(folder / TUNING_NAME) if (folder / TUNING_NAME).is_file() else None)
    plain = from_pretrained(WaveNet, UNCONDITIONED) if (UNCONDITIONED / "config.json").is_file() else None
    keys = PITCH_KEYS if not quick else range(60, 64)
    n_pitch = int(PITCH_SECONDS * RATE)

    # the temperature: the best share of right pitches on every third key at velocity 80
    trial = {}
    for temperature in TEMPERATURES[:1] if quick else TEMPERATURES:
        tried = [pipe.perform([Note(p, 0.0, NOTE_SECONDS, 80)], n_pitch, temperature,
                              generator=generator(1000 + p)) for p in keys[::3]]
        trial[temperature] = float(np.mean([in_tune(audio, p) for p, audio in zip(keys[::3], tried)]))
    chosen = max(trial, key=lambda t: (trial[t], t))
    t = time.time()
    rows = pitch_table(lambda note, k: pipe.perform([note], n_pitch, chosen,
                                                    generator=generator(k)), keys)
    pitch_time = time.time() - t
    unfloored = pitch_table(lambda note, k: pipe.perform([note], n_pitch, chosen, generator=generator(k),
                                                         floor=0.0), keys)
    unattacked = pitch_table(lambda note, k: pipe.perform([note], n_pitch, chosen, generator=generator(k),
                                                          attack=1.0), keys)
    plain_sampling = pitch_table(lambda note, k: pipe.perform(
        [note], n_pitch, chosen, generator=generator(k), floor=0.0, attack=1.0), keys)
    renders = render_many([[Note(r["pitch"], 0.0, NOTE_SECONDS, r["velocity"])] for r in rows],
                          tail=PITCH_SECONDS - NOTE_SECONDS)
    ref_rows = pitch_table(lambda note, k: renders[k], keys)
    plain_rows = (pitch_table(lambda note, k: mu_law_decode(FastWaveNet(plain).generate(
        n_pitch, chosen, generator=generator(k))), keys) if plain is not None else None)
    metrics = dict(temperature=chosen, temperature_trial=trial, floor=FLOOR, attack=ATTACK,
                   attack_time=ATTACK_TIME, pitch=dict(
        key_range=f"MIDI {keys[0]}-{keys[-1]}", velocities=list(PITCH_VELOCITIES),
        note_seconds=NOTE_SECONDS, cents_ok=CENTS_OK, seconds=pitch_time,
        wavenet=pitch_summary(rows), wavenet_no_floor=pitch_summary(unfloored),
        wavenet_no_attack=pitch_summary(unattacked), wavenet_plain=pitch_summary(plain_sampling),
        render=pitch_summary(ref_rows),
        unconditioned=pitch_summary(plain_rows) if plain_rows else None, rows=rows))

    import librosa
    import mir_eval

    held = Pieces(data, "test")
    shards = {p.name[len("test-"):-len(".npz")]: p for p in Path(data).glob("test-*.npz")}
    pieces = MUSIC[:1] if quick else MUSIC
    seconds = 3.0 if quick else MUSIC_SECONDS
    music = dict(wavenet=[], wavenet_no_attack=[], unconditioned=[], render_vs_notes=[])
    (folder / "samples").mkdir(exist_ok=True)
    for k, name in enumerate(pieces):
        notes = truncated(read_shard(shards[name])[1], seconds)
        ref = render_many([notes], tail=1.0)[0]
        made = pipe(notes, chosen, generator=generator(k))
        row = compare_music(made, ref)
        music["wavenet"].append(dict(piece=name, **row))
        music["wavenet_no_attack"].append(dict(piece=name, **compare_music(
            pipe(notes, chosen, generator=generator(k), attack=1.0), ref)))
        truth = np.array(sorted({round(n.start, 3) for n in notes}))
        found = librosa.onset.onset_detect(y=ref, sr=RATE, hop_length=RATE // FPS, units="time")
        music["render_vs_notes"].append(dict(piece=name, onset_f=float(
            mir_eval.onset.f_measure(truth, found, window=0.05)[0])))
        if plain is not None:
            other = mu_law_decode(FastWaveNet(plain).generate(len(made), chosen,
                                                              generator=generator(k)))
            music["unconditioned"].append(dict(piece=name, **compare_music(other, ref)))
        stem = name.split("-t+")[0]
        sf.write(folder / "samples" / f"{stem}.flac", made, RATE, subtype="PCM_16")
        sf.write(folder / "samples" / f"{stem}_fluidsynth.flac", ref, RATE, subtype="PCM_16")
        Image.fromarray(figure_rows([(made, "WaveNet (piano roll conditioned)"),
                                     (ref, "fluidsynth, same notes")], RATE,
                                    f"{stem}: first {seconds:g} s, held out")).save(
            folder / "samples" / f"{stem}.png")
    metrics["music"] = dict(seconds=seconds, pieces=pieces,
                            **{k: dict(rows=v, mean=mean_rows(v)) for k, v in music.items() if v})
    train_data = Pieces(data, "train", 200 if quick else None)
    metrics["bits"] = dict(**heldout_bits(pipe.wavenet.model, held, 8 if quick else 300, pipe.tuning),
                           **histogram_bits(train_data, held))
    if plain is not None:
        metrics["bits"]["unconditioned_val_bits"] = unconditioned_bits(plain, held, 8 if quick else 300)
    metrics["heldout_seconds"], metrics["train_seconds"] = held.seconds(), train_data.seconds()
    metrics["fast_samples_per_second"] = speed_with_roll(pipe)
    metrics["real_time_factor"] = metrics["fast_samples_per_second"] / RATE
    metrics["speed_hardware"] = hardware("cpu")
    metrics["title"] = "WaveNet that plays the notes it is given (piano roll conditioned)"
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def speed_with_roll(pipe: PianoPipeline) -> float:
    """Samples per second of the compiled loop reading a roll, one thread."""
    notes = [Note(60 + (i % 12), i * 0.25, i * 0.25 + 0.5, 80) for i in range(8)]
    pipe(notes[:1], generator=generator(0))                             # compile / warm
    t = time.perf_counter()
    audio = pipe(notes, generator=generator(1))
    return len(audio) / (time.perf_counter() - t)


CALIBRATION_VELOCITIES = (16, 32, 48, 64, 80, 96, 112, 127)


def calibrate(out: Path, harmonics: int = 4) -> Tuning:
    """The partials of every key as fluidsynth plays it: frequencies from the velocity-80 render
    (YIN, then each partial's spectral peak near h x f), and at each calibration velocity each
    partial's phase where the render starts the note (lock-in over 30-330 ms after the start)."""
    start, hold = 0.1, 1.0
    notes = [Note(k, start, start + hold, v) for k in range(LOWEST, LOWEST + KEYS)
             for v in CALIBRATION_VELOCITIES]
    renders = render_many([[n] for n in notes], tail=0.2, gap=1.0)
    begin = int(round(start * RATE)) + ONSET_DELAY
    t = np.arange(begin + 480, begin + 480 + 4800)
    freqs, phases = [], []
    for k in range(KEYS):
        mine = renders[k * len(CALIBRATION_VELOCITIES):(k + 1) * len(CALIBRATION_VELOCITIES)]
        loud = mine[CALIBRATION_VELOCITIES.index(80)]
        f0, _ = note_pitch(loud, RATE, start + 0.05, start + 0.9)
        f0 = f0 if f0 is not None and abs(cents(f0, k + LOWEST)) < 100 else hz_of(k + LOWEST)
        segment = loud[int((start + 0.03) * RATE):int((start + 0.6) * RATE)]
        fs = [(spectral_peak(segment, RATE, h * f0) or h * f0) if h * f0 < RATE / 2 else h * f0
              for h in range(1, harmonics + 1)]
        freqs.append(fs)
        phases.append([[float(np.angle((audio[t] * np.exp(-2j * np.pi * f * (t - begin) / RATE)).sum())
                              + np.pi / 2) for f in fs] for audio in mine])
    tuning = Tuning(freqs, phases, list(CALIBRATION_VELOCITIES))
    tuning.save(out)
    return tuning


# the tab's examples: typed tunes (public domain) and the openings of held-out pieces
TUNES = {"Twinkle, twinkle, little star": "C4 C4 G4 G4 A4 A4 G4*2 F4 F4 E4 E4 D4 D4 C4*2",
         "Ode to joy (Beethoven)": "E4 E4 F4 G4 G4 F4 E4 D4 C4 C4 D4 E4 E4*1.5 D4/2 D4*2",
         "Scale of C major, two octaves": "C3 D3 E3 F3 G3 A3 B3 C4 D4 E4 F4 G4 A4 B4 C5*2",
         "Chords: C, F, G, C": "C4+E4+G4*2 F4+A4+C5*2 G3+B3+D4+G4*2 C4+E4+G4+C5*4"}
PIECE_TITLES = {"joplin_maple_leaf_rag-t+0-x1": "Joplin: Maple Leaf Rag (1899)",
                "chopin_mazurka06-2-t+0-x1": "Chopin: Mazurka op. 6 no. 2",
                "bach_bwv66_6_mxl-t+0-x1": "Bach: chorale BWV 66.6",
                "bach_bwv25_6_mxl-t+0-x1": "Bach: chorale BWV 25.6"}
EXAMPLE_BPM, EXAMPLE_VELOCITY = 120.0, 80


def export_examples(folder: Path, data: Path = Path("runs/pianoroll")) -> list[dict]:
    """examples/piano: the held-out pieces' first MUSIC_SECONDS as notes (pieces.json) and
    fluidsynth's render of each example, tunes included, at the tab's default settings
    (renders/<notes_key>.flac), so the tab can compare without fluidsynth installed."""
    from models.pianoroll import parse
    from models.pianowave import notes_key

    folder = Path(folder)
    (folder / "renders").mkdir(parents=True, exist_ok=True)
    shards = {p.name[len("test-"):-len(".npz")]: p for p in Path(data).glob("test-*.npz")}
    entries = [dict(title=title, text=text, notes=snap(parse(text, EXAMPLE_BPM, EXAMPLE_VELOCITY)))
               for title, text in TUNES.items()]
    for name, title in PIECE_TITLES.items():       # as the tab reads them back from JSON
        notes = snap([Note(n.pitch, round(n.start, 4), round(n.end, 4), n.velocity)
                      for n in truncated(read_shard(shards[name])[1], MUSIC_SECONDS)])
        entries.append(dict(title=f"{title}, opening (held out)", source=name, notes=notes))
    renders = render_many([e["notes"] for e in entries], tail=1.0)
    listing = []
    for entry, audio in zip(entries, renders):
        key = notes_key(entry["notes"])
        sf.write(folder / "renders" / f"{key}.flac", audio, RATE, subtype="PCM_16")
        row = dict(title=entry["title"], render=f"renders/{key}.flac")
        if "text" in entry:
            row["text"] = entry["text"]
        else:
            row["source"] = entry["source"]
            row["notes"] = [[n.pitch, n.start, n.end, n.velocity] for n in entry["notes"]]
        listing.append(row)
    (folder / "pieces.json").write_text(json.dumps(listing, indent=1) + "\n")
    return listing


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="runs/pianoroll", help="train/pianoroll.py's shards")
    p.add_argument("--out", default="runs/pianowave-export")
    p.add_argument("--cond", type=int, default=64, help="conditioning channels")
    p.add_argument("--harmonics", type=int, default=4,
                   help="harmonics of the notes' sines and cosines read with the codes (0: none)")
    add_training_args(p, tiny_steps=20)
    p.add_argument("--exercise-share", type=float, default=0.0, metavar="SHARE",
                   help="share of training windows cut from the exercises (0: as in the audio)")
    p.add_argument("--select-by-pitch", action="store_true",
                   help="export the weights whose quick pitch check (31 keys) is the best so far")
    p.add_argument("--measure", type=Path, metavar="FOLDER",
                   help="measure an exported model against fluidsynth: metrics.json, samples/")
    p.add_argument("--examples", type=Path, metavar="FOLDER",
                   help="write the tab's examples there (notes, fluidsynth renders)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure every key's partials in fluidsynth: <data>/source.json")
    args = p.parse_args(argv)
    if args.calibrate:
        calibrate(Path(args.data) / TUNING_NAME, args.harmonics)
        return
    if args.examples:
        export_examples(args.examples, Path(args.data))
        return
    if args.measure:
        torch.set_num_threads(args.threads)
        measure(args.measure, Path(args.data), quick=args.tiny)
        return
    args.steps = args.steps or (20 if args.tiny else 200_000)
    args.eval_every = args.eval_every or (10 if args.tiny else 250)
    if args.tiny:
        args.window = min(args.window, 2000)
    args.command = command_line("train.pianowave", argv)
    train(args)


if __name__ == "__main__":
    main()
