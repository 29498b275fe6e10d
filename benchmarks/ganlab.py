"""GAN lab: rounds per second of the default game (on the tab's one-core workers, and on the
default threads beside another busy request), pictures per second while playing, and how long
another tab's request takes while games play. Goals: several pictures a second, and the rest of
the studio about as quick with games playing as without."""
from __future__ import annotations

import contextlib
import statistics
import threading
import time

import torch

from benchmarks import Row, best_of, row
from models.ganlab import ToyConfig, ToyGAN
from models.runtime import fast_bf16, single_threaded

ROUNDS = 300


@contextlib.contextmanager
def busy_neighbour():
    """Another request working meanwhile: a thread of 2-thread matrix products."""
    stop = threading.Event()

    def work():
        a = torch.randn(512, 512)
        while not stop.is_set():
            a @ a

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def rounds_per_second(step) -> float:
    return ROUNDS / best_of(lambda: step(ROUNDS), repeats=3)


def play_rate(seconds: float = 6.0) -> tuple[float, float]:
    """Pictures and rounds per second of the tab's Play loop (speed: as fast as it goes)."""
    from tabs import ganlab

    lab, frames, start = None, 0, time.monotonic()
    for *_, lab in ganlab.play(None, "as fast as it goes", *[getattr(ToyConfig(), k) for k in ganlab.SETTINGS],
                               ganlab.LAYERS):
        frames += 1
        if time.monotonic() - start > seconds:
            lab.paused = True
    spent = time.monotonic() - start
    return frames / spent, lab.game.steps / spent


def latency(client, repeats: int = 8) -> float:
    """Median seconds of a 30x30 latent grid from the Latent grid tab."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        client.predict("MNIST digits", 30, 0.0, 0.0, 6.0, "linear", api_name="/latent_grid")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def responsiveness() -> list[Row]:
    import app
    from gradio_client import Client

    from benchmarks import free_port
    from tabs import ganlab

    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        visitor = Client(url, verbose=False)
        latency(visitor, 2)                                    # the model loads
        alone = latency(visitor)
        players = [Client(url, verbose=False) for _ in range(ganlab.MAX_RUNS)]
        knobs = [getattr(ToyConfig(), k) for k in ganlab.SETTINGS]
        jobs = [c.submit("as fast as it goes", *knobs, ganlab.LAYERS, api_name="/ganlab_play")
                for c in players]
        time.sleep(3)
        busy = latency(visitor)
        for c in players:
            c.predict(ganlab.LAYERS, api_name="/ganlab_pause")
        for job in jobs:
            job.cancel()
        time.sleep(1)
        digit_jobs = [c.submit("mnist", "mlp", 2e-4, 2e-4, 0, api_name="/ganlab_digits_play")
                      for c in players]
        time.sleep(3)
        busy_digits = latency(visitor)
        for c in players:
            c.predict(api_name="/ganlab_digits_pause")
        for job in digit_jobs:
            job.cancel()
    finally:
        app.demo.close()
    return [row("ganlab", f"another tab's request (30x30 latent grid) while {ganlab.MAX_RUNS} games play",
                f"{busy * 1000:.0f} ms", f"alone: {alone * 1000:.0f} ms (median of 8); "
                f"{ganlab.MAX_RUNS} games at most play at once, the rest wait in line"),
            row("ganlab", f"the same while {ganlab.MAX_RUNS} digit GANs train",
                f"{busy_digits * 1000:.0f} ms", "MNIST, simple GAN, live defaults")]


def digits_rows() -> list[Row]:
    """The digits page: rounds per second of both GANs on a one-core worker, seconds until the
    classifier is sure of half the samples (the live default: simple GAN, MNIST), and grids per
    second while playing."""
    from models.digitgan import DigitGAN, DigitGANConfig
    from models.digits import classifier_available, emerged, load_classifier, quality
    from tabs import ganlab_digits

    images = ganlab_digits.training_images("mnist")
    if images is None or not classifier_available("mnist"):
        return [row("ganlab", "digits", "skipped", "no MNIST on this machine (make digits) or no classifier")]
    worker, rows, bf16 = single_threaded(1), [], fast_bf16("cpu")
    for kind in ("mlp", "dcgan"):
        game = DigitGAN(DigitGANConfig(kind=kind), images, bf16=bf16)
        rate = 100 / best_of(lambda: worker.submit(game.step, 100).result(), repeats=2)
        rows.append(row("ganlab", f"digits, {kind}: rounds per second (batch 64, one-core worker)",
                        f"{rate:,.0f}/s", "bf16 autocast" if bf16 else "fp32 (no native bf16 here)"))
    clf = load_classifier("mnist")
    for kind in ("mlp", "dcgan"):
        game, start, found = DigitGAN(DigitGANConfig(kind=kind), images, bf16=bf16), time.monotonic(), None
        while found is None and game.seconds < 300:
            worker.submit(game.step, 100).result()
            q = worker.submit(quality, clf, game.sample(1000, torch.Generator().manual_seed(1234))).result()
            if emerged(q.recognisable, q.classes_covered):
                found = (game.steps, game.seconds, time.monotonic() - start, q)
        rows.append(row("ganlab", f"digits, {kind}: seconds until digits emerge (half the samples "
                        "recognisable, 9+ classes; one-core worker, live defaults)",
                        "not within 300 s" if found is None else f"{found[1]:.0f} s",
                        "" if found is None else f"round {found[0]:,}; {found[2]:.0f} s with the "
                        f"measurements every 100 rounds; then {found[3].summary()}"))
    run, frames, start = None, 0, time.monotonic()
    for *_, run in ganlab_digits.play(None, "mnist", "mlp", 2e-4, 2e-4, 0):
        frames += 1
        if time.monotonic() - start > 10:
            run.paused = True
    spent = time.monotonic() - start
    rows.append(row("ganlab", "digits Play: grids per second", f"{frames / spent:.1f}/s",
                    f"{run.game.steps / spent:,.0f} rounds/s with the measures every "
                    f"{ganlab_digits.QUALITY_SECONDS:g} s"))
    return rows


def run() -> list[Row]:
    game = ToyGAN(ToyConfig())
    worker = single_threaded(1)
    on_worker = rounds_per_second(lambda n: worker.submit(game.step, n).result())
    direct = rounds_per_second(game.step)
    with busy_neighbour():
        worker_busy = rounds_per_second(lambda n: worker.submit(game.step, n).result())
        direct_busy = rounds_per_second(game.step)
    draw = best_of(lambda: (game.field(480), game.curves(480, 200)))
    frames, rounds = play_rate()
    rows = [
        row("ganlab", "default game (ring, 2x128 MLPs, batch 256): rounds per second, one-core worker",
            f"{on_worker:,.0f}/s", f"beside another busy request: {worker_busy:,.0f}/s"),
        row("ganlab", "the same on the default threads", f"{direct:,.0f}/s",
            f"beside another busy request: {direct_busy:,.0f}/s (why the tab uses one-core workers)"),
        row("ganlab", "one picture (plane 480x480 + curves)", f"{draw * 1000:.0f} ms", ""),
        row("ganlab", "Play: pictures per second", f"{frames:.1f}/s",
            f"{rounds:,.0f} rounds/s; goal: several pictures a second"),
    ]
    return rows + digits_rows() + responsiveness()
