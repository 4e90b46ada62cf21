"""Destylization accuracy (paper §4.3, Fig. 4-5): same-person consistency and expression retention.

The paper shows qualitatively that portraits of one person give similar realistic faces with
Re-Destyle but sometimes entirely different faces with DualStyleGAN's optimization baseline
(Fig. 4), and that expression and glasses are kept (Fig. 5). This module measures both:

- **groups.** Portraits come in groups, one group per person (``{group: [n, 3, P, P]}``). With a
  data folder, one sub-folder per person, ``<data_dir>/<person>/<portrait>``, at least 2 people
  with at least 2 portraits each (:func:`group_by_folder`); without one,
  :func:`sample_groups` builds groups from real photos that exist offline (skimage's astronaut,
  matplotlib's Grace Hopper), each rendered as the photo plus :mod:`redestyle.data`'s three
  stylisations, optionally with generator samples rendered the same way (:func:`generated_photos`;
  with the tiny profile's random generator these are not faces: mechanics only).
- **destylizers.** A destylizer maps portraits [B, 3, P, P] to a :class:`Destylization` (faces +
  the W+ code that renders them). :func:`default_destylizers` wraps the baseline, Re-Destyle
  schedules and single-round ReStyle; :func:`identity_destylizer` returns the portraits (the
  "no destylization" reference, and a known answer for the tests).
- **metrics** (:mod:`redestyle.metrics`), per method, all on the same images:
  same-person consistency *among the destylized faces* (mean within- vs across-person cosine
  similarity and the ROC AUC of within- against across-person pairs), never similarity to the
  stylised input (the portrait itself would win that by construction). The judge is dlib's
  face-recognition network, which no method optimises; the baseline's ID-loss network (IR-SE50 on
  ffhq1024) is reported apart as such (``*_irse_loss``). Per-attribute mean absolute error of
  expression / pose landmarks between portrait and face (the paper's claim that expression is
  kept; the portraits-as-faces row is its trivial 0). A realism proxy (W+ distance to
  ``latent_avg``, descriptive only: truncation shrinks it by construction), seconds per image.
  dlib's columns are computed on one set of images for every method, those in which dlib found
  a face in every method's output (:func:`common_faces`); each method's own ``no_face`` count
  and the common ``n_scored`` / ``n_pairs`` are in the rows.
- **post-processing** as a factor (:data:`POSTPROCESSING`, :func:`protocol_destylizers`): the
  baseline's colour copy and truncation, applied to every method alike or to none; the held-out
  protocol judged by the oracle (``miniature.protocol``) takes its methods from there.

Everything here is pure over tensors except :func:`sample_groups`, which reads the two photos that
ship inside skimage and matplotlib (no user files, no downloads).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import metrics
from .align import NoFaceError, align_face, detect_landmarks
from .config import BASELINE
from .data import SAMPLE_STYLES, _stylise, sample_portraits
from .destylize import DestyleOptions, baseline, baseline_arguments, redestyle
from .imaging import pool, to_tensor, to_uint8
from .nets.irse import Backbone, IDFeatures

__all__ = [
    "CONSISTENCY_COLUMNS",
    "LOSS_NETWORK_COLUMNS",
    "RETENTION_COLUMNS",
    "REGIONS",
    "AccuracyComparison",
    "Destylization",
    "Destylizer",
    "FaceReadings",
    "MethodRun",
    "POSTPROCESSING",
    "PROTOCOL_SCHEDULES",
    "PostProcessing",
    "closeup_boxes",
    "closeup_rows",
    "common_faces",
    "compare_destylizers",
    "crop_region",
    "default_destylizers",
    "generated_photos",
    "group_by_folder",
    "group_grid_rows",
    "evaluate_method",
    "identity_destylizer",
    "protocol_destylizers",
    "random_id_features",
    "read_faces",
    "run_destylizer",
    "sample_groups",
    "stylised_group",
]


@dataclass
class Destylization:
    """What a destylizer returns for a batch of portraits."""

    faces: torch.Tensor  # [B, 3, S, S] in [-1, 1]: the realistic faces
    w_plus: torch.Tensor | None  # [B, n_latent, D]: the W+ code that renders them (None: no code)


# portraits [B, 3, P, P] in [-1, 1] at the encoder resolution -> Destylization
Destylizer = Callable[[torch.Tensor], Destylization]


# --------------------------------------------------------------------------------------------
# groups of portraits, one per person


def stylised_group(photo: np.ndarray, *, size: int) -> torch.Tensor:
    """A photo and its three stylisations (:data:`redestyle.data.SAMPLE_STYLES`): [4, 3, size, size].

    photo: an FFHQ-aligned RGB uint8 face [H, W, 3]. The stylisations are those of the bundled
    samples (flat colours, ink outlines, a warm palette), so every group shares the same styles
    and only the person differs.
    """
    images = [photo if style == "photo" else _stylise(photo, style) for style in SAMPLE_STYLES]
    return torch.cat([to_tensor(img, size=size) for img in images])


def _grace_hopper() -> np.ndarray:
    """matplotlib's sample photo of Grace Hopper (a real face with glasses), RGB uint8."""
    from matplotlib import cbook  # matplotlib ships the photo; imported only when it is read

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def generated_photos(decoder, n: int, *, seed: int = 0, truncation: float = 0.7) -> list[np.ndarray]:
    """``n`` generator samples as RGB uint8 photos [S, S, 3], seeded, truncated toward the mean w.

    With official FFHQ weights these are (aligned) faces of new identities; with the tiny
    profile's random weights they are not faces at all (mechanics only: dlib finds nothing).
    """
    param = next(decoder.parameters())
    gen = torch.Generator(device=param.device).manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, decoder.style_dim, device=param.device, generator=gen)
        w_mean = decoder.mean_latent(4096, generator=gen)
        w = decoder.mapping(z)
        w = w_mean + truncation * (w - w_mean)
        images = decoder.decode(w.unsqueeze(1).expand(-1, decoder.n_latent, -1), randomize_noise=False)
    return [to_uint8(img) for img in images]


