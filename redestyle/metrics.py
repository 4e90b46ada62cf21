"""Destylization accuracy: identity, same-person consistency, expression retention, realism.

Measures for the paper's Fig. 4 (same-person portraits should give similar realistic faces) and
Fig. 5 (expression kept), all pure functions over arrays or tensors:

- identity embeddings from dlib's face-recognition ResNet (128-d, always available; the face is
  found by dlib's HOG detector and its 150 px chip is cut from the 5-point landmarks, as
  ``dlib.face_recognition_model_v1`` expects), or from any ``[B, 3, 256, 256] in [-1, 1] ->
  [B, D]`` embedding function, e.g. IR-SE50 ArcFace through :func:`irse50_embedder`;
- same-person consistency: mean within-group vs across-group cosine similarity and the ROC AUC
  of within- against across-group pairs (Mann-Whitney U, ties counted one half), among the
  destylized faces (:mod:`redestyle.accuracy` judges with dlib, which no method optimises);
- expression / attribute retention from dlib's 68 landmarks (mouth opening and width, eye
  aspect ratio, head yaw / pitch / roll);
- a realism proxy: distance of W+ codes to ``latent_avg``.

Faces dlib cannot find are never dropped silently: every function that detects returns the
failures next to its results (NaN rows / ``None`` entries keep positions aligned).

Images are accepted as RGB uint8 arrays [H, W, 3], PIL images, tensors [3, H, W] in [-1, 1],
or a batch tensor [B, 3, H, W] in [-1, 1] (the generator's output range).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from redestyle.align import (
    NoFaceError,
    detect_face,
    detect_landmarks,
    dlib_model_path,
)
from redestyle.imaging import as_rgb_uint8, pool, to_uint8
from redestyle.nets.irse import IDFeatures

__all__ = [
    "ATTRIBUTES",
    "EmbedFn",
    "Failure",
    "attribute_errors",
    "cosine_similarity",
    "dlib_embedding",
    "embed_faces",
    "group_consistency",
    "head_pose",
    "identity_similarity",
    "irse50_embedder",
    "landmark_attributes",
    "latent_distance_to_avg",
    "paired_identity_similarity",
    "points_attributes",
    "realism_proxy",
    "retention_errors",
    "roc_auc",
]

ImageLike = np.ndarray | Image.Image | torch.Tensor
Images = torch.Tensor | Sequence[ImageLike]
# An identity embedding function: [B, 3, 256, 256] in [-1, 1] -> [B, D].
EmbedFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Failure:
    """An image dlib found no face in (``index`` into the input, ``name`` for reports)."""

    index: int
    name: str
    error: str


# --------------------------------------------------------------------------------------------
# image conversion


def _to_uint8(image: ImageLike) -> np.ndarray:
    """One image -> RGB uint8 [H, W, 3]; a tensor is [3, H, W] in [-1, 1]."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(
                f"image tensor shape {tuple(image.shape)}: expected [3, H, W] in [-1, 1]"
            )
        return np.ascontiguousarray(to_uint8(image))
    return as_rgb_uint8(image)


def _as_list(images: Images) -> list[ImageLike]:
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images tensor shape {tuple(images.shape)}: expected [B, 3, H, W]")
        return list(images)
    return list(images)


def _to_batch256(images: Images) -> torch.Tensor:
    """Images -> float tensor [B, 3, 256, 256] in [-1, 1], average-pooled from larger sizes
    (as DualStyleGAN pools its 1024 outputs before the ID loss, losses.md section 1)."""
    if isinstance(images, torch.Tensor):
        batch = images.float()
    else:
        items = []
        for img in images:
            if isinstance(img, torch.Tensor):
                items.append(img.float())
            else:
                arr = torch.from_numpy(_to_uint8(img)).permute(2, 0, 1).float()
                items.append(arr / 127.5 - 1.0)
        batch = torch.stack(items)
    if batch.ndim != 4 or batch.shape[1] != 3 or batch.shape[2] != batch.shape[3]:
        raise ValueError(f"images shape {tuple(batch.shape)}: expected square [B, 3, S, S]")
    return pool(batch, 256)


