"""Aligned (piano roll, audio) pairs for a note-conditioned WaveNet: music21 scores (any tempo,
any transposition) and exercises (single notes over the keyboard, scales, chords, random runs)
rendered with fluidsynth and the soundfont the studio's piano data came from.

    python -m train.pianoroll --out runs/pianoroll --minutes 30     (resumable; --tiny for CI)

Training only: needs fluidsynth and Debian's musescore-general-soundfont (`make train-deps`).
Whole pieces are held out (held_out()); every shard is one .npz of int16 audio and its notes."""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from models.pianoroll import (FPS, GAIN, KEYS, LOWEST, RATE, SOUNDFONTS, Note,  # noqa: F401
                              render, render_many, snap, soundfont, to_midi)

# whole pieces never trained on: the studio's own piano examples, and every tenth chorale
HELD_OUT_PIECES = ["joplin/maple_leaf_rag", "chopin/mazurka06-2"]
PIECES = ["bach/bwv846", "schumann_clara/polonaise_op1n1", "schumann_clara/polonaise_op1n2",
          "schumann_clara/polonaise_op1n3", "schumann_clara/polonaise_op1n4",
          "beach/prayer_of_a_tired_child", "mozart/k545/movement1_exposition"]


def chorales() -> list[str]:
    """The music21 corpus's Bach chorales (bach/bwvNNN.N.mxl), in a fixed order."""
    import music21

    root = Path(music21.corpus.getWork("bach/bwv846")).parent
    return sorted(f"bach/{p.name}" for p in root.glob("bwv*.mxl")
                  if re.fullmatch(r"bwv\d+\.\d+\.mxl", p.name))


def held_out(piece: str, index: int | None = None) -> bool:
    return piece in HELD_OUT_PIECES or (index is not None and index % 10 == 9)

def score_notes(path: str, transpose: int = 0, tempo: float = 1.0, velocity: int = 80) -> list[Note]:
    """A music21 corpus score as notes in seconds (its own tempo marks, scaled by ``tempo``)."""
    import music21

    score = music21.corpus.parse(path)
    notes = []
    for e in score.flatten().secondsMap:
        el = e["element"]
        if not isinstance(el, (music21.note.Note, music21.chord.Chord)) or e["durationSeconds"] <= 0:
            continue
        start, end = e["offsetSeconds"] / tempo, e["endTimeSeconds"] / tempo
        v = el.volume.velocity or velocity
        for p in el.pitches:
            pitch = p.midi + transpose
            if LOWEST <= pitch < LOWEST + KEYS:
                notes.append(Note(pitch, start, end, int(v)))
    return sorted(set(notes), key=lambda n: (n.start, n.pitch))


EXERCISES = ("single", "scale", "chord", "run")


def exercise(kind: str, rng: np.random.Generator, seconds: float = 8.0) -> list[Note]:
    """Random material the scores lack: every key alone, scales, chords, free runs."""
    notes, t = [], 0.0
    while t < seconds:
        v = int(rng.integers(30, 121))
        if kind == "single":
            length = float(rng.uniform(0.3, 2.0))
            notes.append(Note(int(rng.integers(LOWEST, LOWEST + KEYS)), t, t + length, v))
            t += length + float(rng.uniform(0.0, 0.5))
        elif kind == "scale":
            root, step = int(rng.integers(LOWEST, LOWEST + KEYS - 15)), float(rng.uniform(0.1, 0.5))
            for d in [0, 2, 4, 5, 7, 9, 11, 12]:
                notes.append(Note(root + d, t, t + step * 1.1, v))
                t += step
        elif kind == "chord":
            root, length = int(rng.integers(LOWEST, LOWEST + KEYS - 12)), float(rng.uniform(0.5, 2.5))
            shapes = [[0, 4, 7], [0, 3, 7], [0, 4, 7, 12], [0, 5, 9], [0, 3, 6]]
            for d in shapes[int(rng.integers(len(shapes)))]:
                notes.append(Note(root + d, t, t + length, v))
            t += length
        elif kind == "run":
            pitch = int(rng.integers(LOWEST + 12, LOWEST + KEYS - 12))
            for _ in range(int(rng.integers(4, 16))):
                pitch = int(np.clip(pitch + rng.integers(-5, 6), LOWEST, LOWEST + KEYS - 1))
                length = float(rng.choice([0.125, 0.25, 0.5]))
                notes.append(Note(pitch, t, t + length, int(np.clip(v + rng.integers(-15, 16), 1, 127))))
                t += length
        else:
            raise ValueError(kind)
    return [n for n in notes if n.start < seconds]