def sample_groups(
    size: int,
    *,
    decoder=None,
    n_generated: int = 0,
    seed: int = 0,
    real: bool = True,
) -> dict[str, torch.Tensor]:
    """Same-person groups that exist offline: ``{group: [4, 3, size, size] in [-1, 1]}``.

    ``real``: two real people, each the aligned photo plus three stylisations (``"astronaut"``:
    skimage's astronaut, the bundled samples of :func:`redestyle.data.sample_portraits`;
    ``"grace_hopper"``: matplotlib's sample photo). ``n_generated`` more groups
    ``"generated_<i>"`` come from samples of ``decoder`` (:func:`generated_photos`) rendered the
    same way. Deterministic for a given ``seed``.
    """
    groups: dict[str, torch.Tensor] = {}
    if real:
        groups["astronaut"] = torch.cat(list(sample_portraits(size).values()))
        hopper = np.asarray(align_face(_grace_hopper(), size=max(size, 256), transform_size=max(size, 256)))
        groups["grace_hopper"] = stylised_group(hopper, size=size)
    if n_generated:
        if decoder is None:
            raise ValueError("n_generated > 0 needs a decoder to sample faces from")
        for i, photo in enumerate(generated_photos(decoder, n_generated, seed=seed)):
            groups[f"generated_{i}"] = stylised_group(photo, size=size)
    return groups


def group_by_folder(
    images: Mapping[str, torch.Tensor], *, folder: str | os.PathLike = "data_dir"
) -> dict[str, torch.Tensor]:
    """Group ``data.load_folder`` output by its first sub-folder: one sub-folder per person.

    The layout: ``<folder>/<person>/<portrait>`` (deeper folders belong to their first-level
    person), at least 2 people and at least 2 portraits per person, as same-person consistency
    needs both same-person and different-person pairs.

    images: ``{"<person>/<file>": [1, 3, P, P]}`` (names relative to ``folder``, which names the
    folder in the errors). Returns ``{person: [n, 3, P, P]}`` in name order.

    Raises:
        ValueError: one line ``<folder>: <problem>`` when images lie directly in ``folder`` (their
            person is unknown), or the layout gives fewer than 2 people or a person with fewer
            than 2 portraits.
    """
    grouped: dict[str, list[torch.Tensor]] = {}
    loose = []
    for name in sorted(images):
        parts = name.replace("\\", "/").split("/")
        if len(parts) < 2:
            loose.append(name)
            continue
        grouped.setdefault(parts[0], []).append(images[name])
    layout = "expected <folder>/<person>/<portrait>, >= 2 people with >= 2 portraits each"
    if loose:
        raise ValueError(f"{folder}: {len(loose)} image(s) directly in the folder, person unknown "
                         f"(e.g. {loose[0]!r}); {layout}")
    if len(grouped) < 2:
        found = f"1 person ({next(iter(grouped))!r})" if grouped else "no images"
        raise ValueError(f"{folder}: {found}; same-person consistency needs different people: {layout}")
    single = [p for p, items in grouped.items() if len(items) < 2]
    if single:
        raise ValueError(f"{folder}: {len(single)} person(s) with 1 portrait (e.g. {single[0]!r}); "
                         f"same-person consistency needs 2: {layout}")
    return {person: torch.cat(items) for person, items in grouped.items()}


