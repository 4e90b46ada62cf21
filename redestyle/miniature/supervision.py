"""DualStyleGAN supervision on the miniature world (paper §4.4): are Re-Destyle's codes valid training
codes for DualStyleGAN, compared with the optimisation baseline's?

Two runs, one difference
------------------------
Both runs fine-tune the ``mini`` DualStyleGAN (:func:`redestyle.train.build_train_models`: the world's
generator as the intrinsic path, seeded ``res`` / T_s, the world's loss networks) from the **same
start** (same seed), with the **same** trainer seed, schedule (:func:`~redestyle.train.paper_finetune_config`
at ``loss_size`` 64) and budget, on the **same style set**: :data:`N_STYLES` portrait renders of the
training stream ``seeds.training_seed("dsg_style", seed)`` (never an evaluation seed). Only the codes
differ (:data:`CODE_KINDS`):

* ``redestyle``: Re-Destyle 5-3-1 (``train.data.destylized_pairs``): W+ codes, z_e = round 1,
  z_i = the last round;
* ``baseline``: DualStyleGAN's optimisation (``destylize.baseline``, 300 Adam steps through g', the
  world's ID and LPIPS networks, each portrait optimised on its own in one joint batch): z+ codes,
  z_e = the z+ encoder's code of the portrait (``exstyle_code.npy``), z_i = the re-encoded render.

Destylizing the style set with the baseline costs ~7 s per portrait on one loaded core, so each
kind's codes are cached in one ``.npz`` (:func:`style_codes`) that both runs and every resume reuse.
:func:`train_stage` runs one kind resumably: the full state (``dsg_<kind>-state.pt``: the trainer's
checkpoint, exact resume) in the working folder, and a small carry (``dsg_<kind>-carry.pt``: float16
``res``, T_s and D, the random streams and the log, no Adam moments) meant to be committed to
``states/miniature`` (its README), then ``dsg_<kind>.pt`` (``{"g_ema"}``, what ``redestyle transfer
--ckpt`` loads) and ``dsg_<kind>.json`` (command, seed, steps, wall time, losses).

The measurement
---------------
:func:`evaluate_supervision`: every content face (true photos of held-out identities,
``protocol.heldout_set``) x every exemplar portrait (:func:`exemplars`, an evaluation seed), stylised by
each fine-tuned generator (:func:`transfer_outputs`: ``style_transfer.py`` semantics), is judged by the
oracle, which no method optimises:

- ``identity``: the content's identity survives: identity-parameter error (13 parameters, range units)
  of the oracle's reading of the output's destylized face (one fixed ``destylize`` for every method)
  against the content's true parameters;
- ``identity_shape``: the same over the 7 geometric parameters only (head and feature shapes): at
  colour weight 1 the colours are meant to follow the exemplar;
- ``identity_auc``: whether the output still names its content among all contents: for each output,
  the share of the other contents whose true identity lies farther from its reading than its own
  content's (ties half; 0.5: chance, 1: always its own). Rank-based, so a misreading shared by
  all of the generator's blurred faces weighs less here than in the errors above: with the shipped
  generator at step 0 the unstyled faces' geometric error (0.41) is worse than a copied exemplar's
  (another person, 0.36) and their 13-parameter error (0.26) not far below it (0.32), while this
  measure puts them at 0.79-0.83 against the copy's 0.50 (states/miniature/README.md);
- ``exemplar_colour``: error of the destylized output's skin and hair colours against the
  destylized exemplar's, both read by the oracle (the colour path T_c transfers them; the
  portrait domain snaps colours to its palette, so the exemplar's true parameters are not what a
  destylizer can recover: the destylized exemplar is the attainable answer, and a copy scores 0);
- ``style_fd``: Fréchet distance of the outputs themselves to :data:`N_REFERENCE` portrait renders on
  the oracle's features projected onto the portrait renders' top principal components (as
  ``protocol``'s realism distance, in the portrait domain): how much the outputs look like the
  world's portraits. Biased upward at small n; compare methods with each other (paired rows).

Intervals are bootstrap percentile intervals over content identities (``redestyle.stats``; an
identity's outputs for every exemplar move together), and ``paired`` holds each method minus
``baseline`` on the same resamples.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .. import stats, zoo
from ..checkpoints import save_codes
from ..config import get_profile
from ..destylize import DestyleOptions, make_destylizer
from ..fileio import atomic_write, save_atomic, save_json
from ..imaging import to_tensor, to_uint8, to_uint8_batch
from ..train import loop
from ..train.config import paper_finetune_config
from ..train.data import PairedSet, RealBatches, destylized_pairs
from ..train.models import build_train_models, load_dualstylegan, save_generator
from ..train.trainer import Trainer
from ..transfer import encode_content, stylize
from . import models as mini_models
from . import oracle as orc
from . import protocol, seeds, world
from .render import IDENTITY_RANGES

CODE_KINDS = ("redestyle", "baseline")
#: Style set size of the §4.4 runs (portrait renders of the "dsg_style" training stream).
N_STYLES = 48
#: Evaluation seed of the exemplar portraits (seeds.EVALUATION_SETS).
EXEMPLAR_SEED = seeds.EVALUATION_SETS["DualStyleGAN supervision: exemplar portraits"]
N_EXEMPLARS = 8
#: The measure's sets: name -> (content identities, exemplars). "full": the README's numbers
#: (``measure`` CLI, ``dsg_supervision.json``); "quick": a short run for notebook 04 under nbval.
SETS = {"quick": (6, 4), "full": (protocol.N_PEOPLE, N_EXEMPLARS)}
#: Portrait renders of the style Fréchet distance (seeds.EVALUATION_SETS' Fréchet portrait set).
N_REFERENCE = 1000
REFERENCE_SEED = seeds.EVALUATION_SETS["Fréchet: portrait renders"]
BASELINE_STEPS = 300

_SHAPE = tuple(IDENTITY_RANGES)
_COLOUR = ("skin_r", "skin_g", "skin_b", "hair_r", "hair_g", "hair_b")


# ---------------------------------------------------------------------------------------------
# The style set and its codes


def style_set(n: int = N_STYLES, *, seed: int = 0, size: int = 64) -> tuple[list[str], Tensor, np.ndarray]:
    """The §4.4 style set: ``n`` portrait renders of the training stream "dsg_style" for ``seed``.

    Returns (names ``style_0000.png`` ..., portraits [n, 3, size, size] in [-1, 1], true vectors [n, 22]).
    """
    images, vectors = world.render_set(n, domain="portrait", seed=seeds.training_seed("dsg_style", seed),
                                       size=size)
    return [f"style_{k:04d}.png" for k in range(n)], to_tensor(images), vectors


def destylize_codes(kind: str, models, portraits: Tensor, *, baseline_steps: int = BASELINE_STEPS,
                    seed: int = 0, batch: int = 8) -> dict[str, np.ndarray]:
    """Codes of ``portraits`` [N, 3, S, S] by ``kind`` -> ``{"z_e", "z_i"}`` float32 [N, n_latent, D].

    redestyle: W+ (``destylized_pairs``, 5-3-1); baseline: z+ (``make_destylizer`` with 300 steps and
    joint batches of ``batch``: each portrait still optimised on its own, with noise seeded by
    ``seed`` and the portrait). models: ``zoo.build_models("mini", methods=["restyle_psp",
    "dsg_zplus"], g_prime_style=..., with_lpips=True, with_id=True)``.
    """
    if kind == "redestyle":
        pairs = destylized_pairs(models, {str(k): portraits[k : k + 1] for k in range(len(portraits))})
        return {"z_e": pairs.exstyle.numpy(), "z_i": pairs.instyle.numpy()}
    if kind != "baseline":
        raise ValueError(f"unknown code kind {kind!r}; known: {', '.join(CODE_KINDS)}")
    run = make_destylizer(models, DestyleOptions(method="baseline", steps=baseline_steps, joint_batch=True),
                          seed=seed)
    z_e, z_i = [], []
    for start in range(0, len(portraits), batch):
        out = run(portraits[start : start + batch])
        z_e.append(out.z_e.detach().float().cpu())
        z_i.append(out.z_i.detach().float().cpu())
    return {"z_e": torch.cat(z_e).numpy(), "z_i": torch.cat(z_i).numpy()}


def code_space(kind: str) -> str:
    """The latent space of a kind's codes: W+ (Re-Destyle) or z+ (the baseline)."""
    return {"redestyle": "W+", "baseline": "z+"}[kind]


