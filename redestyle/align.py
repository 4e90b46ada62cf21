"""FFHQ face alignment with dlib's 68 landmarks.

The geometry is the one of NVlabs ffhq-dataset ``recreate_aligned_images``, which pSp, e4e,
ReStyle, HyperStyle and DualStyleGAN (``model/encoder/align_all_parallel.py``) all adapt: an
oriented square is built from the eye and mouth landmarks, the photo is shrunk, cropped and
(reflect-)padded with a blurred border, and the square is mapped onto the output with a QUAD
transform. Every step and constant is listed in ``shared/reference/alignment.md`` section 2.

Differences from the official scripts, all about robustness, none about geometry:
- several faces: the largest detection is used (the official loop keeps the *last* one);
- no face: :class:`NoFaceError` naming the file (the official scripts crash on an undefined name);
- inputs are read by the package's one input policy (``redestyle.imaging``): EXIF orientation
  applied before detection (phone photos would otherwise lie on their side), alpha composited
  over white, ``.ppm`` and 16-bit files accepted;
- the folder runner reports every bad file, writes atomically and resumes, and locks its output
  folder for the run;
- ``upsample`` (``--upsample``) is exposed: faces that dlib finds only on an upsampled image
  (small or soft ones) can be recovered, and the no-face line names the option.

Inputs that are already FFHQ-aligned (DualStyleGAN's style sets, ``destylize`` inputs) should not
be aligned again: the landmarks of the re-detected face differ from the ones the image was made
with, so a second alignment moves the face by 5-11 px at 1024 (a slight shift and zoom). Give
such images to ``redestyle destylize`` directly.

dlib models are loaded on first use (never at import) from the ``face-recognition-models``
package, whose files are the ones the official scripts download from dlib.net.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .fileio import REPORT, atomic_write, folder_job
from .imaging import as_rgb_uint8, is_image_name, open_rgb

log = logging.getLogger(__name__)

__all__ = [
    "NoFaceError",
    "align_face",
    "align_folder",
    "cli_align",
    "detect_face",
    "detect_landmarks",
    "dlib_model_path",
    "face_quad",
]

# iBUG-68 index groups (alignment.md section 1).
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


class NoFaceError(ValueError):
    """dlib found no face in an image; ``source`` names the file (or 'image')."""

    def __init__(self, source: str = "image", detail: str = "", *, upsample: int = 1) -> None:
        self.source = source
        # dlib finds small or blurred faces only on an upsampled image: name the option that helps
        msg = (f"{source}: no face found (dlib HOG detector, upsample {upsample}; "
               f"try --upsample {upsample + 1})")
        super().__init__(f"{msg}; {detail}" if detail else msg)


# --------------------------------------------------------------------------------------------
# dlib models (lazy)


def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped by the ``face-recognition-models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{filename}: the pip package 'face-recognition-models' is not installed "
            "(it ships dlib's landmark and face-recognition models; pip install face-recognition-models)"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the face-recognition-models package")
    return path


@functools.cache
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.cache
def _predictor68():
    import dlib

    return dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))


# --------------------------------------------------------------------------------------------
# landmarks


def _pick_face(areas: Sequence[float], scores: Sequence[float]) -> int:
    """Index of the largest face: the best-scoring box among those at least half the area of
    the largest one. HOG boxes come in a few pyramid sizes, so a false positive as large as the
    face is common (skimage's astronaut: a 90 px box on the flag patch, score 0.12 vs 1.16);
    the score separates those, while a face twice the area of another always wins."""
    largest = max(areas)
    candidates = [i for i, a in enumerate(areas) if a >= 0.5 * largest]
    return max(candidates, key=lambda i: (scores[i], areas[i]))


def detect_face(
    image: np.ndarray | Image.Image, *, source: str = "image", upsample: int = 1
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Find the largest face with dlib's HOG detector (the one the official scripts use).

    Args:
        image: RGB image, array [H, W, 3] uint8 or PIL image (see :func:`as_rgb_uint8`).
        source: name used in error messages (a file name).
        upsample: dlib detector upsampling; 1 as in the official scripts.

    Returns:
        rgb: the image as a contiguous uint8 array [H, W, 3] (what dlib saw).
        box: the chosen ``dlib.rectangle``: the largest box (boxes within a factor 2 of its area
        are ranked by detector score), unlike the official scripts, which keep the last one.
        info: ``{"n_faces": int, "box": (left, top, right, bottom), "score": float}``.

    Raises:
        NoFaceError: no detection.
    """
    rgb = as_rgb_uint8(image)
    boxes, scores, _ = _detector().run(rgb, upsample, 0.0)
    if len(boxes) == 0:
        raise NoFaceError(source, upsample=upsample)
    best = _pick_face([b.width() * b.height() for b in boxes], scores)
    box = boxes[best]
    info = {
        "n_faces": len(boxes),
        "box": (box.left(), box.top(), box.right(), box.bottom()),
        "score": float(scores[best]),
    }
    return rgb, box, info


def detect_landmarks(
    image: np.ndarray | Image.Image, *, source: str = "image", upsample: int = 1
) -> tuple[np.ndarray, dict[str, Any]]:
    """The 68 iBUG landmarks of the largest face (see :func:`detect_face` for the choice).

    Args:
        image: RGB image, array [H, W, 3] uint8 or PIL image.
        source: name used in error messages (a file name).
        upsample: dlib detector upsampling; 1 as in the official scripts.

    Returns:
        landmarks: float64 [68, 2] (x = column, y = row, pixels).
        info: ``{"n_faces", "box", "score"}`` of the chosen face (see :func:`detect_face`).

    Raises:
        NoFaceError: no detection.
    """
    rgb, box, info = detect_face(image, source=source, upsample=upsample)
    shape = _predictor68()(rgb, box)
    landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return landmarks, info


# --------------------------------------------------------------------------------------------
# geometry


def _rot90(v: np.ndarray) -> np.ndarray:
    """(a, b) -> (-b, a): the official code's ``flipud(v) * [-1, 1]``."""
    return np.array([-v[1], v[0]])


def face_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented FFHQ crop square of a face (alignment.md section 2, steps 1-3).

    Args:
        landmarks: [68, 2] iBUG landmarks (x, y) in pixels.

    Returns:
        quad: float64 [4, 2], corners in the order top-left, bottom-left, bottom-right,
        top-right of the aligned output (the order PIL's QUAD transform expects).
        qsize: side length of the square in pixels.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks shape {lm.shape}: expected (68, 2)")
    eye_left = lm[LEFT_EYE].mean(axis=0)
    eye_right = lm[RIGHT_EYE].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # x: the square's horizontal half-axis, a blend of the eye line and the face's vertical
    # axis, scaled to whichever is larger: 2x eye distance or 1.8x eye-mouth distance.
    x = eye_to_eye - _rot90(eye_to_mouth)
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = _rot90(x)
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2.0)


def _pad_and_blur(img: Image.Image, pad: np.ndarray, qsize: float) -> Image.Image:
    """Reflect-pad, then fade the padding into a blurred copy and the median colour (step 7)."""
    from scipy.ndimage import gaussian_filter

    left, top, right, bottom = (int(p) for p in pad)
    arr = np.pad(np.float32(img), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = arr.shape
    yy, xx, _ = np.ogrid[:h, :w, :1]
    # ~1 inside the padded band, <= 0 in the original image.
    mask = np.maximum(
        1.0 - np.minimum(np.float32(xx) / left, np.float32(w - 1 - xx) / right),
        1.0 - np.minimum(np.float32(yy) / top, np.float32(h - 1 - yy) / bottom),
    )
    blur = qsize * 0.02
    arr += (gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")


def align_face(
    image: np.ndarray | Image.Image,
    *,
    size: int = 1024,
    transform_size: int | None = None,
    landmarks: np.ndarray | None = None,
    source: str = "image",
) -> Image.Image:
    """FFHQ-align the (largest) face of an image.

    Args:
        image: RGB image, array [H, W, 3] uint8 or PIL image.
        size: output side in pixels (``output_size``).
        transform_size: side of the QUAD transform before the final LANCZOS resize. Default
            ``4 * size``, the supersampling of NVlabs ffhq-dataset (1024 / 4096); pass ``size``
            for the pSp / DualStyleGAN encoder scripts (256 / 256) or HyperStyle (1024 / 1024).
        landmarks: [68, 2] landmarks to use instead of detecting them.
        source: name used in error messages.

    Returns:
        RGB PIL image of ``size`` x ``size``.

    Raises:
        NoFaceError: no face detected (only when ``landmarks`` is None).
    """
    if transform_size is None:
        transform_size = 4 * size
    img = Image.fromarray(as_rgb_uint8(image))
    if landmarks is None:
        landmarks, _ = detect_landmarks(np.asarray(img), source=source)
    quad, qsize = face_quad(landmarks)

    # Shrink large photos first so the QUAD sampling does not alias (step 5).
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink)))
        img = img.resize(rsize, Image.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop to the square plus a border (step 6).
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    crop = (
        max(lo[0] - border, 0),
        max(lo[1] - border, 0),
        min(hi[0] + border, img.size[0]),
        min(hi[1] + border, img.size[1]),
    )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad where the square leaves the photo (step 7); recomputed on the cropped image.
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = np.array(
        [
            max(-lo[0] + border, 0),
            max(-lo[1] + border, 0),
            max(hi[0] - img.size[0] + border, 0),
            max(hi[1] - img.size[1] + border, 0),
        ]
    )
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        img = _pad_and_blur(img, pad, qsize)
        quad += pad[:2]

    # Map the oriented square onto the output square (steps 8-9).
    img = img.transform(
        (transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR
    )
    if size < transform_size:
        img = img.resize((size, size), Image.LANCZOS)
    return img


# --------------------------------------------------------------------------------------------
# folder runner


def _list_inputs(in_dir: Path, out_dir: Path) -> list[Path]:
    """Every file under ``in_dir`` (recursive, sorted), skipping hidden files and ``out_dir``."""
    out_resolved = out_dir.resolve()
    files = []
    for path in sorted(in_dir.rglob("*")):
        rel = path.relative_to(in_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.resolve().is_relative_to(out_resolved):
            continue
        files.append(path)
    return files


def align_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    size: int = 1024,
    transform_size: int | None = None,
    upsample: int = 1,
) -> dict[str, Any]:
    """Align every image under ``in_dir`` into ``out_dir`` as ``<relative path stem>.png``.

    upsample: dlib detector upsampling (1 as the official scripts; 2 finds smaller faces, slower).
    ``out_dir`` is locked for the run (``fileio.folder_job``): a second run on it is refused.

    Sub-folders are mirrored. Bad files (unreadable, not an image, no face) are logged and
    reported, never fatal. Outputs are written atomically (temporary file + ``os.replace``), so
    an interrupted run leaves no partial PNG, and outputs that already exist are skipped
    (resume). Files without an image suffix (:data:`redestyle.imaging.IMAGE_SUFFIXES`) are listed as ignored.

    Returns:
        The report, also written to ``out_dir/report.json`` in the one folder-job layout
        (:func:`redestyle.fileio.folder_report`): ``{"size", "images": {relative input path:
        {"status": "ok"|"skipped"|"failed"|"ignored", "output", "error", "n_faces", "seconds"}},
        "summary": {"images", "ok", "failed", "skipped", "ignored"}, "failed": {path: error}}``.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise NotADirectoryError(f"{in_dir}: input folder does not exist")
    if upsample < 0:
        raise ValueError(f"--upsample must be >= 0, got {upsample}")
    # each run reports its own inputs (done outputs as "skipped"); the report is written at the end
    with folder_job(out_dir, keep_earlier=False, size=size) as job:
        files = job.images
        claimed: dict[Path, str] = {}  # output -> input that owns it (a.jpg and a.png collide)
        for path in _list_inputs(in_dir, out_dir):
            rel = path.relative_to(in_dir).as_posix()
            entry: dict[str, Any] = {"status": "ignored", "output": None, "error": None}
            files[rel] = entry
            if not is_image_name(path):
                continue
            out_path = out_dir / Path(rel).with_suffix(".png")
            entry["output"] = out_path.relative_to(out_dir).as_posix()
            if out_path in claimed:
                entry.update(
                    status="failed",
                    error=f"output {entry['output']} already written for {claimed[out_path]}",
                )
                log.warning("%s: %s", rel, entry["error"])
                continue
            claimed[out_path] = rel
            if out_path.exists():
                entry["status"] = "skipped"
                continue
            start = time.perf_counter()
            try:
                img = open_rgb(path)  # any size: alignment makes the square
                landmarks, info = detect_landmarks(np.asarray(img), source=rel, upsample=upsample)
                aligned = align_face(img, size=size, transform_size=transform_size, landmarks=landmarks)
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(out_path) as f:
                    aligned.save(f, format="PNG")
            # NoFaceError and open_rgb's errors are ValueErrors; dlib raises RuntimeError.
            except (ValueError, OSError, RuntimeError) as err:
                entry.update(status="failed", error=str(err))
                log.warning("%s", err if rel in str(err) else f"{rel}: {err}")
            else:
                entry.update(status="ok", n_faces=info["n_faces"])
            entry["seconds"] = round(time.perf_counter() - start, 3)
    return job.report()


# --------------------------------------------------------------------------------------------
# command line: `redestyle align IN_DIR OUT_DIR [--size 1024]` (options: cli.add_align_arguments)


def cli_align(args: argparse.Namespace) -> int:
    """Run the ``align`` verb; exit status 0 when no file failed, 1 otherwise.

    Each failed file gets one warning line (logging) naming it and the problem; a summary
    line goes to stdout.
    """
    report = align_folder(
        args.in_dir,
        args.out_dir,
        size=args.size,
        transform_size=args.transform_size,
        upsample=args.upsample,
    )
    n = report["summary"]
    print(
        f"aligned {n['ok']}, already done {n.get('skipped', 0)}, failed {n['failed']}, "
        f"ignored {n.get('ignored', 0)} -> {Path(args.out_dir) / REPORT}"
    )
    return 1 if n["failed"] else 0
