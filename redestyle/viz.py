"""Figures: tensor <-> image conversion, labelled image grids, atomic figure saving."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] (or [1, 3, H, W]) in [-1, 1] -> uint8 [H, W, 3] (clamped, rounded)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    x = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(1, 2, 0).numpy()


def to_tensor(image, *, size: int | None = None) -> torch.Tensor:
    """PIL image or uint8 [H, W, 3] array -> [1, 3, H, W] float32 in [-1, 1], optionally resized.

    Resizing uses PIL bilinear on the whole image (ReStyle's ``Resize((256, 256))``).
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)
    return (x / 127.5 - 1).unsqueeze(0)


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
        fig.suptitle(title, fontsize=10)
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
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder / out
    return out


def save_figure(fig, out_dir: str | os.PathLike, name: str, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``resolve_out_dir(out_dir)/name`` atomically (temp file, then rename)."""
    out = resolve_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    from .checkpoints import atomic_write

    with atomic_write(path) as f:
        fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def save_text(text: str, out_dir: str | os.PathLike, name: str) -> Path:
    """Write a table (or any text) to ``resolve_out_dir(out_dir)/name`` atomically."""
    out = resolve_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    from .checkpoints import atomic_write

    with atomic_write(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path
