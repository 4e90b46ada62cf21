"""The held-out accuracy protocol of the miniature world: metrics judged by the oracle, with
bootstrap confidence intervals over identities and paired differences against the baseline.

Design note
-----------
**Set.** :func:`heldout_set`: 30 identities x 4 portraits (defaults), each portrait with its own
expression, pose, light and glasses (glasses with probability 1/2 per portrait, so most people
appear with and without them), drawn from :data:`EVAL_SEED`, an evaluation seed registered in
``seeds.EVALUATION_SETS`` (``tests/miniature/test_seeds.py`` checks that none of its faces nor
identities occurs in a training stream). Every portrait comes with its true photo (the same
parameters in the photo domain) and its true parameter vector.

**Judge.** Every number is the oracle's reading (:mod:`~redestyle.miniature.oracle`, a CNN trained
on photo renders with their parameters) of a destylized face, compared with the truth. No network
that a method optimises judges: the baseline's ID loss uses ``idnet``, its LPIPS the perceptual
trunk, Re-Destyle the ReStyle encoder; none of them scores here.

**Metrics** (:data:`METRICS`; errors in units of each parameter's valid range, 0 best):

- ``identity``: mean absolute error of the 13 identity parameters (face shape, skin, eyes, nose,
  hair colour) against the truth;
- ``expression``: the same over smile, mouth opening and eye openness (expression kept);
- ``pose``: the same over yaw, roll, light angle and light strength;
- ``glasses_kept`` / ``hair_kept``: fraction of faces whose glasses (on / off) / hair style the
  oracle reads as the portrait's truth;
- ``realism_fd``: Fréchet distance between the destylized faces and :data:`N_REFERENCE`
  independent photo renders, on the oracle's penultimate features projected onto the reference's
  top :data:`PCA_DIMS` principal components (with 120 faces a 128-d covariance is singular).
  The Fréchet distance is biased upward at small n (its trace terms include sampling noise): the
  ``photo (answer)`` row, true photos at the same n, shows that floor; compare methods with each
  other and with that row, not with 0. Its bootstrap interval is skewed upward: a resample holds
  about 63 % distinct identities, and the distance grows as the number of distinct faces shrinks;
  the paired differences, where both methods see the same resample, are the valid comparison
  (against the true photos, ``ProtocolResult.paired_against("photo (answer)")``, they give the
  distance in excess of the floor at the same n);
- ``consistency_auc``: same-person consistency as a ranking: ROC AUC of the distance between
  two faces' identity readings, same-person pairs against different-person pairs (1: every
  same-person pair is closer than every other pair). Ties count half and distances are compared
  at 1e-6 range units, so a constant answer (every face the same) scores exactly 0.5, as does an
  answer unrelated to the person; rank-based, it is unchanged by shrinking every face toward a
  centre (truncation), so neither post-processing setting is rewarded by construction;
- ``id_within_share``: the within-person share of the variance of the identity readings
  (within-person sum of squares / total sum of squares: 1 - intra-class correlation; 0 best).
  Scale-free, so pulling every face toward the average (which shrinks the raw spread and made
  ``world.score``'s ``id_spread`` call the average face perfect) does not help; readings without
  any variance carry no identity and score 1 by definition.

``world.score``'s ``id_spread`` and ``accuracy``'s ``latent_dist`` are not in the protocol: the
first rewards constant answers, the second measures the distance to ``latent_avg``, which
truncation shrinks by construction (descriptive only).

**Reference rows.** ``photo (answer)``: the oracle reading the true photos (the ceiling: its own
error) and ``average face``: every portrait answered by the generator's average face (a constant
answer: 0.5 AUC, within-share 1).

**Statistics** (:mod:`redestyle.stats`): the unit is the identity. Every number gets a 95 %
percentile interval from :data:`~redestyle.stats.N_RESAMPLES` resamples of the identities with
replacement (seeded), each statistic computed on the resampled identities (duplicates counted
with their multiplicity: for the AUC, pairs within one identity stay same-person pairs and pairs
of two copies of one identity are not formed). Paired differences (method - baseline) use the
same resamples for both, so the interval is that of the difference; a method identical to the
baseline gives 0 with a zero-width interval.

**Post-processing.** The baseline copies the portrait's colour layers into its face and renders
at truncation 0.7 toward w = 0; Re-Destyle does neither by default. ``accuracy.POSTPROCESSING``
names both settings and ``accuracy.protocol_destylizers`` applies one of them to every method
alike; run the protocol once per setting (or for the setting you report) and say which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import stats
from . import oracle as orc
from . import seeds, world
from .render import VECTOR_NAMES

__all__ = [
    "EVAL_SEED", "METRICS", "N_PEOPLE", "N_REFERENCE", "PCA_DIMS", "PER_PERSON", "Metric",
    "ProtocolResult", "Readings", "RealismReference", "compare_records", "evaluate", "frechet", "heldout_set",
    "read_faces", "realism_reference", "record", "statistics",
]

#: Seed of the held-out evaluation set (registered in seeds.EVALUATION_SETS).
EVAL_SEED = 4000
N_PEOPLE = 30
PER_PERSON = 4
#: Photo renders the realism Fréchet distance compares with (seeds.EVALUATION_SETS' Fréchet set).
N_REFERENCE = 1000
REFERENCE_SEED = seeds.EVALUATION_SETS["Fréchet: photo renders"]
#: Principal components of the oracle's features kept for the Fréchet distance (with the shipped
#: oracle they hold 95 % of the feature variance of the 1000 reference renders).
PCA_DIMS = 16
#: Distances between identity readings are compared at this resolution (range units): ties.
_TIE_DECIMALS = 6
#: Variance (range units squared, per parameter) below which readings count as constant.
_CONSTANT_VARIANCE = 1e-12

_HAIR = VECTOR_NAMES.index("hair_style")
_GLASSES = VECTOR_NAMES.index("glasses")


@dataclass(frozen=True)
class Metric:
    name: str
    better: str  # "lower" or "higher"
    description: str
    #: (absolute, relative): how far a re-run's value, lo or hi may lie from a recorded one,
    #: |fresh - recorded| <= abs + rel * |recorded| (:func:`compare_records`), for methods that
    #: only run networks forward (encoders, references): other CPU kernels move them by < 1e-4,
    #: but a thresholded reading (glasses, hair) may flip on a face or two.
    tolerance: tuple[float, float]
    #: The same for an optimisation (the baseline) and every difference against it: its 300 Adam
    #: steps amplify rounding. Measured on the quick set (6 people), same code, AVX2 one thread
    #: against ATEN_CPU_CAPABILITY=default, ONEDNN_MAX_CPU_ISA=SSE41, two threads: the largest
    #: change of any value, lo or hi was identity 0.017, expression 0.043, pose 0.017, glasses
    #: 0, hair 0.21, Fréchet 6.1, consistency AUC 0.15, within-share 0.12; these are about twice that.
    loose: tuple[float, float]


#: The protocol's metrics, in table order.
METRICS: tuple[Metric, ...] = (
    Metric("identity", "lower", "identity-parameter error (13 parameters, range units)", (0.01, 0.0), (0.035, 0.0)),
    Metric("expression", "lower", "expression error (smile, mouth opening, eye openness)", (0.02, 0.0),
           (0.09, 0.0)),
    Metric("pose", "lower", "pose and light error (yaw, roll, light angle and strength)", (0.02, 0.0), (0.035, 0.0)),
    Metric("glasses_kept", "higher", "fraction of faces with the portrait's glasses (on / off)", (0.1, 0.0),
           (0.2, 0.0)),
    Metric("hair_kept", "higher", "fraction of faces with the portrait's hair style", (0.1, 0.0), (0.42, 0.0)),
    Metric("realism_fd", "lower", f"Fréchet distance to photo renders (oracle features, {PCA_DIMS} PCs)",
           (1.0, 0.1), (6.0, 0.2)),
    Metric("consistency_auc", "higher", "ROC AUC: same-person vs different-person identity distances",
           (0.03, 0.0), (0.3, 0.0)),
    Metric("id_within_share", "lower", "within-person share of identity-reading variance", (0.03, 0.0),
           (0.25, 0.0)),
)


def heldout_set(n_people: int = N_PEOPLE, per_person: int = PER_PERSON, *, seed: int = EVAL_SEED,
                size: int = 64) -> world.PortraitSet:
    """The held-out portraits with their true photos and parameters (``world.person_set``).

    ``n_people`` identities x ``per_person`` portraits, rows person by person, glasses with
    probability 1/2 per portrait; deterministic. Needs 2 people with 2 portraits at least (the
    consistency measures compare same- and different-person pairs).
    """
    if n_people < 2 or per_person < 2:
        raise ValueError(f"the protocol needs >= 2 people with >= 2 portraits each, got {n_people} x {per_person}")
    return world.person_set(n_people, per_person, seed=seed, size=size, glasses_p=0.5)


@dataclass(frozen=True)
class RealismReference:
    """Photo renders on the oracle's features, projected to their top principal components."""

    center: np.ndarray  # [128] mean feature of the renders
    basis: np.ndarray  # [128, k] principal directions
    mean: np.ndarray  # [k] mean of the projected renders (0 up to rounding)
    cov: np.ndarray  # [k, k] covariance of the projected renders
    sqrt_cov: np.ndarray  # [k, k] its symmetric square root
    explained: float  # share of the renders' feature variance the k components hold
    n: int

    def project(self, features: np.ndarray) -> np.ndarray:
        """Oracle features [N, 128] -> [N, k]."""
        return (np.asarray(features, np.float64) - self.center) @ self.basis