def style_codes(kind: str, portraits: Tensor, *, cache: Path | None, models=None, **kwargs) -> dict[str, np.ndarray]:
    """:func:`destylize_codes`, kept in the ``.npz`` ``cache`` (read back when present; ``models`` is
    built only when the codes must be made: mini, with everything the baseline needs)."""
    def make() -> dict[str, np.ndarray]:
        m = models if models is not None else baseline_models()
        start = time.perf_counter()
        codes = destylize_codes(kind, m, portraits, **kwargs)
        return {**codes, "seconds": np.float64(time.perf_counter() - start)}

    return world.cached_arrays(cache, make)


def baseline_models(seed: int = 0):
    """The ``mini`` bundle both kinds of codes (and content encodings) need."""
    return zoo.build_models("mini", methods=["restyle_psp", "dsg_zplus"], seed=seed, with_lpips=True,
                            with_id=True, g_prime_style=zoo.default_style("mini"))


def paired_set(kind: str, names: list[str], portraits: Tensor, codes: Mapping[str, np.ndarray],
               generator) -> PairedSet:
    """The trainer's paired set: z+ extrinsic codes are mapped once per layer (``mapping_plus`` of the
    intrinsic generator), as the official script maps ``exstyle_code.npy``; W+ codes as they are."""
    z_e = torch.from_numpy(np.asarray(codes["z_e"], np.float32))
    z_i = torch.from_numpy(np.asarray(codes["z_i"], np.float32))
    space = code_space(kind)
    if space == "z+":
        with torch.no_grad():
            z_e = generator.mapping_plus(z_e)
    return PairedSet(list(names), to_uint8_batch(portraits), z_e, z_i, space)