# --------------------------------------------------------------------------------------------
# destylizers


def identity_destylizer(portraits: torch.Tensor) -> Destylization:
    """The portraits themselves (no destylization, no code): the reference row."""
    return Destylization(portraits, None)


@dataclass(frozen=True)
class PostProcessing:
    """DualStyleGAN's post-processing of the realistic code z_i, as a factor of a comparison.

    The baseline (``destylize.baseline``) always copies the portrait's colour layers (z_e entries
    ``destylize.COLOR_FROM``.. into z_i) and renders at truncation 0.7 toward w = 0; Re-Destyle
    (``destylize.redestyle``) does neither by default. :func:`protocol_destylizers` applies one
    setting to every method alike.
    """

    colour_copy: bool  # copy z_e[:, COLOR_FROM:] into z_i
    truncation: float | None  # psi toward w = 0 (DualStyleGAN's centre); None: off

    @property
    def psi(self) -> float:
        return 1.0 if self.truncation is None else self.truncation


#: The two settings of the post-processing factor: none for anyone, or DualStyleGAN's for everyone.
POSTPROCESSING = {
    "none": PostProcessing(colour_copy=False, truncation=None),
    "dualstylegan": PostProcessing(colour_copy=True, truncation=BASELINE.truncation),
}


def _restyle_destylizer(models, schedule, post: PostProcessing = POSTPROCESSING["none"]) -> Destylizer:
    encoder = models.encoder("restyle_psp")

    def run(portraits: torch.Tensor) -> Destylization:
        with torch.no_grad():
            out = redestyle(encoder, models.decoder_for("restyle_psp"), portraits, schedule=schedule,
                            latent_avg=models.latent_avg, avg_image=models.avg_image,
                            preserve_color=post.colour_copy, truncation=post.truncation,
                            truncation_center="zero")
        return Destylization(out.image, out.z_i)

    return run


def _baseline_destylizer(models, *, n_steps: int, truncation: float | None, seed: int,
                         colour_copy: bool = True, joint: bool = False) -> Destylizer:
    options = DestyleOptions(method="baseline", steps=n_steps, truncation=truncation)
    kwargs = {**baseline_arguments(models, options, seed=seed), "preserve_color": colour_copy}
    g = models.generator

    def run(portraits: torch.Tensor) -> Destylization:
        # One image at a time, as `redestyle destylize` (make_destylizer) and the official script;
        # joint: the batch's images in one Adam run, each still optimised on its own
        # (destylize.baseline: per-image terms, elementwise Adam), several times faster on a CPU.
        chunks = [portraits] if joint else [portraits[b : b + 1] for b in range(portraits.shape[0])]
        out = [baseline(portraits=chunk, **kwargs) for chunk in chunks]
        z_i = torch.cat([o.z_i for o in out])
        with torch.no_grad():
            # The face is g(z_i) truncated toward w = 0 (destylize.py): its W+ code is psi * w.
            w_plus = options.baseline_truncation * g.mapping_plus(z_i)
        return Destylization(torch.cat([o.image for o in out]).detach(), w_plus)

    return run


def _has_baseline(models) -> bool:
    return models.g_prime is not None and models.lpips is not None and "dsg_zplus" in models.encoders


def _baseline_steps(models, steps: int | None) -> int:
    return steps if steps is not None else (BASELINE.steps if models.pretrained else 5)


