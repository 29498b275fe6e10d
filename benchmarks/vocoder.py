"""Vocoder speed on a held-out sentence: Griffin-Lim, the GAN vocoder (one forward pass) and the
WaveNet vocoder (the compiled loop reading the mel, one core). Goals (issue 26): the WaveNet
faster than real time; the GAN tens of times faster."""
from __future__ import annotations

import time

import soundfile as sf

from benchmarks import Row, row, threads
from models.hub import REPO_ROOT, WEIGHTS_DIR
from models.mel import MEL, log_mel
from models.runtime import generator
from models.vocoder import VocoderPipeline

GAN, WAVENET = "gan-vocoder-speech", "wavenet-vocoder-speech"


def run() -> list[Row]:
    have = [f if (WEIGHTS_DIR / f / "config.json").is_file() else None for f in (GAN, WAVENET)]
    pipe = VocoderPipeline.from_pretrained(*have)
    clip = sorted((REPO_ROOT / "examples" / "speech").glob("*.flac"))[1]
    audio = sf.read(clip, dtype="float32")[0]
    mel = log_mel(audio)
    seconds = (mel.shape[1] - 1) * MEL.hop / MEL.sample_rate
    rows = []

    def timed(name, make, n_threads, goal):
        with threads(n_threads):
            make()                                          # warm (and compile)
            t = time.perf_counter()
            make()
            took = time.perf_counter() - t
            rows.append(row("vocoder", f"{name}, {seconds:.1f} s sentence, {n_threads} thread"
                                       f"{'s' if n_threads > 1 else ''}",
                            f"{took:.2f} s", f"**{seconds / took:.1f}x real time** ({goal})"))

    t = time.perf_counter()
    log_mel(audio)
    rows.append(row("vocoder", "log-mel of the sentence", f"{(time.perf_counter() - t) * 1000:.0f} ms", ""))
    timed("Griffin-Lim (60 iterations)", lambda: pipe.griffin_lim(mel, generator(0)), 1, "no goal")
    if pipe.gan is not None:
        for n in (1, 2):
            timed("GAN vocoder", lambda: pipe.gan_vocode(mel), n, "goal: tens of times")
    if pipe.wavenet is not None:
        timed("WaveNet vocoder (compiled loop)",
              lambda: pipe.wavenet_vocode(mel, generator=generator(0)), 1, "goal > 1x")
    return rows


if __name__ == "__main__":
    from benchmarks import print_table

    print_table(run())