# ---------------------------------------------------------------------------------------------
# Training: one kind, resumable, with a small committed carry


def make_trainer(kind: str, names: list[str], portraits: Tensor, codes: Mapping[str, np.ndarray], *,
                 iters: int, batch: int = 4, seed: int = 0) -> Trainer:
    """The §4.4 trainer of one code kind: mini models seeded by ``seed`` (the same start for every
    kind), the paper's fine-tuning setting with ``iters`` iterations at ``batch``, losses at 64 px,
    D on the style set (``portraits`` [N, 3, 64, 64], ``codes`` of :func:`style_codes`)."""
    torch.manual_seed(seed)
    models = build_train_models("mini", seed=seed)
    pairs = paired_set(kind, names, portraits, codes, models.generator.generator)
    config = paper_finetune_config(iter=iters, batch=batch, loss_size=64, save_begin=iters, seed=seed,
                                   space=pairs.space)
    return Trainer(models, config, real=RealBatches(pairs.images, batch, seed=seed), paired=pairs)


def _trained(trainer: Trainer) -> dict[str, torch.nn.Module]:
    """What fine-tuning changes: G's ``res`` and T_s, g_ema's ``res`` (and T_s), D."""
    return {"g.res": trainer.g.res, "g.style": trainer.g.style, "g_ema.res": trainer.g_ema.res,
            "g_ema.style": trainer.g_ema.style, "d": trainer.d}


def carry(trainer: Trainer, *, elapsed: float, log: list[dict]) -> dict:
    """A small resumable state: the trained modules in float16, the random streams, ADA, the step, the
    log rows and the elapsed seconds (no Adam moments; the frozen intrinsic generator is not stored)."""
    full = trainer.checkpoint()
    return {"format": 1, "step": trainer.step, "elapsed": elapsed, "log": log,
            "modules": {k: {n: v.half() if v.is_floating_point() else v for n, v in m.state_dict().items()}
                        for k, m in _trained(trainer).items()},
            "streams": full["streams"], "ada": full["ada"]}


def load_carry(trainer: Trainer, payload: dict) -> tuple[float, list[dict]]:
    """Restore :func:`carry` into a fresh trainer of the same run -> (elapsed seconds, log rows)."""
    for k, m in _trained(trainer).items():
        m.load_state_dict({n: v.float() if v.is_floating_point() else v for n, v in payload["modules"][k].items()})
    trainer.step = int(payload["step"])
    stream = payload["streams"][0]
    trainer.rng.set_state(stream["rng"])
    trainer.real.load_state_dict(stream["real"])
    trainer.mean_path_length = stream["mean_path_length"].clone()
    if trainer.ada is not None and payload.get("ada"):
        trainer.ada.load_state_dict(payload["ada"])
    return float(payload["elapsed"]), list(payload["log"])


@dataclass
class StagePaths:
    """Files of one kind's run: working state and codes cache (``out``), carry (``carry_dir``)."""

    out: Path
    carry_dir: Path | None
    kind: str

    @property
    def state(self) -> Path:
        return self.out / f"dsg_{self.kind}-state.pt"

    @property
    def carry(self) -> Path | None:
        return None if self.carry_dir is None else self.carry_dir / f"dsg_{self.kind}-carry.pt"


def train_stage(trainer: Trainer, paths: StagePaths, *, steps: int, log_every: int = 10, save_every: int = 50,
                on_log: Callable[[dict], None] | None = None) -> tuple[list[dict], float]:
    """Run ``trainer`` to ``steps`` iterations, resuming from ``paths.state`` (exact) or else from
    ``paths.carry`` (Adam moments afresh); every ``save_every`` iterations and at the end write both.

    Log rows (every ``log_every`` iterations and the last): step, seconds, the mean of each loss over
    the rows' iterations. Returns (log rows, elapsed seconds over every resumed piece).
    """
    elapsed, log = 0.0, []
    if paths.state.exists():
        payload = torch.load(paths.state, map_location="cpu", weights_only=False)
        trainer.load(payload)
        elapsed, log = float(payload["elapsed"]), list(payload["log"])
    elif paths.carry is not None and paths.carry.exists():
        elapsed, log = load_carry(trainer, torch.load(paths.carry, map_location="cpu", weights_only=False))
    t0 = time.perf_counter() - elapsed
    acc: dict[str, list[float]] = {}

    def log_rows(done: int, losses: dict) -> None:
        for k, v in losses.items():
            if k != "step":
                acc.setdefault(k, []).append(float(v))
        if done % log_every == 0 or done == steps:
            row = {"step": done, "seconds": round(time.perf_counter() - t0, 1),
                   **{k: round(float(np.mean(v)), 5) for k, v in acc.items()}}
            log.append(row)
            acc.clear()
            if on_log is not None:
                on_log(row)

    def save(done: int, losses: dict) -> None:
        if done % save_every == 0 or done == steps:
            seconds = time.perf_counter() - t0
            save_atomic({**trainer.checkpoint(), "elapsed": seconds, "log": log}, paths.state)
            if paths.carry is not None:
                save_atomic(carry(trainer, elapsed=seconds, log=log), paths.carry)

    loop.train_loop(trainer, steps, [log_rows, save])
    return log, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# The measurement


