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