def _names(names: Sequence[str] | None, n: int) -> list[str]:
    if names is None:
        return [f"image {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} images")
    return list(names)


# --------------------------------------------------------------------------------------------
# identity embeddings


@functools.cache
def _predictor5():
    import dlib

    return dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks.dat")))


@functools.cache
def _face_recognizer():
    import dlib

    return dlib.face_recognition_model_v1(
        str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
    )


def dlib_embedding(image: ImageLike, *, source: str = "image") -> np.ndarray:
    """dlib ResNet face descriptor of the largest face, L2-normalised.

    The descriptor is computed on the 150 px chip that dlib aligns from its 5-point landmarks
    (``compute_face_descriptor(image, shape)``, no jitter). dlib's own rule is "same person"
    when the Euclidean distance of the raw descriptors (norm ~1.5) is below 0.6; here they are
    unit vectors compared by cosine similarity, which is compressed near 1: different people
    in DualStyleGAN's sample photos score 0.78-0.91, an image and its mirror 0.99. Compare
    scores relatively (e.g. :func:`group_consistency`'s AUC), not against 0.

    Args:
        image: RGB uint8 [H, W, 3], PIL image, or tensor [3, H, W] in [-1, 1].
        source: name used in error messages.

    Returns:
        float64 [128], unit norm.

    Raises:
        NoFaceError: no face detected.
    """
    rgb, box, _ = detect_face(_to_uint8(image), source=source)
    shape = _predictor5()(rgb, box)
    desc = np.array(_face_recognizer().compute_face_descriptor(rgb, shape, 0), dtype=np.float64)
    return desc / np.linalg.norm(desc)


def irse50_embedder(backbone: torch.nn.Module) -> EmbedFn:
    """Wrap an IR-SE50 ``Backbone`` (112 px input) as an :data:`EmbedFn` on 256 px images.

    The wrapper applies the ID-loss feature extraction of pSp / DualStyleGAN (losses.md
    section 1): crop rows 35:223 and columns 32:220 of the 256 image (the inner face of an
    FFHQ-aligned image), average-pool to 112, run the backbone, L2-normalise. Put the backbone
    in ``eval()`` mode yourself; inputs move to its device.

    Returns:
        fn: [B, 3, 256, 256] in [-1, 1] -> [B, 512] unit vectors.
    """

    def embed(x: torch.Tensor) -> torch.Tensor:
        param = next(backbone.parameters())
        x = x.to(device=param.device, dtype=param.dtype)
        x = pool(IDFeatures.crop(x), 112)  # the one definition of the crop
        return F.normalize(backbone(x), dim=1)

    return embed


def embed_faces(
    images: Images,
    *,
    backend: str | EmbedFn = "dlib",
    names: Sequence[str] | None = None,
    batch_size: int = 16,
) -> tuple[np.ndarray, list[Failure]]:
    """Identity embeddings of a list of face images.

    Args:
        images: N images (see module docstring); for an :data:`EmbedFn` backend they must be
            square, FFHQ-aligned faces (pooled to 256 here).
        backend: ``"dlib"`` (128-d descriptor, detects the face itself) or an embedding function
            ``[B, 3, 256, 256] in [-1, 1] -> [B, D]`` such as :func:`irse50_embedder`.
        names: names for the failure reports (default ``"image <i>"``).
        batch_size: images per call of an embedding function.

    Returns:
        embeddings: float64 [N, D], unit rows; rows of images without a detected face are NaN.
        failures: one :class:`Failure` per NaN row (always empty for an embedding function).
    """
    items = _as_list(images)
    labels = _names(names, len(items))
    if backend == "dlib":
        rows, failures = [], []
        for i, (img, name) in enumerate(zip(items, labels)):
            try:
                rows.append(dlib_embedding(img, source=name))
            except NoFaceError as err:
                rows.append(np.full(128, np.nan))
                failures.append(Failure(i, name, str(err)))
        return np.stack(rows) if rows else np.zeros((0, 128)), failures
    if not callable(backend):
        raise ValueError(f"backend {backend!r}: expected 'dlib' or an embedding function")
    chunks = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = _to_batch256(items[start : start + batch_size])
            emb = backend(batch)
            if emb.ndim != 2 or emb.shape[0] != batch.shape[0]:
                raise ValueError(
                    f"embedding function returned shape {tuple(emb.shape)}, expected [B, D]"
                )
            chunks.append(F.normalize(emb.double().cpu(), dim=1).numpy())
    return np.concatenate(chunks), []


