"""The paper's experiments as functions: what the notebooks call, one per figure or table.

Each returns plain results (tensors, rows of numbers) that the notebook turns into a figure and a
table; nothing here writes files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import data, metrics
from .inversion import METHODS, Inversion, invert, pool
from .miniature import world


def default_portraits(profile: str, size: int) -> dict[str, torch.Tensor]:
    """The portraits the notebooks use without a ``data_dir``: name -> [1, 3, size, size].

    ``mini``: portrait-domain renders of the miniature world (:func:`redestyle.miniature.world.
    named_portraits`, whose answers are known); other profiles: :func:`redestyle.data.sample_portraits`.
    """
    if profile == "mini":
        return world.named_portraits(size=size)
    return data.sample_portraits(size)


@dataclass
class EncoderComparison:
    """Fig. 1: every method's inversion of every portrait, and a metric row per method."""

    names: list[str]  # portrait names, in row order
    portraits: torch.Tensor  # [N, 3, P, P]
    results: dict[str, Inversion]  # method -> inversion of the whole batch
    rows: list[dict]  # one per method: metrics (see compare_encoders)


def _mean_or_nan(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def compare_encoders(
    models,
    portraits: Mapping[str, torch.Tensor],
    *,
    methods: Sequence[str] = METHODS,
    n_iters: int = 5,
    n_steps: int = 1000,
    seed: int = 0,
    dlib_identity: bool = True,
) -> EncoderComparison:
    """Invert the portraits with every method and measure the reconstructions.

    portraits: name -> [1, 3, P, P] in [-1, 1] at the encoder resolution. Per method: ``mse`` and
    ``lpips`` against the input (LPIPS-VGG of ``models.lpips``), ``id_irse`` (IR-SE50 cosine
    similarity; NaN when its weights are absent), ``id_dlib`` (dlib face-recognition cosine
    similarity, averaged over the pairs where dlib finds both faces; ``dlib_found`` counts them)
    and ``sec_per_image`` (wall time of the batch / N).
    """
    names = list(portraits)
    x = torch.cat([portraits[n] for n in names])
    size = x.shape[-1]
    results, rows = {}, []
    for method in methods:
        gen = torch.Generator(device=x.device).manual_seed(seed)
        result = invert(method, x, models, n_iters=n_iters, n_steps=n_steps, generator=gen)
        results[method] = result
        recon = pool(result.image.detach(), size)
        row = {
            "method": method,
            "mse": F.mse_loss(recon, x, reduction="none").mean(dim=(1, 2, 3)).mean().item(),
            "lpips": models.lpips(recon, x).mean().item() if models.lpips is not None else float("nan"),
            "id_irse": float("nan"),
            "id_dlib": float("nan"),
            "dlib_found": 0,
            "sec_per_image": result.seconds / len(names),
        }
        if models.id_features is not None:
            with torch.no_grad():
                a, b = models.id_features(pool(x, 256)), models.id_features(pool(recon, 256))
            row["id_irse"] = (a * b).sum(dim=1).mean().item()
        if dlib_identity:
            sims, _failures = metrics.paired_identity_similarity(list(x), list(recon), names=names)
            row["id_dlib"] = _mean_or_nan(sims.tolist())
            row["dlib_found"] = int(np.sum(~np.isnan(sims)))
        rows.append(row)
    return EncoderComparison(names, x, results, rows)


def format_table(rows: Sequence[Mapping], columns: Sequence[str], *, digits: int = 4) -> str:
    """A fixed-width text table; floats rounded to ``digits`` decimals, NaN shown as 'n/a'."""

    def cell(v):
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(b, widths)))
              for b in body]
    return "\n".join(lines)
