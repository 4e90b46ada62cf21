"""The bundled sample images, and loading a folder of faces with per-file errors.

The input policy itself (suffixes, EXIF, alpha, grey, 16-bit, CMYK, size checks) lives in
:mod:`redestyle.imaging`.

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
from PIL import Image, ImageFilter, ImageOps

from .align import align_face
from .imaging import ImageReadError, list_images, load_image, to_tensor


@functools.cache
def _aligned_astronaut(size: int) -> np.ndarray:
    from skimage import data as skdata  # ships a photo; imported only when the samples are built

    return np.asarray(align_face(skdata.astronaut(), size=size, transform_size=size))


def _stylise(photo: np.ndarray, style: str) -> np.ndarray:
    """Deterministic portrait-like renderings of a photo (uint8 [H, W, 3] -> same)."""
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
