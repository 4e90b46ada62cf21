"""Input images: folder listing and loading with per-file errors, and the bundled samples.

The bundled samples are what runs with ``data_dir=None``: skimage's astronaut photo, FFHQ-aligned
with dlib, plus three deterministic stylisations of it (flat colours, ink outlines, a warm
caricature palette). They are stand-ins for portraits that exist offline; real portraits (e.g.
DualStyleGAN's Cartoon set, aligned with ``redestyle align``) go through ``data_dir``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An input file could not be read as an image; the message names the file."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by path; a missing folder is an error."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: str | os.PathLike, *, size: int) -> torch.Tensor:
    """Read one RGB image as [1, 3, size, size] in [-1, 1]; errors name the file and the problem."""
    from PIL import Image, UnidentifiedImageError

    from .viz import to_tensor

    try:
        with Image.open(path) as im:
            im.load()
            return to_tensor(im, size=size)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageReadError(f"{path}: not a readable image ({err})") from err


@functools.cache
def _aligned_astronaut(size: int) -> np.ndarray:
    from skimage import data as skdata

    from .align import align_face

    return np.asarray(align_face(skdata.astronaut(), size=size, transform_size=size))


def _stylise(photo: np.ndarray, style: str) -> np.ndarray:
    """Deterministic portrait-like renderings of a photo (uint8 [H, W, 3] -> same)."""
    from PIL import Image, ImageFilter, ImageOps

    im = Image.fromarray(photo)
    if style == "flat":  # few flat colours, smoothed: a cel-shading look
        smooth = im.filter(ImageFilter.ModeFilter(size=max(3, photo.shape[0] // 64)))
        return np.asarray(smooth.quantize(colors=8, method=Image.Quantize.MEDIANCUT).convert("RGB"))
    if style == "ink":  # dark outlines over posterised colour
        edges = ImageOps.invert(im.convert("L").filter(ImageFilter.FIND_EDGES)).point(lambda v: 0 if v < 200 else 255)
        poster = ImageOps.posterize(im, 3)
        return np.asarray(Image.composite(poster, Image.new("RGB", im.size), edges.convert("L")))
    if style == "warm":  # a warm caricature palette, boosted contrast
        tinted = ImageOps.colorize(im.convert("L"), black=(40, 10, 30), white=(255, 230, 180), mid=(220, 120, 90))
        return np.asarray(ImageOps.autocontrast(tinted, cutoff=2))
    raise ValueError(f"unknown style {style!r}")


SAMPLE_STYLES = ("photo", "flat", "ink", "warm")


def sample_portraits(size: int = 256) -> dict[str, torch.Tensor]:
    """The bundled inputs: name -> [1, 3, size, size] in [-1, 1] (astronaut, aligned, stylised).

    ``photo`` is the aligned photo itself; the others are portrait stand-ins derived from it.
    """
    photo = _aligned_astronaut(max(size, 256))
    from .viz import to_tensor

    out = {}
    for style in SAMPLE_STYLES:
        img = photo if style == "photo" else _stylise(photo, style)
        out[f"astronaut_{style}"] = to_tensor(img, size=size)
    return out


def load_folder(folder: str | os.PathLike, *, size: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All images of a folder: (name -> [1, 3, size, size], name -> error for unreadable files)."""
    images, failures = {}, {}
    root = Path(folder)
    for path in list_images(root):
        name = str(path.relative_to(root))
        try:
            images[name] = load_image(path, size=size)
        except ImageReadError as err:
            failures[name] = str(err)
    return images, failures