def default_destylizers(
    models,
    *,
    schedules: Sequence[str] = ("5-3-1", "6-4-2"),
    restyle_iters: int = 5,
    baseline_steps: int | None = None,
    baseline_truncation: float | None = None,
    joint_baseline: bool = False,
    seed: int = 0,
) -> dict[str, Destylizer]:
    """The methods of the accuracy table, by display name.

    ``"baseline"`` (DualStyleGAN's optimization, :func:`redestyle.destylize.baseline`) when
    ``models`` carries its parts (``g_prime``, the ``dsg_zplus`` encoder, ``lpips``; ID loss from
    ``id_features`` when present): ``baseline_steps`` Adam steps (None: ``destylize.BASELINE.steps``,
    the official ``--iter``, on pretrained models; 5 on tiny), one image at a time with fresh noise
    seeded by ``seed`` and the image, render psi ``baseline_truncation`` (None: the official 0.7);
    ``joint_baseline``: a call's batch in one Adam run, each image still optimised on its own.
    ``"redestyle <schedule>"`` for each schedule and
    ``"restyle N=<restyle_iters>"`` (one round: plain ReStyle-pSp), from ``models``'
    ``restyle_psp`` encoder.
    """
    out: dict[str, Destylizer] = {}
    if _has_baseline(models):
        out["baseline"] = _baseline_destylizer(models, n_steps=_baseline_steps(models, baseline_steps),
                                               truncation=baseline_truncation, seed=seed, joint=joint_baseline)
    for schedule in schedules:
        out[f"redestyle {schedule}"] = _restyle_destylizer(models, schedule)
    out[f"restyle N={restyle_iters}"] = _restyle_destylizer(models, restyle_iters)
    return out


#: Re-Destyle schedules of the accuracy protocol: the paper's two and two more.
PROTOCOL_SCHEDULES = ("5-3-1", "6-4-2", "4-2-1", "3-3-3")


def protocol_destylizers(
    models,
    *,
    postprocessing: str = "none",
    schedules: Sequence[str] = PROTOCOL_SCHEDULES,
    restyle_iters: Sequence[int] = (1, 2, 3, 4, 5),
    baseline_steps: int | None = None,
    joint_baseline: bool = False,
    seed: int = 0,
) -> dict[str, Destylizer]:
    """The methods of the held-out protocol (``miniature.protocol``), all post-processed alike.

    ``postprocessing``: a key of :data:`POSTPROCESSING`: ``"none"`` (no colour copy, no truncation,
    for the baseline too) or ``"dualstylegan"`` (colour copy and truncation 0.7 toward w = 0, for
    Re-Destyle and ReStyle too). Names: ``"baseline"`` (when ``models`` carries its parts;
    ``baseline_steps`` as in :func:`default_destylizers`), ``"redestyle <schedule>"`` per schedule,
    ``"restyle N=<n>"`` (one round) per ``restyle_iters``. ``joint_baseline``: the baseline
    optimises each call's batch in one Adam run, every image still on its own (the same
    optimisation up to the rounding of batched kernels; ``destylize.baseline``), for speed.
    """
    if postprocessing not in POSTPROCESSING:
        raise ValueError(f"postprocessing must be one of {', '.join(POSTPROCESSING)}, got {postprocessing!r}")
    post = POSTPROCESSING[postprocessing]
    out: dict[str, Destylizer] = {}
    if _has_baseline(models):
        out["baseline"] = _baseline_destylizer(models, n_steps=_baseline_steps(models, baseline_steps),
                                               truncation=post.psi, colour_copy=post.colour_copy, seed=seed,
                                               joint=joint_baseline)
    for schedule in schedules:
        out[f"redestyle {schedule}"] = _restyle_destylizer(models, schedule, post)
    for n in restyle_iters:
        out[f"restyle N={n}"] = _restyle_destylizer(models, n, post)
    return out


def random_id_features(*, seed: int = 0, widths: Sequence[int] = (8, 16, 32, 64)) -> torch.nn.Module:
    """A seeded random-weight IR-SE50 (``irse.IDFeatures``) of small widths, for the tiny profile.

    Its cosine similarities measure image similarity, not identity: it only lets the tiny profile
    run the IR-SE50 consistency columns (mechanics only). Forward: [B, 3, S, S] -> unit [B, D].
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return IDFeatures(Backbone(112, 50, "ir_se", widths=tuple(widths)).eval()).eval()


@dataclass
class MethodRun:
    """One destylizer over all portraits."""

    faces: torch.Tensor  # [N, 3, S, S] in [-1, 1]
    w_plus: torch.Tensor | None  # [N, n_latent, D] or None
    seconds: float  # wall time over all batches

    @property
    def sec_per_image(self) -> float:
        return self.seconds / max(1, self.faces.shape[0])


def run_destylizer(destylizer: Destylizer, portraits: torch.Tensor, *, batch_size: int = 4) -> MethodRun:
    """Run ``destylizer`` over portraits [N, 3, P, P] in batches of ``batch_size`` and time it.

    On CUDA the clock waits for the device (``synchronize``) so the time is the work done.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cuda = portraits.is_cuda
    faces, codes = [], []
    start = time.perf_counter()
    for i in range(0, portraits.shape[0], batch_size):
        out = destylizer(portraits[i : i + batch_size])
        faces.append(out.faces.detach())
        codes.append(None if out.w_plus is None else out.w_plus.detach())
    if cuda:
        torch.cuda.synchronize(portraits.device)
    seconds = time.perf_counter() - start
    w_plus = None if any(c is None for c in codes) else torch.cat(codes)
    return MethodRun(torch.cat(faces), w_plus, seconds)


