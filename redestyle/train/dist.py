"""Data-parallel helpers for ``torchrun`` (reference/dualstylegan.md §6).

The official scripts read ``--local_rank`` and use NCCL; ``torchrun`` sets ``LOCAL_RANK``,
``RANK`` and ``WORLD_SIZE`` instead, which is what :func:`init_from_env` reads. Backend: NCCL on
CUDA, gloo on CPU. Gradients are averaged explicitly (:func:`average_gradients`, what
DistributedDataParallel does after each backward) because the lazy regularisers take
double-backward paths (R1, path length) that DDP's hooks handle poorly; rank 0 logs and saves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: str | torch.device = "auto") -> torch.device:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); return this rank's device.

    ``device="auto"``: cuda:LOCAL_RANK when CUDA is available, else CPU (gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local)
    if world > 1 and not is_distributed():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return device


def shutdown() -> None:
    """Leave the process group (no-op when not distributed)."""
    if is_distributed():
        dist.destroy_process_group()


def broadcast_parameters(modules: Iterable[torch.nn.Module], src: int = 0) -> None:
    """Copy every parameter and buffer of ``modules`` from rank ``src`` (start in sync)."""
    if not is_distributed():
        return
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce the .grad of ``params`` and divide by the world size (one flat buffer)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def reduce_mean(values: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
    """Average scalar losses over ranks, for logging only (the official ``reduce_loss_dict``)."""
    if not values:
        return {}
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if is_distributed():
        if dist.get_backend() == "nccl":
            t = t.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(t)
        t /= world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}