def cosine_similarity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity: x [N, D], y [M, D] -> [N, M] in [-1, 1] (NaN rows stay NaN)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


def identity_similarity(a: ImageLike, b: ImageLike, *, backend: str | EmbedFn = "dlib") -> float:
    """Cosine similarity in [-1, 1] of the identity embeddings of two face images.

    Raises:
        NoFaceError: (dlib backend) no face in ``a`` or ``b``.
    """
    emb, failures = embed_faces([a, b], backend=backend, names=["a", "b"])
    if failures:
        raise NoFaceError(failures[0].name)
    return float(cosine_similarity(emb[:1], emb[1:])[0, 0])


def paired_identity_similarity(
    src_images: Images,
    dst_images: Images,
    *,
    backend: str | EmbedFn = "dlib",
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[Failure]]:
    """Cosine similarity of each source image with its output (e.g. an encoder's reconstruction).

    Right where the source is the target (reconstructing a photo, notebook 01). Not a measure
    of destylization: there the source is the stylised portrait, which itself would score 1, so
    :mod:`redestyle.accuracy` measures consistency among the destylized faces instead.

    Returns:
        similarity: float64 [N] in [-1, 1]; NaN where either image has no detected face.
        failures: the images without a face, named ``"<name> (source)"`` / ``"<name> (destylized)"``.
    """
    src, dst = _as_list(src_images), _as_list(dst_images)
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} source images but {len(dst)} destylized images")
    labels = _names(names, len(src))
    e_src, f_src = embed_faces(src, backend=backend, names=[f"{n} (source)" for n in labels])
    e_dst, f_dst = embed_faces(dst, backend=backend, names=[f"{n} (destylized)" for n in labels])
    sims = np.einsum("nd,nd->n", e_src, e_dst)  # unit rows: the dot product is the cosine
    return sims, sorted(f_src + f_dst, key=lambda f: f.index)


