"""Speed measurements of every tab; ``python -m benchmarks.run`` prints them as one table."""
from __future__ import annotations

import time
from typing import Callable


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