def write_shard(path: Path, notes: list[Note], audio: np.ndarray, source: str) -> None:
    table = np.array([[n.pitch, n.start, n.end, n.velocity] for n in notes], np.float64).reshape(-1, 4)
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, audio=pcm, notes=table, source=np.array(source))
    tmp.replace(path)


def read_shard(path: Path) -> tuple[np.ndarray, list[Note], str]:
    with np.load(path) as z:
        audio = z["audio"].astype(np.float32) / 32767
        notes = [Note(int(p), float(s), float(e), int(v)) for p, s, e, v in z["notes"]]
        return audio, notes, str(z["source"])


def jobs(tiny: bool, seed: int) -> list[tuple[str, str, dict]]:
    """Every shard to render, in order: (name, kind, arguments)."""
    out = []
    listed = [(p, None) for p in PIECES + HELD_OUT_PIECES] + list(zip(chorales(), range(10**6)))
    if tiny:
        listed = [(PIECES[0], None), (HELD_OUT_PIECES[0], None)]
    for piece, index in listed:
        split = "test" if held_out(piece, index) else "train"
        variants = [(0, 1.0)] if tiny or split == "test" else \
            [(0, 1.0), (-3, 0.9), (2, 1.15), (5, 0.8), (-7, 1.05)]
        for transpose, tempo in variants:
            name = f"{split}-{piece.replace('/', '_').replace('.', '_')}-t{transpose:+d}-x{tempo:g}"
            out.append((name, "piece", dict(path=piece, transpose=transpose, tempo=tempo)))
    for k in range(2 if tiny else 400):
        kind = EXERCISES[k % 4]
        split = "test" if k % 20 == 19 else "train"
        out.append((f"{split}-{kind}-{k:04d}", "exercise", dict(kind=kind, seed=seed * 100_003 + k)))
    return out


def build(out: Path, tiny: bool = False, minutes: float = 0.0, seed: int = 0,
          max_piece_seconds: float = 180.0, batch: int = 40) -> dict:
    """Render every missing shard (resumable: finished shards are kept); a manifest at the end."""
    out.mkdir(parents=True, exist_ok=True)
    start, made = time.time(), 0
    todo = [job for job in jobs(tiny, seed) if not (out / f"{job[0]}.npz").exists()]
    for first in range(0, len(todo), batch):
        if minutes and time.time() - start > minutes * 60:
            break
        material = []
        for name, kind, args in todo[first:first + batch]:
            if kind == "piece":
                notes = [n for n in score_notes(args["path"], args["transpose"], args["tempo"])
                         if n.start < (20.0 if tiny else max_piece_seconds)]
                source = (f"music21 corpus: {args['path']}, transposed {args['transpose']:+d}, "
                          f"tempo x{args['tempo']:g}")
            else:
                notes = exercise(args["kind"], np.random.default_rng(args["seed"]), 4.0 if tiny else 8.0)
                source = f"exercise: {args['kind']} (seed {args['seed']})"
            material.append((name, snap(notes), source))
        for (name, notes, source), audio in zip(material, render_many([m[1] for m in material])):
            write_shard(out / f"{name}.npz", notes, audio, source)
            made += 1
        print(f"{made} of {len(todo)} shards ({time.time() - start:.0f} s)", flush=True)
    shards = sorted(p.name for p in out.glob("*.npz") if not p.name.endswith(".tmp.npz"))
    manifest = dict(rate=RATE, fps=FPS, soundfont=Path(soundfont()).name,
                    held_out=HELD_OUT_PIECES + ['every tenth chorale'],
                    shards=shards, train=sum(s.startswith("train-") for s in shards),
                    test=sum(s.startswith("test-") for s in shards))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"made {made}; {manifest['train']} train and {manifest['test']} test shards in {out}")
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/pianoroll")
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    build(Path(args.out), tiny=args.tiny, minutes=args.minutes, seed=args.seed)


if __name__ == "__main__":
    main()