# --------------------------------------------------------------------------------------------
# same-person consistency


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve of scores, positives against negatives.

    Computed as the Mann-Whitney statistic U / (n_pos * n_neg): the probability that a random
    positive scores higher than a random negative, ties counting one half (midranks).

    Args:
        positives: [P] scores of positive pairs; negatives: [Q] scores of negative pairs.

    Returns:
        AUC in [0, 1]; 1 when every positive is above every negative, 0.5 when the two are
        indistinguishable.
    """
    pos = np.asarray(positives, dtype=np.float64).ravel()
    neg = np.asarray(negatives, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"roc_auc needs positives and negatives (got {pos.size} and {neg.size})")
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Midranks: tied values share the mean of the 1-based ranks they occupy.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    midrank_sorted = np.repeat(first + (counts + 1) / 2.0, counts)
    ranks = np.empty_like(midrank_sorted)
    ranks[order] = midrank_sorted
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def group_consistency(groups: Mapping[str, np.ndarray | Sequence[np.ndarray]]) -> dict[str, Any]:
    """Same-person consistency of embeddings grouped by identity (Fig. 4).

    Every unordered pair of embeddings is either *within* a group (same person) or *across*
    groups. A destylizer that keeps identity consistent gives high within-group similarity,
    low across-group similarity, and an AUC near 1 for telling the two apart.

    Args:
        groups: ``{group name: embeddings [n_g, D]}`` (or a list of [D] vectors). NaN rows
            (faces that were not found) are left out and counted.

    Returns:
        ``{"within_mean", "across_mean", "gap" (within - across), "auc" (within pairs as
        positives; NaN unless both kinds exist), "n_within", "n_across" (pair counts),
        "n_groups", "n_embeddings", "n_missing"}``.
    """
    vectors, labels, n_missing = [], [], 0
    for label, (_, embs) in enumerate(groups.items()):
        for e in np.asarray(embs, dtype=np.float64).reshape(len(embs), -1):
            if np.isnan(e).any():
                n_missing += 1
            else:
                vectors.append(e)
                labels.append(label)
    labels = np.array(labels)
    n = len(vectors)
    sims = cosine_similarity(np.stack(vectors), np.stack(vectors)) if n else np.zeros((0, 0))
    iu = np.triu_indices(n, k=1)
    same = labels[iu[0]] == labels[iu[1]]
    within, across = sims[iu][same], sims[iu][~same]
    return {
        "within_mean": float(within.mean()) if within.size else math.nan,
        "across_mean": float(across.mean()) if across.size else math.nan,
        "gap": float(within.mean() - across.mean()) if within.size and across.size else math.nan,
        "auc": roc_auc(within, across) if within.size and across.size else math.nan,
        "n_within": int(within.size),
        "n_across": int(across.size),
        "n_groups": len(groups),
        "n_embeddings": n,
        "n_missing": n_missing,
    }


# --------------------------------------------------------------------------------------------
# expression / attribute retention from 68 landmarks

ATTRIBUTES = ("mouth_open", "mouth_width", "eye_open", "yaw", "pitch", "roll")

# Generic 3-D face for head pose: six iBUG landmarks of an average head (units ~ 0.1 mm), the
# values popularised by S. Mallick's "Head Pose Estimation using OpenCV and Dlib" (2016),
# converted to image axes: x to the image's right, y down, z away from the camera.
_POSE_INDICES = np.array(
    [30, 8, 36, 45, 48, 54]
)  # nose tip, chin, outer eye corners, mouth corners
_POSE_MODEL = np.array(
    [
        [0.0, 0.0, 0.0],  # nose tip
        [0.0, 330.0, 65.0],  # chin
        [-225.0, -170.0, 135.0],  # outer corner of the eye on the image's left (point 36)
        [225.0, -170.0, 135.0],  # outer corner of the eye on the image's right (point 45)
        [-150.0, 150.0, 125.0],  # mouth corner, image left (point 48)
        [150.0, 150.0, 125.0],  # mouth corner, image right (point 54)
    ]
)


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Head yaw, pitch, roll in degrees from 68 landmarks, by a scaled-orthographic fit.

    Method (no camera model, no iterative solver): fit the 2x3 affine projection M that maps the
    centred generic 3-D face (:data:`_POSE_MODEL`) onto the centred landmarks by linear least
    squares, replace M by the nearest scaled orthonormal pair of rows (SVD: M = U S V^T ->
    U V^T), complete the rotation with the cross product, and read Euler angles from
    R = Rz(roll) Ry(-yaw) Rx(pitch) in image axes (x right, y down, z into the image).

    Signs: yaw > 0 when the nose points to the image's right, pitch > 0 when the face looks
    down, roll > 0 when the face is turned clockwise in the image. Mirroring the image negates
    yaw and roll and keeps pitch. Accuracy is that of a generic head: a few degrees, good for
    comparing a portrait with its destylized face, not for absolute pose.

    Args:
        landmarks: [68, 2] iBUG landmarks (x, y) in pixels.

    Returns:
        (yaw, pitch, roll) in degrees.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[_POSE_INDICES]
    model = _POSE_MODEL - _POSE_MODEL.mean(axis=0)
    pts = pts - pts.mean(axis=0)
    m = np.linalg.lstsq(model, pts, rcond=None)[0].T  # [2, 3]: pts ~ model @ m.T
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    r12 = u @ vt  # rows: the rotated x and y axes
    rot = np.vstack([r12, np.cross(r12[0], r12[1])])
    # R = Rz(roll) Ry(-yaw) Rx(pitch): R[2,0] = sin(yaw), R[2,1] = cos(yaw) sin(pitch), ...
    yaw = math.degrees(math.asin(float(np.clip(rot[2, 0], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(rot[2, 1], rot[2, 2]))
    roll = math.degrees(math.atan2(rot[1, 0], rot[0, 0]))
    return yaw, pitch, roll


def _eye_aspect_ratio(eye: np.ndarray) -> float:
    """(|p1 - p5| + |p2 - p4|) / (2 |p0 - p3|) over the 6 points of one eye (Soukupova & Cech 2016)."""
    d = np.linalg.norm
    return float((d(eye[1] - eye[5]) + d(eye[2] - eye[4])) / (2.0 * d(eye[0] - eye[3])))


def points_attributes(landmarks: np.ndarray) -> dict[str, float]:
    """Expression and pose attributes of one face from its 68 landmarks.

    Args:
        landmarks: [68, 2] iBUG landmarks (x, y) in pixels.

    Returns:
        ``mouth_open``: mean gap of the 3 inner-lip pairs (61-67, 62-66, 63-65) / inter-ocular
        distance (distance of the eye centres; ~0 closed, ~0.3+ open);
        ``mouth_width``: corner-to-corner width (48-54) / inter-ocular distance;
        ``eye_open``: eye aspect ratio averaged over both eyes (~0.3 open, < 0.2 closed);
        ``yaw``, ``pitch``, ``roll``: degrees (:func:`head_pose`).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks shape {lm.shape}: expected (68, 2)")
    iod = float(np.linalg.norm(lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0)))
    gap = np.linalg.norm(lm[[61, 62, 63]] - lm[[67, 66, 65]], axis=1).mean()
    yaw, pitch, roll = head_pose(lm)
    return {
        "mouth_open": float(gap / iod),
        "mouth_width": float(np.linalg.norm(lm[54] - lm[48]) / iod),
        "eye_open": (_eye_aspect_ratio(lm[36:42]) + _eye_aspect_ratio(lm[42:48])) / 2.0,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
    }


