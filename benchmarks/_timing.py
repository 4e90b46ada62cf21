"""Wall-clock timing shared by the benchmark scripts (CUDA work is waited for)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, *, repeats: int = 1, warmup: bool = False,
          reduce: Callable[[list[float]], float] = statistics.fmean) -> tuple[float, Any]:
    """(``reduce`` of the seconds of ``repeats`` calls of ``fn``, the last call's result).

    ``warmup``: one untimed call first (allocations, kernel selection).
    """
    out = fn() if warmup else None
    seconds = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        seconds.append(time.perf_counter() - start)
    return reduce(seconds), out


def alternating(fns: dict[str, Callable[[], Any]], device: torch.device, *, repeats: int = 3,
                warmup: bool = True) -> dict[str, tuple[list[float], Any]]:
    """Time several callables in alternation: {name: (seconds of each of ``repeats`` rounds, last result)}.

    One round calls every function once, in order; alternating spreads the load of other processes
    sharing the machine over all of them (report the min, the least disturbed run, and the median).
    ``warmup``: one untimed call of each first.
    """
    out: dict[str, tuple[list[float], Any]] = {}
    if warmup:
        for name, fn in fns.items():
            out[name] = ([], fn())
    for _ in range(repeats):
        for name, fn in fns.items():
            sec, result = timed(fn, device)
            out[name] = (out.get(name, ([], None))[0] + [sec], result)
    return out
