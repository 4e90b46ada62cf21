"""Bootstrap confidence intervals over units (identities), and paired differences between methods.

The unit of resampling is whatever the measurements are not independent within: in the accuracy
protocol, the identity (a person's portraits share their face, so they are not independent draws).
A resample is a vector of counts, how often each unit is drawn (multinomial, ``n`` draws with
replacement from ``n`` units): a statistic is written as a function of those counts, so that
statistics that are not means of units (a Fréchet distance, a ROC AUC over pairs, a variance
ratio) resample the same way, and the point estimate is the statistic at counts of all ones.

Paired differences evaluate two methods' statistics on the **same** count vectors and take the
percentile interval of the difference, so the variation shared by both methods (which people
happened to be drawn) cancels; two identical methods give exactly 0 with a zero-width interval.

Intervals are percentile intervals (Efron). They are approximate: with 30 units their coverage
of a mean is close to nominal (``tests/test_stats.py`` measures it on a synthetic example), but
a biased statistic (the Fréchet distance at small n) keeps its bias inside the interval.
Pure numpy; deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["N_RESAMPLES", "Statistic", "bootstrap_counts", "estimate", "interval", "paired_estimate",
           "weighted_mean"]

#: Default number of bootstrap resamples.
N_RESAMPLES = 2000

#: counts [B, n] (float64; row b: how often each unit is in resample b) -> statistic values [B]
Statistic = Callable[[np.ndarray], np.ndarray]


def bootstrap_counts(n_units: int, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Resampling counts [n_resamples, n_units] (float64, each row sums to ``n_units``).

    Row b counts how often each unit was drawn when ``n_units`` draws are made with replacement;
    the same ``seed`` gives the same rows (``np.random.default_rng(seed)``), so methods scored with
    the same counts are paired.
    """
    if n_units < 1:
        raise ValueError(f"need at least one unit to resample, got {n_units}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_resamples).astype(np.float64)


def interval(values: np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values [B] at ``level`` (NaN values ignored; all NaN -> NaN)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _point(statistic: Statistic, n_units: int) -> float:
    return float(statistic(np.ones((1, n_units)))[0])


def estimate(statistic: Statistic, counts: np.ndarray, *, level: float = 0.95) -> dict[str, float]:
    """``{"value", "lo", "hi"}``: the statistic at all-ones counts and its percentile interval
    over the resamples ``counts`` [B, n_units] (:func:`bootstrap_counts`)."""
    lo, hi = interval(statistic(counts), level=level)
    return {"value": _point(statistic, counts.shape[1]), "lo": lo, "hi": hi}


def paired_estimate(statistic: Statistic, reference: Statistic, counts: np.ndarray, *,
                    level: float = 0.95) -> dict[str, float]:
    """``{"value", "lo", "hi"}`` of ``statistic - reference``, both evaluated on the same resamples."""
    diff = statistic(counts) - reference(counts)
    lo, hi = interval(diff, level=level)
    n = counts.shape[1]
    return {"value": _point(statistic, n) - _point(reference, n), "lo": lo, "hi": hi}


def weighted_mean(per_unit: np.ndarray) -> Statistic:
    """The statistic "mean over the resampled units" of per-unit values [n_units] (NaN-free)."""
    values = np.asarray(per_unit, np.float64)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError(f"per-unit values must be a finite vector, got shape {values.shape}")

    def mean(counts: np.ndarray) -> np.ndarray:
        return counts @ values / counts.sum(1)

    return mean
