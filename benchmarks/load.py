"""A classroom at once: the app in its own process on loopback, N simulated visitors per endpoint
calling it with the endpoint's default arguments (the values the page shows) for a fixed time.

    python -m benchmarks.load                          # the table's rows (1, 8, 32 visitors)
    python -m benchmarks.load --visitors 32 --seconds 60 text_generate faces_pick

Each visitor submits, reads the stream to its end, and submits again until the time is up (a
request in flight is waited for, up to ``--grace`` seconds). Per endpoint and visitor count:
p50/p95 seconds to the first output and to completion, completed requests, errors, and the
server's peak resident memory over the whole run. Bounded: at most ``--max-requests`` per
visitor.

The visitors stand in for browsers on their own machines: each speaks the queue protocol as the
page does (one session, one kept-alive connection: ``Browser``), they run in up to eight client
processes (not one GIL for all) at ``--visitor-nice`` below the app, and read outputs' URLs
without downloading them (the app still writes and serves them). ``--client gradio`` uses
``gradio_client`` instead, which costs about 75 ms of CPU per request on this machine (a new
connection and TLS context each time); at 32 visitors that bounded the light events' closed loop,
not the app.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import Row, free_port, print_table, row

ROOT = Path(__file__).resolve().parents[1]
# the streams a classroom is told to press, and light events that must stay light under them
ENDPOINTS = ["text_generate", "text_compare", "wavenet_generate", "faces_pick", "latent_grid"]
# arguments the client cannot leave out (an empty upload has no default); the rest are the UI's
REQUIRED = {"wavenet_generate": {"upload": None, "clip": None}}


@dataclass
class Result:
    first: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0            # seconds from the first submit to the last answer
    server_cpu: float = 0.0      # CPU seconds the app used meanwhile
    client_cpu: float = 0.0      # CPU seconds the simulated visitors used (same machine)


def start_app(port: int) -> subprocess.Popen:
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import urllib.request
    end = time.monotonic() + 180
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the app exited: " + proc.stderr.read()[-2000:])
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start in 180 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class GradioClient:
    """One visitor through ``gradio_client`` (``--client gradio``), downloading nothing."""

    def __init__(self, url: str, endpoint: str):
        from gradio_client import Client

        self.client, self.endpoint = Client(url, verbose=False, download_files=False), endpoint

    def request(self) -> tuple[float | None, float]:
        t0, first = time.monotonic(), None
        job = self.client.submit(**REQUIRED.get(self.endpoint, {}), api_name=f"/{self.endpoint}")
        for _ in job:
            if first is None:
                first = time.monotonic() - t0
        job.result()
        return first, time.monotonic() - t0


class Browser:
    """One visitor speaking the queue protocol as the web page does: a join (POST) with the
    inputs' values as the page shows them, then the event stream (GET), over one kept-alive
    connection and one session."""

    def __init__(self, url: str, endpoint: str):
        import httpx

        config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
        dep = next(d for d in config["dependencies"] if d.get("api_name") == endpoint)
        props = {c["id"]: c.get("props", {}) for c in config["components"]}
        self.payload = {"data": [props[i].get("value") for i in dep["inputs"]],
                        "fn_index": dep["id"], "trigger_id": (dep.get("targets") or [[None]])[0][0],
                        "event_data": None}
        prefix = config.get("api_prefix", "/gradio_api").strip("/")
        self.http = httpx.Client(base_url=f"{url.rstrip('/')}/{prefix}/", timeout=None)
        self.session = uuid.uuid4().hex           # one page, one session, as a browser tab
        self.output = None                        # the last completed event's output values

    def request(self) -> tuple[float | None, float]:
        """Seconds to the first output (None if only the end came) and to the end."""
        t0, first = time.monotonic(), None
        joined = self.http.post("queue/join", json={**self.payload, "session_hash": self.session})
        joined.raise_for_status()
        event = joined.json()["event_id"]
        with self.http.stream("GET", "queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind = msg.get("msg") if msg.get("event_id") == event else None
                if kind == "process_generating" and first is None:
                    first = time.monotonic() - t0
                elif kind == "process_completed":
                    if not msg.get("success", False):
                        raise RuntimeError(str(msg.get("output", {}).get("error"))[:200])
                    self.output = msg["output"].get("data")
                    return first, time.monotonic() - t0
        raise RuntimeError("the stream ended before the event completed")


def visitor(url: str, endpoint: str, until: float, max_requests: int, out: Result,
            lock: threading.Lock, client: str = "browser") -> None:
    """Ask, read the answer to its end, ask again, until the time is up."""
    try:
        who = (Browser if client == "browser" else GradioClient)(url, endpoint)
    except Exception as exc:                  # noqa: BLE001 - counted, not raised
        with lock:
            out.errors.append(f"connect: {exc}")
        return
    for _ in range(max_requests):
        if time.monotonic() >= until:
            return
        try:
            first, total = who.request()
        except Exception as exc:              # noqa: BLE001 - counted, not raised
            with lock:
                out.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        with lock:
            out.first.append(total if first is None else first)
            out.done.append(total)


def visitors_in_one_process(url: str, endpoint: str, visitors: int, until: float, grace: float,
                            max_requests: int, client: str = "browser") -> Result:
    """``visitors`` threads of one client process (its own GIL, as a browser has its own
    machine); their CPU seconds go in ``client_cpu``."""
    result, lock = Result(), threading.Lock()
    cpu = time.process_time()
    threads = [threading.Thread(target=visitor, daemon=True,
                                args=(url, endpoint, until, max_requests, result, lock, client))
               for _ in range(visitors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, until + grace - time.monotonic()))
    with lock:
        unfinished = sum(t.is_alive() for t in threads)
        if unfinished:
            result.errors.append(f"{unfinished} request(s) still running {grace:.0f} s after the end")
    result.client_cpu = time.process_time() - cpu
    return result


def load(url: str, endpoint: str, visitors: int, seconds: float, grace: float,
         max_requests: int, processes: int = 8, client: str = "browser") -> Result:
    """The visitors spread over up to ``processes`` client processes: 32 threads in one Python
    process spent most of the run waiting for each other's GIL, and the light events measured
    the client, not the app."""
    until = time.monotonic() + seconds          # CLOCK_MONOTONIC: the same in every process
    groups = [len(part) for part in np.array_split(np.arange(visitors), min(processes, visitors))]
    with multiprocessing.get_context("fork").Pool(len(groups)) as pool:
        parts = pool.starmap(visitors_in_one_process,
                             [(url, endpoint, k, until, grace, max_requests, client) for k in groups])
    result = Result()
    for part in parts:
        result.first += part.first
        result.done += part.done
        result.errors += part.errors
        result.client_cpu += part.client_cpu
    return result


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.1f}" if values else "-"


def measure(endpoints: list[str], counts: list[int], seconds: float, grace: float,
            max_requests: int, visitor_nice: int = 0, client: str = "browser"
            ) -> tuple[list[tuple], float]:
    port = free_port()
    proc = start_app(port)
    if visitor_nice:
        # the visitors below the app: in a classroom they run on their own machines, and here
        # their clients (downloading every output) would otherwise take most of the two cores
        os.nice(visitor_nice)
    url = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        for endpoint in endpoints:
            load(url, endpoint, 1, 600, 600, 1, client=client)   # warm: one request, untimed
            for n in counts:
                t, server = time.monotonic(), cpu_seconds(proc.pid)
                r = load(url, endpoint, n, seconds, grace, max_requests, client=client)
                r.wall = time.monotonic() - t
                r.server_cpu = cpu_seconds(proc.pid) - server
                rows.append((endpoint, n, r))
                print(f"{endpoint} x{n}: first p50 {pct(r.first, 50)} p95 {pct(r.first, 95)}, "
                      f"done p50 {pct(r.done, 50)} p95 {pct(r.done, 95)} s, {len(r.done)} done, "
                      f"{len(r.errors)} errors {r.errors[:2]}; wall {r.wall:.0f} s, CPU s: server "
                      f"{r.server_cpu:.0f}, visitors {r.client_cpu:.0f}", file=sys.stderr, flush=True)
        return rows, peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(endpoints: list[str] | None = None, counts=(1, 8, 32), seconds: float = 60,
        grace: float = 240, max_requests: int = 50, visitor_nice: int = 10,
        client: str = "browser") -> list[Row]:
    results, peak = measure(endpoints or ENDPOINTS, list(counts), seconds, grace, max_requests,
                            visitor_nice, client)
    out = []
    place = f", visitors at nice {visitor_nice}" if visitor_nice else ""
    place += ", gradio_client" if client == "gradio" else ""
    for endpoint, n, r in results:
        out.append(row("load", f"{endpoint}, {n} visitor(s){place}: first output p50 / p95",
                       f"{pct(r.first, 50)} / {pct(r.first, 95)} s",
                       f"completion p50 {pct(r.done, 50)} s, p95 {pct(r.done, 95)} s; "
                       f"{len(r.done)} requests in {r.wall:.0f} s; {len(r.errors)} errors; "
                       f"CPU s: app {r.server_cpu:.0f}, visitors {r.client_cpu:.0f}"))
    out.append(row("load", "server peak resident memory", f"{peak:.0f} MB", "over the whole run"))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoints", nargs="*", default=ENDPOINTS)
    parser.add_argument("--visitors", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--grace", type=float, default=240)
    parser.add_argument("--max-requests", type=int, default=50)
    parser.add_argument("--visitor-nice", type=int, default=10,
                        help="scheduling priority of the simulated visitors below the app's "
                             "(0: the same, as the figures before issue 31's second part)")
    parser.add_argument("--client", choices=["browser", "gradio"], default="browser",
                        help="visitors speak the queue protocol as the page does over one "
                             "connection (browser), or through gradio_client (gradio)")
    args = parser.parse_args(argv)
    rows = run(args.endpoints, args.visitors, args.seconds, args.grace, args.max_requests,
               args.visitor_nice, args.client)
    from benchmarks.run import cpu_name
    print(f"\n{cpu_name()}, {os.cpu_count()} cores; the app and the visitors share them\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