def realism_reference(oracle: orc.AttributeRegressor, *, n: int = N_REFERENCE, seed: int = REFERENCE_SEED,
                      dims: int = PCA_DIMS, domain: str = "photo") -> RealismReference:
    """The Fréchet reference: ``n`` renders of ``seed`` in ``domain`` (``world.photo_renders``;
    photo for realism, portrait for the §4.4 style distance)."""
    images, _ = world.photo_renders(n, seed=seed, domain=domain)
    feats = oracle.embed(images)
    center = feats.mean(0)
    _, s, vt = np.linalg.svd(feats - center, full_matrices=False)
    basis = vt[:dims].T
    z = (feats - center) @ basis
    cov = np.cov(z, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    sqrt_cov = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
    return RealismReference(center, basis, z.mean(0), cov, sqrt_cov, float((s[:dims] ** 2).sum() / (s**2).sum()), n)


@dataclass
class Readings:
    """The oracle's reading of N faces."""

    vectors: np.ndarray  # [N, 22] parameter vectors (oracle.predict)
    features: np.ndarray  # [N, 128] penultimate features (oracle.embed)


def read_faces(oracle: orc.AttributeRegressor, faces: torch.Tensor) -> Readings:
    """Oracle readings of faces [N, 3, S, S] in [-1, 1] (pooled to 64 px)."""
    with torch.no_grad():
        x = faces.detach().float().cpu()
        return Readings(oracle.predict(x), oracle.embed(x))


def _per_person(values: np.ndarray, person: np.ndarray, n_people: int) -> np.ndarray:
    return np.bincount(person, weights=values, minlength=n_people) / np.bincount(person, minlength=n_people)


def frechet(z: np.ndarray, person: np.ndarray, ref: RealismReference) -> stats.Statistic:
    """The Fréchet distance of projected features z [N, dims] to ``ref`` as a statistic of identity
    counts: face i is weighted by the resample count of its identity ``person[i]``."""
    def fd(counts: np.ndarray) -> np.ndarray:
        w = counts[:, person]  # [B, N] weight of each face: its identity's count
        total = w.sum(1)
        mu = w @ z / total[:, None]
        dev = z[None] - mu[:, None]
        cov = np.einsum("bn,bni,bnj->bij", w, dev, dev) / (total - 1)[:, None, None]
        # tr sqrt(C_a C_r) = tr sqrt(C_r^1/2 C_a C_r^1/2), a symmetric PSD matrix
        eig = np.linalg.eigvalsh(ref.sqrt_cov @ cov @ ref.sqrt_cov).clip(min=0)
        return (((mu - ref.mean) ** 2).sum(1) + np.trace(cov, axis1=1, axis2=2) + np.trace(ref.cov)
                - 2 * np.sqrt(eig).sum(1))

    return fd


def _pair_auc(ident: np.ndarray, person: np.ndarray) -> stats.Statistic:
    i, j = np.triu_indices(len(person), 1)
    dist = np.round(np.linalg.norm(ident[i] - ident[j], axis=1), _TIE_DECIMALS)
    _, rank = np.unique(dist, return_inverse=True)
    same = person[i] == person[j]
    g_same, g_diff = rank[same], rank[~same]
    p_same, pi_diff, pj_diff = person[i][same], person[i][~same], person[j][~same]
    n_groups = int(rank.max()) + 1

    def auc(counts: np.ndarray) -> np.ndarray:
        out = np.empty(len(counts))
        for b, c in enumerate(counts):
            w_same, w_diff = c[p_same], c[pi_diff] * c[pj_diff]
            at = np.bincount(g_diff, weights=w_diff, minlength=n_groups)  # different-pair weight per distance
            above = at[::-1].cumsum()[::-1] - at  # ... at strictly larger distances
            denom = w_same.sum() * w_diff.sum()
            out[b] = w_same @ (above[g_same] + 0.5 * at[g_same]) / denom if denom > 0 else np.nan
        return out

    return auc


def _within_share(ident: np.ndarray, person: np.ndarray, n_people: int) -> stats.Statistic:
    size = np.bincount(person, minlength=n_people).astype(np.float64)
    means = np.stack([ident[person == k].mean(0) for k in range(n_people)])  # [P, 13]
    within = np.array([((ident[person == k] - means[k]) ** 2).sum() for k in range(n_people)])
    n_params = ident.shape[1]

    def share(counts: np.ndarray) -> np.ndarray:
        w = counts * size  # [B, P] faces per identity in the resample
        total_n = w.sum(1)
        grand = w @ means / total_n[:, None]
        between = (w * ((means[None] - grand[:, None]) ** 2).sum(2)).sum(1)
        wss = counts @ within
        total = wss + between
        constant = total / (total_n * n_params) < _CONSTANT_VARIANCE
        return np.where(constant, 1.0, wss / np.where(constant, 1.0, total))

    return share


def statistics(readings: Readings, truth: np.ndarray, person: np.ndarray,
               reference: RealismReference) -> dict[str, stats.Statistic]:
    """Each metric of :data:`METRICS` as a function of identity counts ([B, P] -> [B]).

    readings: the oracle on one method's N faces; truth: true vectors [N, 22]; person: identity
    index of each face [N] in 0..P-1 (every identity present).
    """
    person = np.asarray(person)
    n_people = int(person.max()) + 1
    pred, true = orc.normalise(readings.vectors).astype(np.float64), orc.normalise(truth).astype(np.float64)
    ident = pred[:, [orc.COLUMNS[n] for n in orc.IDENTITY]]
    per_face = {
        "identity": orc.abs_errors(pred, true, orc.IDENTITY).mean(1),
        "expression": orc.abs_errors(pred, true, orc.EXPRESSION).mean(1),
        "pose": orc.abs_errors(pred, true, orc.POSE).mean(1),
        "glasses_kept": ((readings.vectors[:, _GLASSES] > 0.5) == (truth[:, _GLASSES] > 0.5)).astype(np.float64),
        "hair_kept": (np.round(readings.vectors[:, _HAIR]) == truth[:, _HAIR]).astype(np.float64),
    }
    out = {k: stats.weighted_mean(_per_person(v, person, n_people)) for k, v in per_face.items()}
    out["realism_fd"] = frechet(reference.project(readings.features), person, reference)
    out["consistency_auc"] = _pair_auc(ident, person)
    out["id_within_share"] = _within_share(ident, person, n_people)
    return out


@dataclass
class ProtocolResult:
    """Rows of the protocol: plain data (lists of dicts), ready for a table or a figure."""

    rows: list[dict]  # method, metric, value, lo, hi, better
    paired: list[dict]  # method, metric, baseline, value (method - baseline), lo, hi, better
    methods: list[str]  # in row order, the reference rows first
    n_people: int
    n_portraits: int
    n_resamples: int
    seed: int
    level: float
    realism: dict = field(default_factory=dict)  # reference size, PCA dims, variance explained
    statistics: dict[str, dict[str, stats.Statistic]] = field(default_factory=dict, repr=False)
    counts: np.ndarray | None = field(default=None, repr=False)  # [n_resamples, n_people]

    def value(self, method: str, metric: str) -> dict:
        """The row of one method and metric."""
        for r in self.rows:
            if r["method"] == method and r["metric"] == metric:
                return r
        raise KeyError(f"no row for {method!r}, {metric!r}")

    def paired_against(self, reference: str) -> list[dict]:
        """Paired differences (method - ``reference``) of every other method, on the same resamples.

        ``paired`` holds them against the baseline; against ``"photo (answer)"`` the realism rows
        are the Fréchet distance in excess of true photos at the same n, which cancels most of
        its small-n bias.
        """
        if reference not in self.statistics:
            raise KeyError(f"no method {reference!r}; methods: {', '.join(self.statistics)}")
        better = {m.name: m.better for m in METRICS}
        base = self.statistics[reference]
        return [{"method": method, "metric": metric, "baseline": reference,
                 **stats.paired_estimate(stat[metric], base[metric], self.counts, level=self.level),
                 "better": better[metric]}
                for method, stat in self.statistics.items() if method != reference for metric in better]


def evaluate(faces_by_method: Mapping[str, torch.Tensor], pset: world.PortraitSet, oracle: orc.AttributeRegressor,
             *, avg_image: torch.Tensor | None = None, reference: RealismReference | None = None,
             baseline: str | None = "baseline", n_resamples: int = stats.N_RESAMPLES, seed: int = 0,
             level: float = 0.95) -> ProtocolResult:
    """Score every method's faces on ``pset`` (module docstring) with intervals over identities.

    faces_by_method: name -> destylized faces [N, 3, S, S] in [-1, 1], row i answering portrait i
    of ``pset`` (every method on the same N rows); avg_image: [3, S, S] for the ``average face``
    row; reference: the Fréchet reference (None: :func:`realism_reference` with its defaults);
    baseline: the method the paired differences are taken against (None or absent: no paired
    rows; others: :meth:`ProtocolResult.paired_against`). The ``photo (answer)`` row (true
    photos) always comes first.
    """
    n = len(pset.params)
    for name, faces in faces_by_method.items():
        if faces.shape[0] != n:
            raise ValueError(f"method {name!r} gave {faces.shape[0]} faces for the {n} portraits of the set")
    ids = {g: k for k, g in enumerate(dict.fromkeys(pset.group_of))}
    person = np.array([ids[g] for g in pset.group_of])
    reference = reference if reference is not None else realism_reference(oracle)
    methods: dict[str, torch.Tensor] = {"photo (answer)": pset.photos}
    if avg_image is not None:
        methods["average face"] = avg_image.detach().cpu().unsqueeze(0).expand(n, -1, -1, -1)
    for name, faces in faces_by_method.items():
        if name in methods:
            raise ValueError(f"method name {name!r} is taken by a reference row")
        methods[name] = faces
    truth = pset.vectors
    counts = stats.bootstrap_counts(len(ids), n_resamples=n_resamples, seed=seed)
    per_method = {m: statistics(read_faces(oracle, f), truth, person, reference) for m, f in methods.items()}
    rows = [{"method": method, "metric": m.name, **stats.estimate(stat[m.name], counts, level=level),
             "better": m.better} for method, stat in per_method.items() for m in METRICS]
    realism = {"n_reference": reference.n, "pca_dims": reference.basis.shape[1],
               "explained": reference.explained}
    result = ProtocolResult(rows, [], list(methods), len(ids), n, n_resamples, seed, level, realism,
                            per_method, counts)
    if baseline is not None and baseline in per_method:
        result.paired = result.paired_against(baseline)
    return result


def record(result: ProtocolResult, **extra) -> dict:
    """``result`` as plain JSON-ready data: its rows, paired rows and set sizes (+ ``extra``).

    What a run stores (``figures/protocol_<set>.json``) and a later run is compared with
    (:func:`compare_records`).
    """
    return {"n_people": result.n_people, "n_portraits": result.n_portraits, "n_resamples": result.n_resamples,
            "seed": result.seed, "level": result.level, "realism": dict(result.realism), **extra,
            **record_rows(result.rows, result.paired)}


def record_rows(rows: Sequence[Mapping], paired: Sequence[Mapping]) -> dict[str, list[dict]]:
    """``{"rows", "paired"}`` of a record: each row's method, metric, baseline, value, lo, hi, better."""
    keys = ("method", "metric", "baseline", "value", "lo", "hi", "better")
    return {"rows": [{k: r[k] for k in keys if k in r} for r in rows],
            "paired": [{k: r[k] for k in keys if k in r} for r in paired]}


#: The set sizes a protocol record holds (a changed one is a difference, whatever the rows say).
RECORD_SIZES = ("n_people", "n_portraits", "n_resamples", "seed", "level")


def compare_records(fresh: Mapping, recorded: Mapping, *, optimised: Sequence[str] = ("baseline",),
                    metrics: Sequence[Metric] = METRICS, sizes: Sequence[str] = RECORD_SIZES
                    ) -> tuple[int, list[str]]:
    """Compare two :func:`record` s number by number, within each metric's ``tolerance``
    (``loose`` for the ``optimised`` methods' rows and for every paired row).

    ``metrics`` / ``sizes``: the metrics (with tolerances) and set-size keys of the record's kind
    (default the protocol's; ``supervision.record`` passes its own). Returns (numbers compared, one
    line per difference beyond tolerance, per missing or extra row, or per changed set size). NaN
    equals NaN.
    """
    tight = {m.name: m.tolerance for m in metrics}
    loose = {m.name: m.loose for m in metrics}
    problems = [f"{k}: {recorded.get(k)} recorded, {fresh.get(k)} now"
                for k in sizes if fresh.get(k) != recorded.get(k)]
    n = 0
    for part in ("rows", "paired"):
        def by_key(rows):
            return {(r["method"], r.get("baseline"), r["metric"]): r for r in rows}

        old, new = by_key(recorded.get(part, [])), by_key(fresh.get(part, []))
        problems += [f"{part}: {' / '.join(filter(None, k))} missing now" for k in old.keys() - new.keys()]
        problems += [f"{part}: {' / '.join(filter(None, k))} not recorded" for k in new.keys() - old.keys()]
        for key in old.keys() & new.keys():
            abs_tol, rel_tol = (loose if part == "paired" or key[0] in optimised else tight)[key[2]]
            for field_ in ("value", "lo", "hi"):
                a, b = float(new[key][field_]), float(old[key][field_])
                n += 1
                if not (np.isnan(a) and np.isnan(b)) and not abs(a - b) <= abs_tol + rel_tol * abs(b):
                    problems.append(f"{part}: {' / '.join(filter(None, key))} {field_} {a:.4f}, recorded {b:.4f}"
                                    f" (tolerance {abs_tol:g} + {rel_tol:g} x recorded)")
    return n, sorted(problems)