def exemplars(n: int = N_EXEMPLARS, *, seed: int = EXEMPLAR_SEED, size: int = 64) -> tuple[Tensor, np.ndarray]:
    """Exemplar portraits of an evaluation seed -> ([n, 3, S, S] in [-1, 1], true vectors [n, 22])."""
    return world.photo_renders(n, seed=seed, size=size, domain="portrait")


@torch.no_grad()
def transfer_outputs(generator, contents: Tensor, exstyles: Tensor, *, space: str, **kwargs) -> Tensor:
    """Every content code x every exemplar code -> outputs [C, E, 3, S, S] in [-1, 1].

    contents: intrinsic codes [C, n_latent, D] in ``space`` (the space the generator was fine-tuned in);
    exstyles: extrinsic codes [E, n_latent, D] in W+ (a PairedSet's, z+ already mapped). kwargs: as
    ``transfer.stylize`` (default ``style_transfer.py``'s weights 0.75 / 1 and truncation 0.75).
    """
    rows = [stylize(generator, contents[c : c + 1].expand(len(exstyles), -1, -1), exstyles,
                    instyle_space=space, exstyle_space="W+", **kwargs) for c in range(len(contents))]
    return torch.stack(rows)


def portrait_reference(oracle: orc.AttributeRegressor, *, n: int = N_REFERENCE, seed: int = REFERENCE_SEED,
                       dims: int = protocol.PCA_DIMS) -> protocol.RealismReference:
    """The style distance's reference: ``n`` portrait renders of ``seed`` on the oracle's features,
    projected onto their top ``dims`` principal components (``protocol.realism_reference`` in the
    portrait domain)."""
    return protocol.realism_reference(oracle, n=n, seed=seed, dims=dims, domain="portrait")


#: The §4.4 metrics in table order, with the tolerances a re-run is checked with (``protocol.Metric``:
#: |fresh - recorded| <= abs + rel x |recorded|). Every output here is a forward pass of fixed networks
#: (the fine-tuned generators are files; no optimisation runs in the measure), so paired rows get the
#: same tolerance as the rows (``loose`` = ``tolerance``): the protocol's values for forward-only methods.
METRICS: tuple[protocol.Metric, ...] = tuple(protocol.Metric(name, better, text, tol, tol) for name, better, text, tol in (
    ("identity", "lower", "content identity error of the destylized output (13 parameters, range units)", (0.01, 0.0)),
    ("identity_shape", "lower", "the same over the 7 geometric parameters", (0.01, 0.0)),
    ("identity_auc", "higher", "share of other contents farther from the output's identity reading than its own",
     (0.03, 0.0)),
    ("exemplar_colour", "lower", "skin and hair colour error against the exemplar's (range units)", (0.01, 0.0)),
    ("style_fd", "lower", f"Fréchet distance of the outputs to portrait renders ({protocol.PCA_DIMS} PCs)",
     (1.0, 0.1)),
))
_BETTER = {m.name: m.better for m in METRICS}