def landmark_attributes(
    images: Images, *, names: Sequence[str] | None = None
) -> tuple[list[dict[str, float] | None], list[Failure]]:
    """:func:`points_attributes` of the largest face of each image (dlib 68 landmarks).

    Returns:
        attrs: one dict per image (keys :data:`ATTRIBUTES`), ``None`` where no face was found.
        failures: one :class:`Failure` per ``None``.
    """
    items = _as_list(images)
    labels = _names(names, len(items))
    attrs: list[dict[str, float] | None] = []
    failures = []
    for i, (img, name) in enumerate(zip(items, labels)):
        try:
            landmarks, _ = detect_landmarks(_to_uint8(img), source=name)
        except NoFaceError as err:
            attrs.append(None)
            failures.append(Failure(i, name, str(err)))
        else:
            attrs.append(points_attributes(landmarks))
    return attrs, failures


def attribute_errors(
    src_attrs: Sequence[dict[str, float] | None], dst_attrs: Sequence[dict[str, float] | None]
) -> dict[str, Any]:
    """Per-attribute mean absolute error between paired attribute dicts.

    Pairs where either side is ``None`` (no face) are counted in ``n_failed`` and left out.

    Returns:
        ``{"mean_abs_error": {attribute: float (NaN if no pair)}, "per_pair": [{attribute:
        abs error} | None], "n": pairs compared, "n_failed": pairs left out}``.
    """
    if len(src_attrs) != len(dst_attrs):
        raise ValueError(f"{len(src_attrs)} source but {len(dst_attrs)} destylized attribute sets")
    per_pair: list[dict[str, float] | None] = []
    for s, d in zip(src_attrs, dst_attrs):
        per_pair.append(
            None if s is None or d is None else {k: abs(d[k] - s[k]) for k in ATTRIBUTES}
        )
    done = [p for p in per_pair if p is not None]
    mae = {k: float(np.mean([p[k] for p in done])) if done else math.nan for k in ATTRIBUTES}
    return {
        "mean_abs_error": mae,
        "per_pair": per_pair,
        "n": len(done),
        "n_failed": len(per_pair) - len(done),
    }


