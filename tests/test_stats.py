"""Bootstrap intervals over units and paired differences (redestyle.stats): known answers."""

from __future__ import annotations

import numpy as np
import pytest

from redestyle import stats


def test_counts_are_resamples_with_replacement_and_deterministic():
    a = stats.bootstrap_counts(30, n_resamples=500, seed=7)
    assert a.shape == (500, 30) and (a.sum(1) == 30).all() and (a >= 0).all()
    assert np.array_equal(a, stats.bootstrap_counts(30, n_resamples=500, seed=7))
    assert not np.array_equal(a, stats.bootstrap_counts(30, n_resamples=500, seed=8))
    assert abs(a.mean() - 1) < 0.01 and (a == 0).mean() == pytest.approx((29 / 30) ** 30, abs=0.02)
    with pytest.raises(ValueError, match="at least one unit"):
        stats.bootstrap_counts(0)


def test_interval_of_a_mean_covers_the_known_mean_at_about_its_level():
    rng = np.random.default_rng(0)
    counts = stats.bootstrap_counts(30, n_resamples=1000, seed=1)
    covered, widths = 0, []
    for _ in range(200):  # 200 synthetic studies of 30 units from N(3, 1)
        est = stats.estimate(stats.weighted_mean(rng.normal(3.0, 1.0, 30)), counts)
        covered += est["lo"] <= 3.0 <= est["hi"]
        widths.append(est["hi"] - est["lo"])
    # percentile intervals of a mean of 30 run slightly narrow (~93 %); 200 studies: +-3.5 % sd
    assert 0.85 <= covered / 200 <= 0.99
    assert np.mean(widths) == pytest.approx(2 * 1.96 / np.sqrt(30), rel=0.15)


def test_estimate_is_the_full_sample_value_and_deterministic_with_its_seed():
    values = np.arange(10.0)
    stat = stats.weighted_mean(values)
    one = stats.estimate(stat, stats.bootstrap_counts(10, seed=3))
    assert one["value"] == pytest.approx(4.5)
    assert one == stats.estimate(stat, stats.bootstrap_counts(10, seed=3))
    assert one["lo"] < 4.5 < one["hi"]


def test_paired_difference_of_identical_methods_is_zero_with_zero_width():
    rng = np.random.default_rng(2)
    a = rng.normal(size=30)
    counts = stats.bootstrap_counts(30, seed=0)
    same = stats.paired_estimate(stats.weighted_mean(a), stats.weighted_mean(a.copy()), counts)
    assert same == {"value": 0.0, "lo": 0.0, "hi": 0.0}
    # a constant shift is known exactly; paired, the identities' variation cancels
    shifted = stats.paired_estimate(stats.weighted_mean(a + 0.25), stats.weighted_mean(a), counts)
    assert shifted["value"] == pytest.approx(0.25) and shifted["hi"] - shifted["lo"] < 1e-9
    unpaired = stats.estimate(stats.weighted_mean(a + 0.25), counts)
    assert unpaired["hi"] - unpaired["lo"] > 0.3


def test_interval_ignores_nan_and_rejects_bad_input():
    assert stats.interval(np.array([np.nan, 1.0, 1.0])) == (1.0, 1.0)
    assert all(np.isnan(stats.interval(np.array([np.nan]))))
    with pytest.raises(ValueError, match="level"):
        stats.interval(np.ones(3), level=1.0)
    with pytest.raises(ValueError, match="finite vector"):
        stats.weighted_mean(np.array([1.0, np.nan]))