def supervision_statistics(output_features: np.ndarray, face_vectors: np.ndarray, content_truth: np.ndarray,
                           exemplar_vectors: np.ndarray, reference: protocol.RealismReference) -> dict[str, stats.Statistic]:
    """Each metric of :data:`METRICS` (by name) as a function of content-identity counts ([B, C] -> [B]).

    Rows are content-major (row c * E + e: content c, exemplar e). output_features: the oracle's
    features of the outputs [C * E, 128]; face_vectors: its reading of their destylized faces
    [C * E, 22]; content_truth [C, 22]: the contents' true vectors; exemplar_vectors [E, 22]: the
    oracle's reading of the destylized exemplars (the colour answer).
    """
    n_c, n_e = len(content_truth), len(exemplar_vectors)
    if len(face_vectors) != n_c * n_e or len(output_features) != n_c * n_e:
        raise ValueError(f"{n_c} contents x {n_e} exemplars need {n_c * n_e} rows, got "
                         f"{len(face_vectors)} readings and {len(output_features)} feature rows")
    content = np.repeat(np.arange(n_c), n_e)
    exemplar = np.tile(np.arange(n_e), n_c)
    pred = orc.normalise(face_vectors).astype(np.float64)
    c_true = orc.normalise(content_truth).astype(np.float64)[content]
    e_true = orc.normalise(exemplar_vectors).astype(np.float64)[exemplar]
    per_row = {"identity": orc.abs_errors(pred, c_true, orc.IDENTITY).mean(1),
               "identity_shape": orc.abs_errors(pred, c_true, _SHAPE).mean(1),
               "exemplar_colour": orc.abs_errors(pred, e_true, _COLOUR).mean(1)}
    ident = [orc.COLUMNS[n] for n in orc.IDENTITY]
    truth = orc.normalise(content_truth).astype(np.float64)[:, ident]
    dist = np.abs(pred[:, None, ident] - truth[None]).mean(2)  # [rows, C]: reading vs every content
    own = dist[np.arange(len(dist)), content][:, None]
    others = np.ones_like(dist, dtype=bool)
    others[np.arange(len(dist)), content] = False
    diff = np.round(dist - own, 9)  # ties at rounding level count half
    beaten = (diff > 0) + 0.5 * (diff == 0)
    per_row["identity_auc"] = (beaten * others).sum(1) / max(n_c - 1, 1)
    out = {k: stats.weighted_mean(v.reshape(n_c, n_e).mean(1)) for k, v in per_row.items()}
    # the protocol's Fréchet statistic: a content identity's rows are weighted by its resample count
    out["style_fd"] = protocol.frechet(reference.project(output_features), content, reference)
    return out


@dataclass
class SupervisionResult:
    """Rows (method, metric, value, lo, hi, better) and paired rows (method - baseline)."""

    rows: list[dict]
    paired: list[dict]
    n_contents: int
    n_exemplars: int
    n_resamples: int
    seed: int
    level: float
    #: what was scored (:func:`measure` fills them; figures): method -> outputs [C, E, 3, S, S],
    #: the content photos [C, 3, S, S] and the exemplar portraits [E, 3, S, S], all in [-1, 1]
    outputs: dict[str, Tensor] = field(default_factory=dict, repr=False)
    contents: Tensor | None = field(default=None, repr=False)
    exemplars: Tensor | None = field(default=None, repr=False)


#: The set sizes of a §4.4 record (``protocol.compare_records``' ``sizes``).
RECORD_SIZES = ("n_contents", "n_exemplars", "n_resamples", "seed", "level")


def record(result: SupervisionResult, **extra) -> dict:
    """``result`` as plain JSON-ready data (set sizes + ``extra`` + rows and paired rows): what
    ``measure`` writes (``dsg_supervision.json``, ``figures/supervision_<set>.json``) and
    :func:`compare_records` compares."""
    return {**{k: getattr(result, k) for k in RECORD_SIZES}, **extra, **protocol.record_rows(result.rows, result.paired)}


def compare_records(fresh: Mapping, recorded: Mapping) -> tuple[int, list[str]]:
    """``protocol.compare_records`` with the §4.4 metrics' tolerances and set sizes."""
    return protocol.compare_records(fresh, recorded, optimised=(), metrics=METRICS, sizes=RECORD_SIZES)


def evaluate_supervision(outputs_by_method: Mapping[str, Tensor], destylize: Callable[[Tensor], Tensor],
                         content_truth: np.ndarray, exemplar_portraits: Tensor, oracle: orc.AttributeRegressor, *,
                         reference: protocol.RealismReference | None = None, baseline: str | None = "baseline",
                         n_resamples: int = stats.N_RESAMPLES, seed: int = 0, level: float = 0.95) -> SupervisionResult:
    """Score each method's style-transfer outputs (module docstring) with intervals over content identities.

    outputs_by_method: name -> [C, E, 3, S, S] in [-1, 1] (:func:`transfer_outputs`; the same contents
    and exemplars for every method); destylize: images [N, 3, S, S] -> destylized faces [N, 3, S', S']
    (one destylizer for every method, e.g. Re-Destyle 5-3-1); content_truth: true vectors [C, 22];
    exemplar_portraits: [E, 3, S, S] (destylized and read once: the colour answer); reference: :func:`portrait_reference`
    (None: built with its defaults). Paired rows: each method minus ``baseline`` on the same resamples.
    """
    n_c, n_e = len(content_truth), len(exemplar_portraits)
    reference = reference if reference is not None else portrait_reference(oracle)
    with torch.no_grad():
        exemplar_vectors = protocol.read_faces(oracle, destylize(exemplar_portraits)).vectors
    counts = stats.bootstrap_counts(n_c, n_resamples=n_resamples, seed=seed)
    per_method = {}
    for name, outputs in outputs_by_method.items():
        if tuple(outputs.shape[:2]) != (n_c, n_e):
            raise ValueError(f"method {name!r}: outputs {tuple(outputs.shape[:2])}, expected ({n_c}, {n_e}) "
                             f"contents x exemplars")
        flat = outputs.reshape(n_c * n_e, *outputs.shape[2:])
        with torch.no_grad():
            faces = destylize(flat)
        per_method[name] = supervision_statistics(protocol.read_faces(oracle, flat).features,
                                                  protocol.read_faces(oracle, faces).vectors,
                                                  content_truth, exemplar_vectors, reference)
    rows = [{"method": m, "metric": k, **stats.estimate(stat[k], counts, level=level), "better": _BETTER[k]}
            for m, stat in per_method.items() for k in _BETTER]
    paired = []
    if baseline is not None and baseline in per_method:
        base = per_method[baseline]
        paired = [{"method": m, "metric": k, "baseline": baseline,
                   **stats.paired_estimate(stat[k], base[k], counts, level=level), "better": _BETTER[k]}
                  for m, stat in per_method.items() if m != baseline for k in _BETTER]
    return SupervisionResult(rows, paired, n_c, n_e, n_resamples, seed, level)


