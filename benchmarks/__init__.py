"""Speed measurements of every tab; ``python -m benchmarks.run`` prints them as one table."""
from __future__ import annotations

import contextlib
import socket
import time
from typing import Callable, Iterator, NamedTuple

import torch


class Row(NamedTuple):
    section: str
    measure: str
    value: str
    note: str
    threads: int      # torch's intra-op threads when the row was measured


def print_table(rows: list[Row]) -> None:
    print("| section | measure | value | note | threads |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.section} | {r.measure} | {r.value} | {r.note} | {r.threads} |")


def row(section: str, measure: str, value: str, note: str = "") -> Row:
    """A table row, stamped with the thread count it was measured with (make it right after
    the measurement, inside any :func:`threads` block)."""
    return Row(section, measure, value, note, torch.get_num_threads())


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block on ``n`` torch threads, then give the table back its own setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def best_of(fn: Callable[[], object], repeats: int = 5, warmup: bool = True) -> float:
    """The fastest of ``repeats`` timed calls, in seconds (after one untimed warm-up call)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
