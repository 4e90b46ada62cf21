"""Ground-truth sets and scores of the miniature world (invariants, no trained weights needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from redestyle import experiments
from redestyle.miniature import oracle as orc
from redestyle.miniature import world
from redestyle.miniature.render import VECTOR_NAMES


def test_person_set_groups_share_identity_and_vary_the_rest():
    pset = world.person_set(3, 4, seed=1)
    assert pset.portraits.shape == pset.photos.shape == (12, 3, 64, 64)
    groups = pset.groups()
    assert list(groups) == ["person_0", "person_1", "person_2"]
    assert all(g.shape[0] == 4 for g in groups.values())
    v = pset.vectors
    ident = [VECTOR_NAMES.index(n) for n in orc.IDENTITY]
    expr = [VECTOR_NAMES.index(n) for n in orc.EXPRESSION]
    for k in range(3):
        rows = v[4 * k:4 * k + 4]
        assert np.ptp(rows[:, ident], axis=0).max() == 0  # one identity per person
        assert np.ptp(rows[:, expr], axis=0).min() > 0  # varied expression
    assert np.ptp(v[::4, ident], axis=0).max() > 0  # different people
    assert torch.equal(world.person_set(3, 4, seed=1).portraits, pset.portraits)  # deterministic


def test_person_set_rejects_empty_sets():
    with pytest.raises(ValueError, match="n_people"):
        world.person_set(0, 3)


def test_errors_are_zero_on_the_truth_and_quarter_for_a_mid_range_guess():
    pset = world.person_set(2, 3, seed=2)
    truth = pset.vectors
    e = orc.errors(truth, truth)
    assert e["identity"] == e["expression"] == e["pose"] == 0
    assert e["glasses"] == e["hair_style"] == 1
    # answering every continuous parameter with the middle of its range: |u - 0.5| for the truth's u
    guess = truth.copy()
    cont = [VECTOR_NAMES.index(n) for n in orc.CONTINUOUS]
    lo, span = orc._LO, orc._SPAN
    guess[:, cont] = lo + 0.5 * span
    expected = np.abs(orc.normalise(truth)[:, [orc.CONTINUOUS.index(n) for n in orc.EXPRESSION]] - 0.5).mean()
    assert orc.errors(guess, truth)["expression"] == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert orc.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    b = a + np.array([1.0, 0, 0])  # shifted mean, same covariance: distance = |shift|^2
    assert orc.frechet_distance(a, b) == pytest.approx(1.0, rel=1e-6)


def test_oracle_input_errors_name_the_shape():
    model = orc.AttributeRegressor().eval()
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        model.features(torch.zeros(1, 1, 64, 64))
    assert model.predict(torch.zeros(2, 3, 128, 128)).shape == (2, len(VECTOR_NAMES))  # pooled to 64


def test_mini_default_portraits_are_the_worlds():
    portraits = experiments.default_portraits("mini", 64)
    assert list(portraits)[:2] == ["mini_0", "mini_1"]
    assert all(p.shape == (1, 3, 64, 64) for p in portraits.values())
    assert "astronaut_photo" in experiments.default_portraits("tiny", 64)