def exemplar_codes(kind: str, models, portraits: Tensor) -> Tensor:
    """Extrinsic codes of exemplar portraits [E, 3, S, S] as ``kind`` makes them, in W+ [E, n_latent, D].

    redestyle: Re-Destyle 5-3-1's z_e (round 1); baseline: the z+ encoder's code of the portrait
    (what ``destylize.baseline`` writes as z_e, before any optimisation) mapped per layer.
    """
    with torch.no_grad():
        if kind == "redestyle":
            return make_destylizer(models, DestyleOptions())(portraits).z_e
        return models.generator.mapping_plus(models.encode_zplus(portraits))


def content_codes(kind: str, models, photos: Tensor) -> Tensor:
    """Intrinsic codes of content photos [C, 3, S, S] in ``code_space(kind)``, as each pipeline encodes a
    content face (``transfer.encode_content``: ReStyle-pSp 5 iterations for W+, the z+ encoder for z+)."""
    with torch.no_grad():
        return encode_content(models, photos, space=code_space(kind))


def set_sizes(name: str) -> tuple[int, int]:
    """(content identities, exemplars) of a measure set (:data:`SETS`); ValueError names the known ones."""
    if name not in SETS:
        raise ValueError(f"supervision set must be {' or '.join(map(repr, SETS))}, got {name!r}")
    return SETS[name]


def measure(generators: Mapping[str, torch.nn.Module], models, *, n_people: int = protocol.N_PEOPLE,
            n_exemplars: int = N_EXEMPLARS, n_reference: int = N_REFERENCE, n_resamples: int = stats.N_RESAMPLES,
            seed: int = 0, reference_rows: bool = True) -> SupervisionResult:
    """The §4.4 comparison of fine-tuned generators (kind -> DualStyleGAN, each fine-tuned on that kind's
    codes): contents = the true photo of the first portrait of each of ``n_people`` held-out identities
    (``protocol.heldout_set``), exemplars = :func:`exemplars`, each encoded as its own pipeline does;
    outputs destylized by Re-Destyle 5-3-1 for every kind; paired rows: each kind minus ``baseline``.
    ``reference_rows``: also "<kind>, weight 0" (every interpolation weight 0: the content's
    intrinsic-only face, no style) and "exemplar (copy)" (the exemplar as the output: full style,
    the content's identity at chance), which bracket each measure."""
    pset = protocol.heldout_set(n_people)  # the protocol's identities; their first portrait's photo
    first = np.arange(0, len(pset.params), protocol.PER_PERSON)
    photos, content_truth = pset.photos[first], pset.vectors[first]
    ex, _ = exemplars(n_exemplars)
    outputs = {}
    for kind, g in generators.items():
        contents, exstyles = content_codes(kind, models, photos), exemplar_codes(kind, models, ex)
        outputs[kind] = transfer_outputs(g.eval(), contents, exstyles, space=code_space(kind))
        if reference_rows:  # every weight 0: the intrinsic-only face, the transfer's identity ceiling
            outputs[f"{kind}, weight 0"] = transfer_outputs(g, contents, exstyles, space=code_space(kind),
                                                            structure_weight=0.0, color_weight=0.0)
    if reference_rows:  # the exemplar itself for every content: the style ceiling, identity at chance
        outputs["exemplar (copy)"] = ex[None].expand(len(photos), -1, -1, -1, -1)
    oracle = world.load_oracle()
    destylize = make_destylizer(models, DestyleOptions())
    result = evaluate_supervision(outputs, lambda x: destylize(x).image, content_truth, ex, oracle,
                                  reference=portrait_reference(oracle, n=n_reference), n_resamples=n_resamples,
                                  seed=seed)
    result.outputs, result.contents, result.exemplars = outputs, photos, ex
    return result


# ---------------------------------------------------------------------------------------------
# Shipping the Re-Destyle run as the mini profile's DualStyleGAN (``redestyle transfer`` defaults)


