"""The one training loop and resume protocol: DualStyleGAN (``train.trainer``) and the miniature stages.

A trainer is anything :class:`Resumable`: ``step`` (iterations done), ``train_step()`` (runs
iteration ``step``, advances it, returns that iteration's losses), ``checkpoint()`` (a dict holding
everything an exact resume needs: weights, optimizer moments, random streams, step, history) and
``load(payload)`` (the inverse). :func:`train_loop` runs a trainer to an end step and hands every
iteration's losses to callbacks in order: logging, TensorBoard, progress bars and saving are
callbacks, so each trainer keeps its own file formats (the official DualStyleGAN container; the
miniature stages' ``<stage>-state.pt`` and committed carry) while the loop, and where a save sits
in an iteration, are one.

Saving through a callback never consumes a random number, so a run saved at step k and resumed
there continues exactly as the uninterrupted run (where ``checkpoint`` holds every stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class Resumable(Protocol):
    """What :func:`train_loop` drives (``train.trainer.Trainer``, ``miniature.train.StageRun``)."""

    step: int

    def train_step(self) -> dict[str, float]: ...

    def checkpoint(self) -> dict: ...

    def load(self, payload: dict) -> None: ...


#: ``callback(done, losses)``: called after every iteration with the iterations completed and
#: that iteration's losses.
Callback = Callable[[int, dict[str, float]], None]


def train_loop(trainer: Resumable, end: int, callbacks: Sequence[Callback] = (), *,
               reduce: Callable[[dict[str, float]], dict[str, float]] | None = None) -> list[dict[str, float]]:
    """Run ``trainer`` from its ``step`` to ``end``; after each iteration call ``callbacks`` in order.

    reduce: applied to each iteration's losses first (data-parallel runs: the mean over ranks).
    Returns the losses of every iteration run (after ``reduce``).
    """
    logged = []
    while trainer.step < end:
        losses = trainer.train_step()
        if reduce is not None:
            losses = reduce(losses)
        logged.append(losses)
        for callback in callbacks:
            callback(trainer.step, losses)
    return logged