# --------------------------------------------------------------------------------------------
# metrics per method, every method on the same images

#: Columns of the consistency / realism table (rows of :func:`compare_destylizers`), judged by
#: dlib's face-recognition network, which no method optimises.
CONSISTENCY_COLUMNS = (
    "method", "n_images", "no_face", "n_scored", "within_dlib", "across_dlib", "auc_dlib",
    "latent_dist", "sec_per_image",
)
#: Columns measured with the baseline's ID-loss network (IR-SE50 on ffhq1024, the in-world
#: identity network on mini): the baseline optimises it, so it is reported apart, never as judge.
LOSS_NETWORK_COLUMNS = ("method", "n_images", "within_irse_loss", "across_irse_loss", "auc_irse_loss")
#: Columns of the expression / attribute retention table.
RETENTION_COLUMNS = ("method", "no_face", "n_pairs", *(f"err_{a}" for a in metrics.ATTRIBUTES))


@dataclass
class FaceReadings:
    """What dlib reads from N images: identity descriptors and landmark attributes."""

    embeddings: np.ndarray  # [N, 128] float64 unit rows; NaN rows where no face was found
    attributes: list[dict | None]  # N landmark attribute dicts (metrics.ATTRIBUTES); None: no face
    failures: list[metrics.Failure]  # the images without a face (either reading)

    @property
    def found(self) -> np.ndarray:
        """[N] bool: dlib found a face for both readings."""
        return np.isfinite(self.embeddings).all(axis=1) & np.array([a is not None for a in self.attributes])


def read_faces(images: torch.Tensor, names: Sequence[str]) -> FaceReadings:
    """dlib's readings of images [N, 3, S, S] in [-1, 1]: descriptor and 68-landmark attributes.

    names: N names for the failure reports. Both readings detect with the same HOG detector, so
    they fail on the same images; ``found`` requires both anyway.
    """
    emb, emb_failures = metrics.embed_faces(images, backend="dlib", names=names)
    attrs, attr_failures = metrics.landmark_attributes(images, names=names)
    seen = {f.index for f in emb_failures}
    failures = sorted(emb_failures + [f for f in attr_failures if f.index not in seen], key=lambda f: f.index)
    return FaceReadings(emb, attrs, failures)


def common_faces(readings: Mapping[str, FaceReadings]) -> np.ndarray:
    """The images every method is scored on: [N] bool, dlib found a face in every method's output.

    readings: method -> :class:`FaceReadings` of its faces (all over the same N portraits). One
    mask for all methods, so no mean or AUC is taken over a method's own, easier subset.
    """
    if not readings:
        raise ValueError("no method readings to intersect")
    masks = [r.found for r in readings.values()]
    if len({m.shape for m in masks}) != 1:
        raise ValueError(f"methods read different numbers of images: {sorted({m.shape[0] for m in masks})}")
    return np.logical_and.reduce(masks)


def _consistency(embeddings: np.ndarray, group_of: Sequence[str], keep: np.ndarray) -> dict[str, Any]:
    """group_consistency of the rows ``keep`` only (the others are left out as missing)."""
    by_group: dict[str, list[np.ndarray]] = {}
    for emb, group, kept in zip(embeddings, group_of, keep):
        by_group.setdefault(group, []).append(emb if kept else np.full_like(emb, np.nan))
    return metrics.group_consistency({g: np.stack(e) for g, e in by_group.items()})