def where_ran(threads: int) -> str:
    """Where a stage ran, for its record: the CPU and the thread count (this module trains on CPUs)."""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # Linux: platform.processor() is often empty there
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return f"CPU ({platform.machine()}, {model or 'unknown model'}), {threads} thread(s)"


def ship(carry_dir: str | Path, dest: str | Path | None = None, *, command: str, where: str | None = None,
         n_check: int = 4) -> dict:
    """Ship the finished Re-Destyle run (``carry_dir/dsg_redestyle.pt`` / ``.json`` and its codes file)
    as the ``mini`` profile's DualStyleGAN (``miniature.models.dualstylegan_files``) in ``dest``
    (default ``models.WEIGHTS_DIR``): ``dsg_redestyle.pt`` (g_ema in float16), the folder
    ``dsg_redestyle/`` (the style set's z_e as ``exstyle_code.npy`` + ``codes_meta.json``, and
    ``content.png``, the true photo of the held-out protocol's first portrait: content 0 of
    :func:`measure`) and the record ``dsg_redestyle.json`` (the training record + ``where`` + how it
    was shipped, with the largest output change float16 makes, in [-1, 1] units, over ``n_check``
    style-set contents x every exemplar). Returns the record.
    """
    carry_dir = Path(carry_dir)
    dest = Path(dest) if dest is not None else mini_models.WEIGHTS_DIR
    name = mini_models.DUALSTYLEGAN
    trained = json.loads((carry_dir / f"{name}.json").read_text())
    g = load_dualstylegan(carry_dir / f"{name}.pt", "mini")
    codes = np.load(carry_dir / trained["codes"]["file"])
    # the intrinsic generator is the shipped (float16) generator.pt: only res / T_s lose digits here
    save_atomic({"g_ema": {k: v.half() if v.is_floating_point() else v for k, v in g.state_dict().items()}},
                dest / f"{name}.pt")
    z_e, z_i = (torch.from_numpy(np.asarray(codes[k], np.float32)) for k in ("z_e", "z_i"))
    shipped = load_dualstylegan(dest / f"{name}.pt", "mini")
    change = float((transfer_outputs(shipped, z_i[:n_check], z_e, space="W+")
                    - transfer_outputs(g, z_i[:n_check], z_e, space="W+")).abs().max())
    folder = dest / name
    names = style_set(len(z_e), seed=trained["seed"], size=8)[0]  # the names only (tiny renders)
    save_codes(folder / "exstyle_code.npy", {n: z_e[k : k + 1].numpy() for k, n in enumerate(names)})
    gc = get_profile("mini").generator
    save_json(folder / "codes_meta.json", {
        **DestyleOptions().meta(), "profile": "mini", "n_latent": gc.n_latent, "style_dim": gc.style_dim,
        "pretrained": True, "format": "np.save dict {file name: float32 (1, n_latent, style_dim)}",
        "style_set": f"{len(names)} portrait renders of the training stream dsg_style = "
                     f"{trained['style_stream_seed']} (miniature.supervision.style_set)",
        "made_from": trained["codes"]["file"]})
    photo = protocol.heldout_set(2).photos[0]
    with atomic_write(folder / mini_models.SAMPLE_CONTENT) as f:
        Image.fromarray(to_uint8(photo)).save(f, format="PNG")
    record = {key: trained[key] for key in ("stage", "seed", "steps", "command", "seconds")}
    # the loss means of the last log row (its step and seconds are the record's own fields)
    record["final_losses"] = {k: v for k, v in (trained["final_losses"] or {}).items() if k not in ("step", "seconds")}
    record["extra"] = {**{k: v for k, v in trained.items() if k not in record and k != "where"},
                       "where": where or trained.get("where") or "not recorded",
                       "shipped": {"command": command, "dtype": "float16 (g_ema; trained in float32)",
                                   "max_abs_output_change": round(change, 5),
                                   "codes": f"{name}/exstyle_code.npy (z_e of the style set, W+)",
                                   "content": f"{name}/{mini_models.SAMPLE_CONTENT} (protocol.heldout_set "
                                              f"photo 0)"}}
    save_json(dest / f"{name}.json", record)
    return record


