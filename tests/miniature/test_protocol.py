"""The held-out accuracy protocol (miniature.protocol): known answers with the shipped oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from redestyle import stats
from redestyle.miniature import oracle as orc
from redestyle.miniature import protocol, seeds, world
from redestyle.miniature.render import VECTOR_NAMES, render_batch


@pytest.fixture(scope="module")
def oracle():
    return world.load_oracle()


@pytest.fixture(scope="module")
def small(oracle):
    """8 people x 3 portraits, a 200-render Fréchet reference on 8 components."""
    pset = protocol.heldout_set(8, 3)
    return pset, protocol.realism_reference(oracle, n=200, dims=8)


def _evaluate(faces, small, oracle, **kw):
    pset, ref = small
    return protocol.evaluate(faces, pset, oracle, reference=ref, n_resamples=300, **kw)


def test_heldout_set_is_registered_deterministic_and_varied():
    assert protocol.EVAL_SEED in seeds.EVALUATION_SETS.values()  # test_seeds checks it is held out
    pset = protocol.heldout_set()
    assert pset.portraits.shape == pset.photos.shape == (120, 3, 64, 64)
    people = dict.fromkeys(pset.group_of)
    assert len(people) == 30 and all(pset.group_of.count(p) == 4 for p in people)
    v = pset.vectors.reshape(30, 4, -1)
    col = VECTOR_NAMES.index
    assert (v[:, :, col("face_width")] == v[:, :1, col("face_width")]).all()  # one identity per person
    for name in ("smile", "yaw", "light_angle"):  # ... in varied expression, pose and light
        assert (v[:, :, col(name)].std(1) > 0).all()
    glasses = v[:, :, col("glasses")]
    assert ((glasses.min(1) == 0) & (glasses.max(1) == 1)).sum() >= 10  # with and without glasses
    assert np.array_equal(pset.vectors, protocol.heldout_set().vectors)
    # the answer of each portrait is its photo render
    expected = render_batch(pset.params[:2], size=64, domain="photo")
    assert torch.equal(pset.photos[:2], world.to_tensor(expected))
    with pytest.raises(ValueError, match=">= 2 people with >= 2 portraits"):
        protocol.heldout_set(1, 4)


def test_reference_rows_constant_answer_cannot_win_and_identical_methods_pair_to_zero(small, oracle):
    pset, _ = small
    avg = pset.photos.mean(0)
    res = _evaluate({"baseline": pset.photos.clone(), "portraits": pset.portraits}, small, oracle,
                    avg_image=avg)
    assert res.methods == ["photo (answer)", "average face", "baseline", "portraits"]
    assert res.n_people == 8 and res.n_portraits == 24
    photo, const = (lambda m: res.value("photo (answer)", m)), (lambda m: res.value("average face", m))
    # true photos: the ceiling, consistent and identified
    assert photo("consistency_auc")["value"] > 0.95 and photo("id_within_share")["value"] < 0.15
    assert photo("glasses_kept")["value"] == 1.0 and photo("identity")["value"] < 0.06
    # a constant answer: exactly chance consistency, no identity signal, zero-width intervals
    assert const("consistency_auc") | {"better": None} == {"value": 0.5, "lo": 0.5, "hi": 0.5, "better": None,
                                                          "method": "average face", "metric": "consistency_auc"}
    assert const("id_within_share")["value"] == 1.0
    assert const("identity")["value"] > 3 * photo("identity")["value"]
    for metric in ("identity", "consistency_auc", "id_within_share", "realism_fd"):  # every number has an interval
        row = photo(metric)
        assert row["lo"] <= row["hi"] and np.isfinite([row["lo"], row["hi"]]).all()
    # a method identical to the baseline: every paired difference is 0 with a zero-width interval
    same = [r for r in res.paired if r["method"] == "photo (answer)"]
    assert len(same) == len(protocol.METRICS)
    for r in same:
        assert abs(r["value"]) < 1e-9 and r["hi"] - r["lo"] < 1e-9, r
    worse = {r["metric"]: r for r in res.paired if r["method"] == "average face"}
    assert worse["identity"]["lo"] > 0 and worse["consistency_auc"]["hi"] < 0
    # against the true photos instead: the baseline (a copy of them) is 0, the rest as above
    excess = res.paired_against("photo (answer)")
    assert {r["method"] for r in excess} == {"average face", "baseline", "portraits"}
    assert all(r["value"] == r["lo"] == r["hi"] == 0 for r in excess if r["method"] == "baseline")
    assert [r for r in excess if r["method"] == "average face"] == [
        r | {"baseline": "photo (answer)"} for r in res.paired if r["method"] == "average face"]
    with pytest.raises(KeyError, match="no method 'oracle'"):
        res.paired_against("oracle")


def test_every_method_is_scored_on_the_set_rows(small, oracle):
    pset, _ = small
    with pytest.raises(ValueError, match="gave 23 faces for the 24 portraits"):
        _evaluate({"short": pset.photos[:23]}, small, oracle)
    with pytest.raises(ValueError, match="taken by a reference row"):
        _evaluate({"photo (answer)": pset.photos}, small, oracle)
    # the same faces answering other portraits: same realism, but wrong answers and no consistency
    res = _evaluate({"rolled": pset.photos.roll(1, 0)}, small, oracle, baseline=None)
    assert res.paired == []
    assert res.value("rolled", "realism_fd")["value"] == pytest.approx(
        res.value("photo (answer)", "realism_fd")["value"], rel=1e-9)
    assert res.value("rolled", "identity")["value"] > 2 * res.value("photo (answer)", "identity")["value"]
    assert res.value("rolled", "consistency_auc")["value"] < 0.8


def test_realism_is_the_frechet_distance_on_the_reference_components(small, oracle):
    pset, ref = small
    readings = protocol.read_faces(oracle, pset.portraits)
    person = np.repeat(np.arange(8), 3)
    fd = protocol.statistics(readings, pset.vectors, person, ref)["realism_fd"]
    renders, _ = world.photo_renders(ref.n, seed=protocol.REFERENCE_SEED)
    expected = orc.frechet_distance(ref.project(readings.features), ref.project(oracle.embed(renders)))
    assert fd(np.ones((1, 8)))[0] == pytest.approx(expected, rel=1e-6)
    assert 0 < ref.explained <= 1 and ref.basis.shape == (orc.FEATURE_DIM, 8)


def test_consistency_measures_do_not_reward_shrinking_toward_a_centre(small):
    # truncation pulls every face toward one centre: the identity error grows, the rank- and
    # ratio-based consistency measures do not move
    pset, ref = small
    truth = pset.vectors.astype(np.float64)
    ident = [VECTOR_NAMES.index(n) for n in orc.IDENTITY]
    shrunk = truth.copy()
    shrunk[:, ident] = truth[:, ident].mean(0) + 0.5 * (truth[:, ident] - truth[:, ident].mean(0))
    feats = np.random.default_rng(0).normal(size=(24, orc.FEATURE_DIM))
    person = np.repeat(np.arange(8), 3)
    noisy = truth + np.random.default_rng(1).normal(0, 0.02, truth.shape) * (np.arange(truth.shape[1]) != 13)
    counts = stats.bootstrap_counts(8, n_resamples=50, seed=0)
    a = protocol.statistics(protocol.Readings(noisy, feats), truth, person, ref)
    shrunk_noisy = noisy.copy()
    shrunk_noisy[:, ident] = noisy[:, ident].mean(0) + 0.5 * (noisy[:, ident] - noisy[:, ident].mean(0))
    b = protocol.statistics(protocol.Readings(shrunk_noisy, feats), truth, person, ref)
    for metric in ("consistency_auc", "id_within_share"):
        np.testing.assert_allclose(a[metric](counts), b[metric](counts), rtol=1e-6, atol=1e-9)  # float32 normalisation
    assert b["identity"](counts).mean() > a["identity"](counts).mean()


def test_records_round_trip_through_json_and_compare_within_tolerance(small, oracle):
    import json

    pset, _ = small
    res = _evaluate({"baseline": pset.photos.clone(), "portraits": pset.portraits}, small, oracle)
    rec = json.loads(json.dumps(protocol.record(res, postprocessing="none")))
    assert rec["postprocessing"] == "none" and rec["n_people"] == 8 and rec["n_portraits"] == 24
    n_numbers = 3 * (len(rec["rows"]) + len(rec["paired"]))
    assert protocol.compare_records(rec, rec) == (n_numbers, [])
    # inside the tolerance: accepted; beyond it: one line naming the row, the field and both values
    tol = {m.name: m.tolerance[0] for m in protocol.METRICS}
    moved = json.loads(json.dumps(rec))
    row = next(r for r in moved["rows"] if r["method"] == "portraits" and r["metric"] == "identity")
    row["value"] += 0.5 * tol["identity"]
    assert protocol.compare_records(moved, rec) == (n_numbers, [])
    row["value"] += tol["identity"]
    n, problems = protocol.compare_records(moved, rec)
    assert n == n_numbers and len(problems) == 1
    assert problems[0].startswith("rows: portraits / identity value") and "recorded" in problems[0]
    # the baseline (an optimisation, rounding amplified) and its paired rows get the loose tolerance
    moved = json.loads(json.dumps(rec))
    loose = {m.name: m.loose[0] for m in protocol.METRICS}
    assert all(loose[k] > tol[k] for k in tol)
    for r in moved["rows"] + moved["paired"]:
        if r["metric"] == "identity" and (r["method"] == "baseline" or "baseline" in r):
            r["value"] += (tol["identity"] + loose["identity"]) / 2
    assert protocol.compare_records(moved, rec) == (n_numbers, [])
    assert len(protocol.compare_records(moved, rec, optimised=())[1]) == 1  # the row; paired rows stay loose
    # a vanished method and a changed set are reported, not silently skipped
    fewer = {**rec, "n_people": 7, "rows": [r for r in rec["rows"] if r["method"] != "portraits"]}
    _, problems = protocol.compare_records(fewer, rec)
    assert "n_people: 8 recorded, 7 now" in problems
    assert sum(p.startswith("rows: portraits /") and p.endswith("missing now") for p in problems) == len(protocol.METRICS)
