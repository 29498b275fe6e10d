"""Piano WaveNet speed: the compiled loop reading a roll and a source (one stream, one core),
a whole example performed by the pipeline, fluidsynth on the same notes where installed, and
the tab's pitch check. Goal: faster than real time (the issue: say the factor)."""
from __future__ import annotations

import time

from benchmarks import Row, row, threads
from models.hub import WEIGHTS_DIR
from models.pianoroll import Note, can_render, parse, render
from models.pianowave import PianoPipeline, note_pitch
from models.runtime import generator

FOLDER = "wavenet-pianoroll"


def run() -> list[Row]:
    if not (WEIGHTS_DIR / FOLDER / "config.json").is_file():
        return []
    pipe = PianoPipeline.from_pretrained(FOLDER)
    sr = pipe.rate
    tune = parse("E4 E4 F4 G4 G4 F4 E4 D4 C4 C4 D4 E4 E4*1.5 D4/2 D4*2", bpm=120)
    chords = parse("C4+E4+G4*2 F4+A4+C5*2 G3+B3+D4+G4*2 C4+E4+G4+C5*4", bpm=120)
    pipe(tune[:2], generator=generator(0))                                      # compile, warm
    rows = []
    with threads(1):
        for name, notes in (("a tune, one note at a time", tune), ("four chords", chords)):
            t = time.perf_counter()
            audio = pipe(notes, generator=generator(0))
            took = time.perf_counter() - t
            rows.append(row("pianowave", f"perform {name} ({len(audio) / sr:.1f} s)",
                            f"{len(audio) / took:,.0f} samples/s",
                            f"**{len(audio) / sr / took:.2f}x real time** (goal > 1x); "
                            f"{took:.2f} s"))
        t = time.perf_counter()
        audio = pipe.perform([Note(69, 0.0, 0.5, 80)], sr, generator=generator(0))
        made = time.perf_counter() - t
        t = time.perf_counter()
        note_pitch(audio, sr)
        read = time.perf_counter() - t
        rows.append(row("pianowave", "single-note check (1 s written, pitch read by YIN)",
                        f"{made + read:.2f} s", f"writing {made:.2f} s, reading {read * 1000:.0f} ms"))
    if can_render():
        t = time.perf_counter()
        render(tune)
        rows.append(row("pianowave", "fluidsynth render of the tune (comparison, when installed)",
                        f"{time.perf_counter() - t:.2f} s", "mostly loading the soundfont"))
    return rows


if __name__ == "__main__":
    from benchmarks import print_table

    print_table(run())