def retention_errors(
    src_images: Images, dst_images: Images, *, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Expression / pose retention between portraits and their destylized faces (Fig. 5).

    Args:
        src_images, dst_images: N paired images (see module docstring).
        names: names for the failure reports.

    Returns:
        :func:`attribute_errors` of the two :func:`landmark_attributes` lists, plus
        ``"failures"``: every image without a face, named ``"<name> (source)"`` or
        ``"<name> (destylized)"``.
    """
    src, dst = _as_list(src_images), _as_list(dst_images)
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} source images but {len(dst)} destylized images")
    labels = _names(names, len(src))
    a_src, f_src = landmark_attributes(src, names=[f"{n} (source)" for n in labels])
    a_dst, f_dst = landmark_attributes(dst, names=[f"{n} (destylized)" for n in labels])
    out = attribute_errors(a_src, a_dst)
    out["failures"] = sorted(f_src + f_dst, key=lambda f: f.index)
    return out


# --------------------------------------------------------------------------------------------
# realism proxy


def latent_distance_to_avg(w_plus: torch.Tensor, latent_avg: torch.Tensor) -> torch.Tensor:
    """Mean over layers of the L2 distance of W+ codes to the average latent.

    Codes near ``latent_avg`` decode to typical (realistic) FFHQ faces; a destylized code far
    from it is likely to keep stylised features.

    Args:
        w_plus: [B, L, 512] (L = 18 at 1024).
        latent_avg: [512] or [L, 512].

    Returns:
        [B] distances, same dtype as ``w_plus``.
    """
    if w_plus.ndim != 3:
        raise ValueError(f"w_plus shape {tuple(w_plus.shape)}: expected [B, L, 512]")
    avg = latent_avg.to(w_plus)
    if avg.ndim == 1:
        avg = avg.expand(w_plus.shape[1], -1)
    if avg.shape != w_plus.shape[1:]:
        raise ValueError(
            f"latent_avg shape {tuple(latent_avg.shape)} does not fit w_plus {tuple(w_plus.shape)}"
        )
    return (w_plus - avg).norm(dim=2).mean(dim=1)


def realism_proxy(
    w_plus: torch.Tensor,
    latent_avg: torch.Tensor,
    *,
    portraits: Images | None = None,
    faces: Images | None = None,
    backend: str | EmbedFn = "dlib",
) -> dict[str, Any]:
    """Latent distance to ``latent_avg`` and, optionally, identity kept from the portraits.

    The identity term (:func:`paired_identity_similarity`) rewards a face that stays close to
    its portrait, so returning the portrait unchanged maximises it: describe with it, do not rank
    destylizers by it.

    Args:
        w_plus: [B, L, 512] destylized codes; latent_avg: [512] or [L, 512].
        portraits, faces: B portraits and their destylized faces (both or neither).
        backend: identity backend (see :func:`embed_faces`).

    Returns:
        ``{"latent_distance": float64 [B], "latent_distance_mean": float, "id_similarity":
        float64 [B] (NaN where no face) or None, "id_similarity_mean": float (over the found
        faces) or None, "failures": [Failure]}``.
    """
    dist = latent_distance_to_avg(w_plus, latent_avg).detach().double().cpu().numpy()
    out: dict[str, Any] = {
        "latent_distance": dist,
        "latent_distance_mean": float(dist.mean()),
        "id_similarity": None,
        "id_similarity_mean": None,
        "failures": [],
    }
    if (portraits is None) != (faces is None):
        raise ValueError("pass both portraits and faces, or neither")
    if portraits is not None:
        sims, failures = paired_identity_similarity(portraits, faces, backend=backend)
        if len(sims) != len(dist):
            raise ValueError(f"{len(sims)} image pairs for {len(dist)} codes")
        out.update(
            id_similarity=sims,
            id_similarity_mean=float(np.nanmean(sims)) if np.isfinite(sims).any() else math.nan,
            failures=failures,
        )
    return out
