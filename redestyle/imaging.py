"""Images in, images out: the one input policy and the tensor <-> uint8 conversions (layer 1).

Every reader of image files (``align``, ``destylize``'s folder runner, ``transfer``, training
sets) goes through :func:`open_rgb` / :func:`load_image`, so one policy holds everywhere:

* suffixes :data:`IMAGE_SUFFIXES` (``.ppm`` and ``.webp`` included), case-insensitive;
* EXIF orientation applied;
* transparency (RGBA, LA, palette with a transparent colour) composited over white, never
  dropped (dropping it leaves whatever colour the transparent pixels hold, often black);
* greyscale, palette, CMYK and YCbCr converted to RGB; 16-bit and 32-bit integer samples
  scaled by 1/257 (PIL's own ``convert`` would clip them at 255), float images in [0, 1] by 255;
* a file that cannot be used raises :class:`ImageReadError` with one line ``<path>: <problem>``.

Faces for the encoders (:func:`load_image`) must also be FFHQ-aligned squares of at least
:data:`MIN_SIDE` px and at most :data:`MAX_PIXELS` pixels (checked on the header, before
decoding); a stretched or tiny crop would give a wrong code silently.

Tensors are [N, 3, H, W] float in [-1, 1]; uint8 images are [H, W, 3] numpy arrays.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE = 32
MAX_PIXELS = 8192 * 8192
ALIGN_HINT = "run `redestyle align` on the raw photos first"


class ImageReadError(ValueError):
    """An input file could not be used as an image; the one-line message names the file."""


# --------------------------------------------------------------------------------------------
# tensors


def pool(images: torch.Tensor, size: int) -> torch.Tensor:
    """Adaptive average pooling of [B, C, H, W] to [B, C, size, size] (ReStyle's ``face_pool``).

    The identity (the same tensor) when the images already have that size.
    """
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.adaptive_avg_pool2d(images, (size, size))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One image [3, H, W] (or [1, 3, H, W]) in [-1, 1] -> uint8 [H, W, 3] (clamped, rounded)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    return to_uint8_batch(image.detach().float().cpu()).permute(1, 2, 0).numpy()


def to_uint8_batch(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any shape, e.g. [B, 3, H, W]) -> uint8 tensor of the same shape and device.

    Clamped, then rounded to nearest: the compact form of an image set (training sets hold these).
    """
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_tensor(image, *, size: int | None = None) -> torch.Tensor:
    """PIL image, uint8 array [H, W, 3] or batch [N, H, W, 3] -> float32 [N, 3, H, W] in [-1, 1].

    ``size`` resizes to size x size with PIL bilinear on the whole image (ReStyle's
    ``Resize((256, 256))``); other uint8 arrays (grey [H, W], RGBA) go through PIL's RGB
    conversion. Arrays of another dtype are a ValueError (floats have no one scale to assume).
    """
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W, 3], [H, W, 3] or [H, W], got {image.dtype} {image.shape}")
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (3, 4) \
            and image.shape[-1] == 3 and (size is None or image.shape[-3:-1] == (size, size)):
        x = image[None] if image.ndim == 3 else image
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float()
        return t / 127.5 - 1
    if isinstance(image, np.ndarray):
        if image.ndim == 4:
            return torch.cat([to_tensor(im, size=size) for im in image])
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)
    return (x / 127.5 - 1).unsqueeze(0)


# --------------------------------------------------------------------------------------------
# the input policy


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, by :data:`IMAGE_SUFFIXES`), sorted by path.

    A missing folder is a FileNotFoundError naming it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p))


def is_image_name(path: str | os.PathLike) -> bool:
    """Whether ``path`` has one of the accepted image suffixes (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def to_rgb(im: Image.Image) -> Image.Image:
    """A PIL image of any mode -> 8-bit RGB PIL image (the module docstring's conversions)."""
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


def as_rgb_uint8(image: np.ndarray | Image.Image) -> np.ndarray:
    """``image`` as a contiguous RGB uint8 array [H, W, 3], by the input policy.

    Accepts a PIL image of any mode (:func:`to_rgb`), or an array [H, W] (grey), [H, W, 3] or
    [H, W, 4] (alpha composited over white) of uint8 values, or of floats in [0, 1].
    """
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image), dtype=np.uint8).copy()
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"image dtype {arr.dtype}: expected uint8, or floats in [0, 1]")
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image shape {arr.shape}: expected [H, W], [H, W, 3] or [H, W, 4]")
    if arr.shape[2] == 4:
        return np.asarray(to_rgb(Image.fromarray(arr, mode="RGBA")), dtype=np.uint8).copy()
    return np.ascontiguousarray(arr)


def _problem(err: Exception) -> str:
    """One line saying what is wrong with a file that PIL could not decode."""
    if isinstance(err, UnidentifiedImageError):
        return "not an image (the format cannot be identified)"
    if isinstance(err, PermissionError):
        return "cannot be read (permission denied)"
    text = " ".join(str(err).split())  # one line
    return f"not a readable image ({type(err).__name__}: {text})"


def check_face_size(width: int, height: int, *, min_side: int = MIN_SIDE) -> str | None:
    """The face policy's size checks: None when (width, height) is acceptable, else the problem."""
    if width * height > MAX_PIXELS:
        return (f"{width}x{height} px is larger than the {MAX_PIXELS} pixel limit (aligned faces are "
                f"at most 8192x8192); {ALIGN_HINT}")
    if width != height:
        return f"{width}x{height} px is not square: inputs must be aligned square faces; {ALIGN_HINT}"
    if width < min_side:
        return f"{width}x{height} px is smaller than the {min_side} px minimum; {ALIGN_HINT} at a larger size"
    return None


def open_rgb(path: str | os.PathLike, *, check=None) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image by the input policy (module docstring).

    ``check(width, height) -> problem | None`` runs on the header before decoding (e.g.
    :func:`check_face_size`). Any failure raises :class:`ImageReadError` "<path>: <problem>".
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                problem = check(*im.size) if check is not None else None  # header only
                if problem:
                    raise ImageReadError(f"{path}: {problem}")
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{path}: {_problem(err)}") from err


def load_image(path: str | os.PathLike, *, size: int, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Read one aligned face image as [1, 3, size, size] in [-1, 1].

    :func:`open_rgb` with :func:`check_face_size` (square, at least ``min_side`` px, at most
    :data:`MAX_PIXELS`), then resized (PIL bilinear) to ``size``.
    """
    rgb = open_rgb(path, check=lambda w, h: check_face_size(w, h, min_side=min_side))
    return to_tensor(rgb, size=size)