# ---------------------------------------------------------------------------------------------
# CLI: python -m redestyle.miniature.supervision train --codes redestyle|baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redestyle.miniature.supervision",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["train", "codes", "measure", "ship"],
                        help="codes: only make (and cache) the codes; measure: compare the trained dsg_<kind>.pt; "
                        "ship: copy the Re-Destyle run (float16) and its codes into the mini weights (--dest)")
    parser.add_argument("--codes", choices=CODE_KINDS, help="train / codes: which kind of codes")
    parser.add_argument("--set", default="full", choices=list(SETS),
                        help="measure: contents x exemplars, quick 6 x 4 or full 30 x 8 (default full)")
    parser.add_argument("--n-resamples", type=int, default=stats.N_RESAMPLES, help="measure: bootstrap resamples")
    parser.add_argument("--record", default=None, help="measure: the JSON record (default <carry>/dsg_supervision.json)")
    parser.add_argument("--steps", type=int, default=1500, help="fine-tuning iterations (the budget; the paper's 1500)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--n-styles", type=int, default=N_STYLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-steps", type=int, default=BASELINE_STEPS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--out", default=".cache/miniature/supervision", help="working folder (full states)")
    parser.add_argument("--carry", default=None, help="folder of the small committed states and the codes")
    parser.add_argument("--dest", default=None, help="ship: where the mini weights go (default: the mini profile's "
                        "weights folder)")
    parser.add_argument("--where", default=None, help="ship: where the training ran, for the record (default: "
                        "the training record's)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # 64 px batches: one thread is the fast setting (finetune_speed.py)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keep = Path(args.carry) if args.carry else out
    keep.mkdir(parents=True, exist_ok=True)
    if args.action == "measure":
        return _main_measure(args, argv, keep)
    if args.action == "ship":
        missing = [f for f in (keep / "dsg_redestyle.pt", keep / "dsg_redestyle.json") if not f.exists()]
        if missing:
            print(f"redestyle supervision: {missing[0]}: no finished Re-Destyle run to ship (run `train --codes "
                  f"redestyle` first)", file=sys.stderr)
            return 1
        record = ship(keep, args.dest, command="python -m redestyle.miniature.supervision " + shlex.join(argv),
                      where=args.where)
        print(f"shipped {record['stage']} (step {record['steps']}; float16 changes outputs by at most "
              f"{record['extra']['shipped']['max_abs_output_change']})")
        return 0
    if args.codes is None:
        parser.error(f"{args.action} needs --codes ({' or '.join(CODE_KINDS)})")
    names, portraits, _ = style_set(args.n_styles, seed=args.seed)
    stream = seeds.training_seed("dsg_style", args.seed)
    cache = keep / f"dsg_codes-{args.codes}-seed{stream}-n{args.n_styles}.npz"
    codes = style_codes(args.codes, portraits, cache=cache, baseline_steps=args.baseline_steps, seed=args.seed)
    print(f"[dsg_{args.codes}] codes of {len(names)} portraits: {cache} "
          f"({float(codes['seconds']):.0f} s to make)", flush=True)
    if args.action == "codes":
        return 0
    trainer = make_trainer(args.codes, names, portraits, codes, iters=args.steps, batch=args.batch, seed=args.seed)
    paths = StagePaths(out, Path(args.carry) if args.carry else None, args.codes)
    log, seconds = train_stage(trainer, paths, steps=args.steps, log_every=args.log_every,
                               save_every=args.save_every,
                               on_log=lambda row: print(f"[dsg_{args.codes}] " + " ".join(
                                   f"{k}={v}" for k, v in row.items()), flush=True))
    save_generator(keep / f"dsg_{args.codes}.pt", trainer.g_ema)
    record = {"stage": f"dsg_{args.codes}", "command": "python -m redestyle.miniature.supervision " + " ".join(argv),
              "seed": args.seed, "steps": args.steps, "batch": args.batch, "threads": args.threads,
              "where": where_ran(args.threads),
              "seconds": round(seconds, 1), "style_stream_seed": stream, "n_styles": args.n_styles,
              "codes": {"file": cache.name, "space": code_space(args.codes), "seconds": float(codes["seconds"])},
              "loss_nets": trainer.models.loss_nets, "final_losses": log[-1] if log else None}
    with atomic_write(keep / f"dsg_{args.codes}.json", "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return 0



def _main_measure(args, argv: list[str], keep: Path) -> int:
    files = {kind: keep / f"dsg_{kind}.pt" for kind in CODE_KINDS}
    missing = [str(f) for f in files.values() if not f.exists()]
    if missing:
        print(f"redestyle supervision: {missing[0]}: no fine-tuned generator (run `train --codes ...` first)",
              file=sys.stderr)
        return 1
    generators = {kind: load_dualstylegan(f, "mini") for kind, f in files.items()}
    start = time.perf_counter()
    n_people, n_exemplars = set_sizes(args.set)
    result = measure(generators, baseline_models(args.seed), n_people=n_people, n_exemplars=n_exemplars,
                     n_resamples=args.n_resamples, seed=args.seed)
    for row in result.rows + result.paired:
        name = row["method"] + (f" - {row['baseline']}" if "baseline" in row else "")
        print(f"{name:24s} {row['metric']:16s} {row['value']:9.4f} [{row['lo']:.4f}, {row['hi']:.4f}]")
    payload = record(result, set=args.set, command="python -m redestyle.miniature.supervision " + " ".join(argv),
                     generators={kind: str(f) for kind, f in files.items()},
                     seconds=round(time.perf_counter() - start, 1), where=where_ran(args.threads))
    with atomic_write(Path(args.record) if args.record else keep / "dsg_supervision.json", "w") as f:
        json.dump(payload, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
