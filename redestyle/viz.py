"""Figures: labelled image grids, where figures go, atomic figure saving (conversions: ``imaging``)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch

from .fileio import atomic_write
from .imaging import to_uint8


def image_grid(
    rows: Sequence[Sequence[torch.Tensor | None]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 1.6,
):
    """A matplotlib figure of images [3, H, W] in [-1, 1]; ``None`` leaves a cell blank."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.4),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row) and row[j] is not None:
                ax.imshow(to_uint8(row[j]))
            if i == 0 and col_labels and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0 and row_labels and i < len(row_labels):
                ax.set_ylabel(row_labels[i], fontsize=8)
    if title:
        # wrapped to the figure's width (about 11 characters per inch at 10 pt), never clipped
        fig.suptitle(textwrap.fill(title, max(30, int(11 * cell_inches * n_cols))), fontsize=10)
    fig.tight_layout()
    return fig


def resolve_out_dir(out_dir: str | os.PathLike) -> Path:
    """Where a notebook's ``out_dir`` points.

    Absolute paths are kept. A relative one (the notebooks' default ``"figures"``) is taken
    relative to ``$REDESTYLE_FIGURES_DIR`` when set (the test suite sends nbval's figures to a
    scratch folder), else to the checkout's root (the folder above ``notebooks/`` holding
    ``pyproject.toml``), so a notebook run from ``notebooks/`` in JupyterLab still fills the
    top-level ``figures/``; else to the working directory.
    """
    out = Path(out_dir)
    if out.is_absolute():
        return out
    base = os.environ.get("REDESTYLE_FIGURES_DIR")
    if base:
        return Path(base) / out.relative_to("figures") if out.parts[:1] == ("figures",) else Path(base) / out
    root = checkout_root()
    return root / out if root is not None else out


def checkout_root() -> Path | None:
    """The checkout holding the working directory (the first folder up from it with
    ``pyproject.toml`` and ``notebooks/``), or None outside a checkout.

    Its ``figures/`` holds the committed results, whatever ``$REDESTYLE_FIGURES_DIR`` says: the
    records a notebook compares a fresh run with.
    """
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def save_figure(fig, out_dir: str | os.PathLike, name: str, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``resolve_out_dir(out_dir)/name`` atomically (temp file, then rename)."""
    out = resolve_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    with atomic_write(path) as f:
        fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def save_text(text: str, out_dir: str | os.PathLike, name: str) -> Path:
    """Write a table (or any text) to ``resolve_out_dir(out_dir)/name`` atomically."""
    out = resolve_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    with atomic_write(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path