def evaluate_method(
    name: str,
    run: MethodRun,
    group_of: Sequence[str],
    *,
    readings: FaceReadings,
    portrait: FaceReadings,
    scored: np.ndarray,
    latent_avg: torch.Tensor | None = None,
    id_embed: metrics.EmbedFn | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics of one method's faces, on the images ``scored`` (the same for every method).

    run: the method's faces [N, 3, S, S] (and W+ codes, time); group_of: N person names;
    readings / portrait: dlib's :class:`FaceReadings` of the faces / of the portraits; scored:
    [N] bool, the images every compared method kept a face in (:func:`common_faces`); latent_avg:
    [n_latent, D] for the latent distance (NaN without codes); id_embed: the baseline's ID-loss
    network ([B, 3, 256, 256] -> [B, D]: IR-SE50 or the in-world one) or None (its columns NaN).

    Consistency is measured among the method's faces (same-person pairs against pairs of
    different people), never against the stylised input: a method that returns the portraits
    scores the portraits' own consistency, which destylization should raise. Returns
    ``(row, details)``, row with the keys of :data:`CONSISTENCY_COLUMNS`,
    :data:`LOSS_NETWORK_COLUMNS` and :data:`RETENTION_COLUMNS`:

    - ``no_face``: images in which dlib found no face in this method's output (its own count);
      ``n_scored``: ``scored.sum()``, the images behind every dlib column of every method;
    - ``within_dlib / across_dlib / auc_dlib``: :func:`redestyle.metrics.group_consistency` of
      the dlib descriptors on the scored images (judge: dlib's network, optimised by no method);
    - ``*_irse_loss``: the same with ``id_embed``, on all ``n_images`` (it needs no detection, so
      every method has every image): the baseline optimises this network, hence not a judge;
    - ``latent_dist``: mean W+ distance to ``latent_avg`` (descriptive: truncation shrinks it);
    - ``n_pairs`` / ``err_<attribute>``: the scored images where the portrait has a face too,
      and the mean absolute error portrait vs face of each landmark attribute there (degrees for
      yaw / pitch / roll). This is the paper's claim (expression and pose kept); a method that
      returns the portraits (the notebook's ``"portraits (input)"`` row) scores 0 by
      construction: a reference, not a competitor.

    details: ``{"consistency": {"dlib": ..., "irse_loss": ...}, "retention":
    metrics.attribute_errors output, "failures": this method's dlib Failures}``.
    """
    n = run.faces.shape[0]
    scored = np.asarray(scored, dtype=bool)
    if len(group_of) != n or scored.shape != (n,) or readings.embeddings.shape[0] != n \
            or portrait.embeddings.shape[0] != n:
        raise ValueError(f"{n} faces, {len(group_of)} groups, {scored.shape} mask, "
                         f"{readings.embeddings.shape[0]} / {portrait.embeddings.shape[0]} readings")
    if (scored & ~readings.found).any():
        raise ValueError(f"{name}: the scored mask holds images without a face in this method's output")
    row: dict[str, Any] = {"method": name, "n_images": n, "no_face": len(readings.failures),
                           "n_scored": int(scored.sum())}
    details: dict[str, Any] = {"consistency": {}, "failures": readings.failures}
    cons = _consistency(readings.embeddings, group_of, scored)
    details["consistency"]["dlib"] = cons
    row.update(within_dlib=cons["within_mean"], across_dlib=cons["across_mean"], auc_dlib=cons["auc"])
    if id_embed is not None:
        emb, _ = metrics.embed_faces(run.faces, backend=id_embed)
        loss = _consistency(emb, group_of, np.ones(n, dtype=bool))
        details["consistency"]["irse_loss"] = loss
        row.update(within_irse_loss=loss["within_mean"], across_irse_loss=loss["across_mean"],
                   auc_irse_loss=loss["auc"])
    else:
        row.update(within_irse_loss=math.nan, across_irse_loss=math.nan, auc_irse_loss=math.nan)
    if run.w_plus is not None and latent_avg is not None:
        row["latent_dist"] = float(metrics.latent_distance_to_avg(run.w_plus, latent_avg).mean())
    else:
        row["latent_dist"] = math.nan
    row["sec_per_image"] = run.sec_per_image
    # Retention on the scored images whose portrait dlib reads too (the same pairs for everyone).
    pairs = scored & portrait.found
    retention = metrics.attribute_errors(
        [a if keep else None for a, keep in zip(portrait.attributes, pairs)],
        [a if keep else None for a, keep in zip(readings.attributes, pairs)],
    )
    details["retention"] = retention
    row["n_pairs"] = retention["n"]
    row.update({f"err_{a}": v for a, v in retention["mean_abs_error"].items()})
    return row, details


@dataclass
class AccuracyComparison:
    """Every method's faces on every portrait group, and a metric row per method."""

    groups: dict[str, torch.Tensor]  # group -> [n_g, 3, P, P] portraits
    group_of: list[str]  # the group of each portrait, in row order
    names: list[str]  # "<group>/<index>" per portrait
    portraits: torch.Tensor  # [N, 3, P, P]
    runs: dict[str, MethodRun]  # method -> faces, codes, time
    rows: list[dict]  # one per method (CONSISTENCY_, LOSS_NETWORK_ and RETENTION_COLUMNS keys)
    scored: np.ndarray  # [N] bool: dlib found a face in every method's output (common_faces)
    pairs: np.ndarray  # [N] bool: scored and dlib found a face in the portrait (retention)
    details: dict[str, dict] = field(default_factory=dict)  # method -> evaluate_method details

    def faces(self, method: str, group: str) -> torch.Tensor:
        """The faces of one group by one method: [n_g, 3, S, S]."""
        index = [i for i, g in enumerate(self.group_of) if g == group]
        return self.runs[method].faces[index]

    def counts(self) -> str:
        """One line: how many images every row is scored on, and which methods lost faces."""
        lost = ", ".join(f"{r['method']} {r['no_face']}" for r in self.rows if r["no_face"]) or "none"
        return (f"scored on {int(self.scored.sum())} of {len(self.names)} images, the same for every "
                f"method (dlib found a face in every method's output; no face: {lost}); retention on "
                f"{int(self.pairs.sum())} of them (a face in the portrait too)")


def compare_destylizers(
    destylizers: Mapping[str, Destylizer],
    groups: Mapping[str, torch.Tensor],
    *,
    latent_avg: torch.Tensor | None = None,
    id_embed: metrics.EmbedFn | None = None,
    batch_size: int = 4,
) -> AccuracyComparison:
    """Destylize every group with every method and measure (Fig. 4-5 and the accuracy table).

    destylizers: display name -> :data:`Destylizer`; groups: person -> portraits
    [n_g, 3, P, P] in [-1, 1] (same P, on the destylizers' device); latent_avg: [n_latent, D]
    for the realism proxy; id_embed: the baseline's ID-loss network (e.g. ``models.id_features``),
    reported apart (:data:`LOSS_NETWORK_COLUMNS`), or None; batch_size: portraits per destylizer
    call (the baseline still optimises each image on its own).

    Every method runs first; then :func:`common_faces` picks, once for all, the images in which
    dlib found a face in every method's output, and every dlib column of every row is computed
    on exactly those (retention: those whose portrait has a face too). A method that loses a
    face thereby removes that image for everyone, and its ``no_face`` count says so.
    """
    if not groups:
        raise ValueError("no portrait groups")
    group_of = [g for g, imgs in groups.items() for _ in range(imgs.shape[0])]
    names = [f"{g}/{i}" for g, imgs in groups.items() for i in range(imgs.shape[0])]
    portraits = torch.cat(list(groups.values()))
    portrait = read_faces(portraits, names)
    runs = {name: run_destylizer(d, portraits, batch_size=batch_size) for name, d in destylizers.items()}
    face_names = [f"{x} (destylized)" for x in names]
    readings = {}
    for name, run in runs.items():
        same = run.faces.shape == portraits.shape and torch.equal(run.faces, portraits)
        readings[name] = portrait if same else read_faces(run.faces, face_names)  # dlib is slow at 1024
    scored = common_faces(readings) if readings else np.zeros(len(names), dtype=bool)
    rows, details = [], {}
    for name, run in runs.items():
        row, info = evaluate_method(name, run, group_of, readings=readings[name], portrait=portrait,
                                    scored=scored, latent_avg=latent_avg, id_embed=id_embed)
        rows.append(row)
        details[name] = info
    return AccuracyComparison(dict(groups), group_of, names, portraits, runs, rows, scored,
                              scored & portrait.found, details)


# --------------------------------------------------------------------------------------------
# figure helpers (Fig. 4 grid rows, Fig. 5 close-ups)


def group_grid_rows(
    comparison: AccuracyComparison, methods: Sequence[str], *, size: int | None = None
) -> tuple[list[list[torch.Tensor]], list[str], list[str]]:
    """Fig. 4 grid: a row of portraits, then a row of faces per method; one column per portrait.

    Columns run through the groups in order, labelled "<group> <index>", so a person's portraits
    and their faces stand side by side. Every image is resized to ``size`` (default: the
    portraits' size). Returns (rows of [3, size, size] images, row labels, column labels).
    """
    size = size or comparison.portraits.shape[-1]
    rows = [list(_resize(comparison.portraits, size))]
    rows += [list(_resize(comparison.runs[m].faces, size)) for m in methods]
    return rows, ["portrait", *methods], [n.replace("/", " ") for n in comparison.names]


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] > size:
        return pool(images, size)
    if images.shape[-1] < size:
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images


#: Fig. 5 close-up regions, as 68-landmark index ranges (iBUG): eyes + brows, mouth.
REGIONS = {"eyes": tuple(range(17, 27)) + tuple(range(36, 48)), "mouth": tuple(range(48, 68))}
# Fallback boxes (top, bottom, left, right as fractions) for FFHQ-aligned faces without landmarks.
_FFHQ_BOXES = {"eyes": (0.26, 0.58, 0.18, 0.82), "mouth": (0.60, 0.88, 0.22, 0.78)}


def closeup_boxes(
    portrait: torch.Tensor, *, margin: float = 0.15, aspect: float = 2.0
) -> dict[str, tuple[float, float, float, float]]:
    """Fig. 5 crop boxes of a square portrait [3, S, S]: ``{region: (top, bottom, left, right)}``.

    Each box encloses the region's dlib landmarks (:data:`REGIONS`) plus ``margin`` of their
    width on each side, grown to ``aspect`` (width / height) about its centre; values are
    fractions of the image side (may pass 0 or 1 near the border: :func:`crop_region` pads).
    Portrait and face share the FFHQ alignment, so the same box cuts the same part of both.
    Without a detected face, fixed boxes of the FFHQ layout are used.
    """
    try:
        landmarks, _ = detect_landmarks(to_uint8(portrait), source="portrait")
    except NoFaceError:
        return dict(_FFHQ_BOXES)
    side = portrait.shape[-1]
    boxes = {}
    for region, index in REGIONS.items():
        pts = landmarks[list(index)] / side
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        width = (x1 - x0) * (1 + 2 * margin)
        height = max(width / aspect, (y1 - y0) * (1 + 2 * margin))
        width = height * aspect
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        boxes[region] = (float(cy - height / 2), float(cy + height / 2),
                         float(cx - width / 2), float(cx + width / 2))
    return boxes


def crop_region(
    image: torch.Tensor, box: tuple[float, float, float, float], *, height: int = 48, width: int | None = None
) -> torch.Tensor:
    """Cut ``box`` (fractions, :func:`closeup_boxes`) out of image [3, H, W], resized (bilinear)
    to [3, height, width] (width default: keep the box's aspect). Parts outside the image are
    taken from the nearest border pixel."""
    h, w = image.shape[-2:]
    top, bottom, left, right = box
    r0, c0 = int(round(top * h)), int(round(left * w))
    r1, c1 = max(int(round(bottom * h)), r0 + 1), max(int(round(right * w)), c0 + 1)
    pad = max(0, -r0, -c0, r1 - h, c1 - w)
    padded = F.pad(image.unsqueeze(0).float(), (pad,) * 4, mode="replicate") if pad else image.unsqueeze(0).float()
    patch = padded[:, :, r0 + pad : r1 + pad, c0 + pad : c1 + pad]
    width = width or max(1, round(height * patch.shape[-1] / patch.shape[-2]))
    return F.interpolate(patch, size=(height, width), mode="bilinear", align_corners=False)[0]


def closeup_rows(
    comparison: AccuracyComparison,
    methods: Sequence[str],
    *,
    index: int = 1,
    height: int = 48,
) -> tuple[list[list[torch.Tensor]], list[str], list[str]]:
    """Fig. 5 grid: per group, portrait ``index`` and each method's face as eyes-over-mouth tiles.

    Each tile stacks the eyes crop over the mouth crop (:func:`closeup_boxes` of the portrait,
    each resized to [height, 2 height]): a square [3, 2 height, 2 height]. Faces are resized to
    the portrait's size first. Returns (rows of tiles, row labels "<group> #<index>", column
    labels "portrait" + methods).
    """
    size = comparison.portraits.shape[-1]
    rows, labels = [], []
    for group, portraits in comparison.groups.items():
        i = min(index, portraits.shape[0] - 1)
        portrait = portraits[i]
        faces = [_resize(comparison.faces(m, group)[i : i + 1], size)[0] for m in methods]
        boxes = closeup_boxes(portrait)
        rows.append([torch.cat([crop_region(img, boxes[r], height=height, width=2 * height) for r in REGIONS], dim=1)
                     for img in (portrait, *faces)])
        labels.append(f"{group} #{i}")
    return rows, labels, ["portrait", *methods]
