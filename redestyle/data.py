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


#: Input policy (``load_image``; ``redestyle destylize --help`` and ``jobs`` repeat it).
#: Inputs are FFHQ-aligned square faces. Any readable image convertible to RGB is accepted
#: (greyscale, palette, CMYK, 16-bit, with alpha) and resized to the network size; images
#: that are not square, or whose side is below MIN_SIDE px, are rejected with a message
#: telling to run ``redestyle align`` (a stretched or tiny crop would give a wrong code
#: silently); images above MAX_PIXELS are rejected before decoding (memory).
MIN_SIDE = 32
MAX_PIXELS = 8192 * 8192
ALIGN_HINT = "run `redestyle align` on the raw photos first"


class ImageReadError(ValueError):
    """An input file could not be used as a face image; the one-line message names the file."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by path; a missing folder is an error."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_rgb(im):
    """A PIL image of any mode -> 8-bit RGB PIL image.

    16-bit and 32-bit integer greyscale (``I;16``, ``I``) are scaled by 1/257 (PIL's own
    ``convert`` would clip them at 255); float images in [0, 1] are scaled by 255; transparency
    (RGBA, LA, palette with a transparent colour) is composited over white, not dropped
    (dropping it leaves whatever colour the transparent pixels happen to hold, often black);
    CMYK, YCbCr, palette and greyscale go through PIL's conversion.
    """
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            scale = 255.0 if arr.max(initial=0) <= 1 else 1.0
        else:  # 16-bit samples (PNG, TIFF): 65535 -> 255
            scale = 1 / 257
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA", "RGBa", "La", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _problem(path: Path, err: Exception) -> str:
    """One line saying what is wrong with a file that PIL could not decode."""
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        return "not an image (the format cannot be identified)"
    if isinstance(err, PermissionError):
        return "cannot be read (permission denied)"
    text = " ".join(str(err).split())  # one line
    return f"not a readable image ({type(err).__name__}: {text})"


def check_face_size(width: int, height: int, *, min_side: int = MIN_SIDE) -> str | None:
    """The input policy's size checks: None when (width, height) is acceptable, else the problem."""
    if width * height > MAX_PIXELS:
        return (f"{width}x{height} px is larger than the {MAX_PIXELS} pixel limit (aligned faces are "
                f"at most 8192x8192); {ALIGN_HINT}")
    if width != height:
        return f"{width}x{height} px is not square: inputs must be aligned square faces; {ALIGN_HINT}"
    if width < min_side:
        return f"{width}x{height} px is smaller than the {min_side} px minimum; {ALIGN_HINT} at a larger size"
    return None


def load_image(path: str | os.PathLike, *, size: int, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Read one face image as [1, 3, size, size] in [-1, 1] (the input policy above).

    Any RGB-convertible image (:func:`to_rgb`; EXIF orientation applied) that is square, at
    least ``min_side`` px and at most ``MAX_PIXELS`` is resized (bilinear) to ``size``.
    Anything else raises :class:`ImageReadError` with one line "<path>: <problem>".
    """
    import warnings

    from PIL import Image, ImageOps

    from .viz import to_tensor

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                problem = check_face_size(*im.size, min_side=min_side)  # header only: no decoding yet
                if problem:
                    raise ImageReadError(f"{path}: {problem}")
                im.load()
                rgb = to_rgb(ImageOps.exif_transpose(im))
        return to_tensor(rgb, size=size)
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{path}: {_problem(path, err)}") from err


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


def default_portraits(profile: str, size: int) -> dict[str, torch.Tensor]:
    """The portraits the notebooks use without a ``data_dir``: name -> [1, 3, size, size].

    ``mini``: portrait-domain renders of the miniature world (:func:`redestyle.miniature.world.
    named_portraits`, whose answers are known); other profiles: :func:`sample_portraits`.
    """
    if profile == "mini":
        from .miniature.world import named_portraits

        return named_portraits(size=size)
    return sample_portraits(size)


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
