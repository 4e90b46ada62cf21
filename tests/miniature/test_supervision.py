"""DualStyleGAN supervision on the miniature world (paper §4.4): style set, codes, resumable runs, measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from redestyle.miniature import oracle as orc
from redestyle.miniature import seeds, supervision, world
from redestyle.miniature.render import VECTOR_NAMES
from redestyle.miniature.supervision import StagePaths


@pytest.fixture(scope="module")
def styles():
    return supervision.style_set(4)


@pytest.fixture(scope="module")
def codes(styles):
    names, portraits, _ = styles
    return supervision.style_codes("redestyle", portraits, cache=None)


def test_the_style_set_comes_from_its_training_stream_and_exemplars_from_an_evaluation_seed(styles):
    names, portraits, vectors = styles
    assert names[0] == "style_0000.png" and portraits.shape == (4, 3, 64, 64)
    stream = seeds.training_seed("dsg_style", 0)
    assert stream in seeds.TRAINING
    expected = np.stack([p.to_vector() for p in world.draw_faces(4, stream)]).astype(np.float32)
    assert np.array_equal(vectors, expected)
    ex, ex_vectors = supervision.exemplars(3)
    assert supervision.EXEMPLAR_SEED in seeds.EVALUATION and ex.shape == (3, 3, 64, 64)
    assert ex_vectors.shape == (3, len(VECTOR_NAMES))


def test_codes_are_cached_and_read_back(styles, tmp_path):
    names, portraits, _ = styles
    path = tmp_path / "codes.npz"
    first = supervision.style_codes("redestyle", portraits[:2], cache=path)
    assert path.exists() and first["z_e"].shape == (2, 10, 64) and first["z_i"].shape == (2, 10, 64)
    again = supervision.style_codes("redestyle", portraits[:2], cache=path, models=object())  # not rebuilt
    assert np.array_equal(first["z_i"], again["z_i"])
    with pytest.raises(ValueError, match="unknown code kind 'pixels'"):
        supervision.destylize_codes("pixels", None, portraits)


def test_baseline_codes_are_zplus_and_their_exstyle_is_mapped_once(styles):
    names, portraits, _ = styles
    models = supervision.baseline_models()
    codes = supervision.destylize_codes("baseline", models, portraits[:2], baseline_steps=2)
    assert codes["z_e"].shape == (2, 10, 64) and supervision.code_space("baseline") == "z+"
    pairs = supervision.paired_set("baseline", names[:2], portraits[:2], codes, models.generator)
    assert pairs.space == "z+"
    assert torch.equal(pairs.instyle, torch.from_numpy(codes["z_i"]))  # intrinsic codes stay z+
    with torch.no_grad():
        mapped = models.generator.mapping_plus(torch.from_numpy(codes["z_e"]))
    assert torch.allclose(pairs.exstyle, mapped)


def test_resume_from_the_state_is_exact_and_from_the_carry_close(styles, codes, tmp_path):
    names, portraits, _ = styles

    def trainer():
        return supervision.make_trainer("redestyle", names, portraits, codes, iters=4, batch=2)

    straight = trainer()
    log, _ = supervision.train_stage(straight, StagePaths(tmp_path / "a", None, "redestyle"), steps=4,
                                     log_every=2, save_every=2)
    assert [row["step"] for row in log] == [2, 4]

    (tmp_path / "b").mkdir()
    paths = StagePaths(tmp_path / "b", tmp_path / "b", "redestyle")
    supervision.train_stage(trainer(), paths, steps=2, log_every=2, save_every=2)
    resumed = trainer()
    log_b, _ = supervision.train_stage(resumed, paths, steps=4, log_every=2, save_every=2)
    assert resumed.step == 4 and [row["step"] for row in log_b] == [2, 4]
    for a, b in zip(straight.g_ema.res.parameters(), resumed.g_ema.res.parameters()):
        assert torch.equal(a, b)

    # a fresh clone has only the committed carry: float16 weights, same streams, Adam afresh
    carried = trainer()
    payload = torch.load(paths.carry, weights_only=False)
    assert payload["step"] == 4 and "g_optim" not in payload
    assert "generator" not in str(list(payload["modules"]))  # the frozen intrinsic path is not stored
    elapsed, rows = supervision.load_carry(carried, payload)
    assert carried.step == 4 and rows == log_b and elapsed > 0
    assert torch.equal(carried.rng.get_state(), resumed.rng.get_state())
    for a, b in zip(resumed.g.res.parameters(), carried.g.res.parameters()):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)


def test_statistics_by_hand():
    rng = np.random.default_rng(0)
    content, exemplar = rng.uniform(0, 1, (3, 22)), rng.uniform(0, 1, (2, 22))
    faces = np.repeat(content, 2, axis=0).copy()  # every output keeps its content exactly...
    colours = [VECTOR_NAMES.index(n) for n in ("skin_r", "skin_g", "skin_b", "hair_r", "hair_g", "hair_b")]
    shift = np.zeros(22)
    shift[VECTOR_NAMES.index("face_width")] = 0.016  # ... but one face's width (range 0.16: 0.1 units)
    faces[5] += shift
    ref = _reference()
    stat = supervision.supervision_statistics(np.zeros((6, 128)), faces, content, exemplar, ref)
    ones = np.ones((1, 3))
    assert stat["identity"](ones)[0] == pytest.approx(0.1 / 13 / 2 / 3)  # one row of 6, 1 of 13 params
    assert stat["identity_shape"](ones)[0] == pytest.approx(0.1 / 7 / 2 / 3)
    norm = orc.normalise
    want = np.mean([np.abs(norm(faces[i : i + 1]) - norm(exemplar[i % 2 : i % 2 + 1]))[0, colours].mean()
                    for i in range(6)])
    assert stat["exemplar_colour"](ones)[0] == pytest.approx(want)
    assert stat["identity_auc"](ones)[0] == 1  # every reading is nearest its own content
    swapped = faces.copy()
    swapped[0] = content[1]  # content 0, exemplar 0 reads as content 1
    stat_swapped = supervision.supervision_statistics(np.zeros((6, 128)), swapped, content, exemplar, ref)
    n1 = norm(content)[:, [orc.CONTINUOUS.index(n) for n in orc.IDENTITY]]
    row0 = float(np.abs(n1[1] - n1[2]).mean() > np.abs(n1[1] - n1[0]).mean())  # content 2 farther than 0?
    assert stat_swapped["identity_auc"](ones)[0] == pytest.approx(((row0 / 2 + 1) / 2 + 2) / 3)
    # the unit is the content identity: a resample of content 2 only sees the shifted face
    only_last = np.array([[0.0, 0.0, 3.0]])
    assert stat["identity"](only_last)[0] == pytest.approx(0.1 / 13 / 2)
    with pytest.raises(ValueError, match="3 contents x 2 exemplars need 6 rows"):
        supervision.supervision_statistics(np.zeros((5, 128)), faces[:5], content, exemplar, ref)


def _reference():
    return supervision.portrait_reference(world.load_oracle(), n=60, dims=4)


def test_identical_methods_differ_by_exactly_zero_and_a_worse_one_is_seen():
    oracle = world.load_oracle()
    pset = world.person_set(4, 1, seed=4000)
    ex, _ = supervision.exemplars(2)
    good = pset.photos[:, None].expand(-1, 2, -1, -1, -1)  # outputs = the content photos
    bad = torch.zeros_like(good)  # a grey image for every output
    result = supervision.evaluate_supervision({"baseline": good, "same": good.clone(), "grey": bad},
                                              lambda x: x, pset.vectors, ex, oracle,
                                              reference=_reference(), n_resamples=200)
    same = {r["metric"]: r for r in result.paired if r["method"] == "same"}
    assert set(same) == {m.name for m in supervision.METRICS}
    assert all(r["value"] == 0 and r["lo"] == 0 and r["hi"] == 0 for r in same.values())
    grey = {r["metric"]: r for r in result.paired if r["method"] == "grey"}
    assert grey["identity"]["value"] > 0 and grey["identity"]["lo"] > 0  # worse with its interval
    value = {(r["method"], r["metric"]): r for r in result.rows}
    assert value["baseline", "identity"]["value"] < 0.1  # the oracle reads true photos well
    assert all(r["lo"] <= r["value"] <= r["hi"] for r in result.rows)
    with pytest.raises(ValueError, match=r"method 'short': outputs \(3, 2\), expected \(4, 2\)"):
        supervision.evaluate_supervision({"short": good[:3]}, lambda x: x, pset.vectors, ex, oracle,
                                         reference=_reference(), n_resamples=10)


def test_transfer_outputs_cover_every_content_and_exemplar(styles, codes):
    names, portraits, _ = styles
    trainer = supervision.make_trainer("redestyle", names, portraits, codes, iters=1, batch=2)
    pairs = trainer.paired
    out = supervision.transfer_outputs(trainer.g_ema, pairs.instyle[:3], pairs.exstyle[:2], space="W+")
    assert out.shape == (3, 2, 3, 64, 64) and out.abs().max() <= 1
    one = supervision.transfer_outputs(trainer.g_ema, pairs.instyle[1:2], pairs.exstyle[1:2], space="W+")
    assert torch.allclose(out[1, 1], one[0, 0], atol=1e-5)


def test_measure_compares_generators_with_their_own_codes(styles, codes, tmp_path, capsys):
    names, portraits, _ = styles
    models = supervision.baseline_models()
    ex, _ = supervision.exemplars(2)
    assert supervision.exemplar_codes("redestyle", models, ex).shape == (2, 10, 64)
    with torch.no_grad():
        zplus = models.generator.mapping_plus(models.encode_zplus(ex))
    assert torch.allclose(supervision.exemplar_codes("baseline", models, ex), zplus)
    g = supervision.make_trainer("redestyle", names, portraits, codes, iters=1, batch=2).g_ema
    result = supervision.measure({"redestyle": g, "baseline": g}, models, n_people=3, n_exemplars=2,
                                 n_reference=40, n_resamples=20)
    assert result.n_contents == 3 and result.n_exemplars == 2
    assert {r["method"] for r in result.rows} == {"redestyle", "redestyle, weight 0", "baseline",
                                                  "baseline, weight 0", "exemplar (copy)"}
    assert {r["method"] for r in result.paired} == {"redestyle", "redestyle, weight 0", "baseline, weight 0",
                                                    "exemplar (copy)"}
    value = {(r["method"], r["metric"]): r["value"] for r in result.rows}
    # the copied exemplar is far from the content's identity and carries the exemplar's colours (up to
    # the rounding of batched destylization)
    assert value["exemplar (copy)", "identity"] > value["redestyle, weight 0", "identity"]
    assert value["exemplar (copy)", "exemplar_colour"] < 1e-4 < value["redestyle, weight 0", "exemplar_colour"]
    # the CLI says which generator file is missing, in one line
    assert supervision.main(["measure", "--carry", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"redestyle supervision: {tmp_path / 'dsg_redestyle.pt'}: no fine-tuned generator (run `train --codes ...` first)"


def test_ship_names_the_missing_run(tmp_path, capsys):
    assert supervision.main(["ship", "--carry", str(tmp_path), "--dest", str(tmp_path / "w")]) == 1
    assert capsys.readouterr().err == (f"redestyle supervision: {tmp_path / 'dsg_redestyle.pt'}: no finished "
                                       f"Re-Destyle run to ship (run `train --codes redestyle` first)\n")
    assert not (tmp_path / "w").exists()


def test_records_are_compared_within_the_supervision_tolerances():
    rows = [{"method": "redestyle", "metric": m.name, "value": 0.5, "lo": 0.4, "hi": 0.6, "better": m.better}
            for m in supervision.METRICS]
    paired = [{**r, "baseline": "baseline", "value": 0.1, "lo": -0.1, "hi": 0.2} for r in rows]
    rec = supervision.record(supervision.SupervisionResult(rows, paired, 6, 4, 2000, 0, 0.95), set="quick")
    assert rec["set"] == "quick" and (rec["n_contents"], rec["n_exemplars"]) == (6, 4)
    assert supervision.compare_records(rec, rec) == (2 * len(rows) * 3, [])
    moved = {**rec, "rows": [dict(r) for r in rec["rows"]], "n_exemplars": 8}
    moved["rows"][0]["value"] += 0.009  # identity: within its 0.01
    moved["rows"][2]["hi"] += 0.05  # identity_auc: beyond its 0.03
    moved["rows"][4]["lo"] += 1.0  # style_fd: within 1 + 10 % of 0.4
    n, problems = supervision.compare_records(moved, rec)
    assert problems == ["n_exemplars: 4 recorded, 8 now",
                        "rows: redestyle / identity_auc hi 0.6500, recorded 0.6000 (tolerance 0.03 + 0 x recorded)"]
    assert supervision.set_sizes("quick") == (6, 4)
    with pytest.raises(ValueError, match="supervision set must be 'quick' or 'full', got 'huge'"):
        supervision.set_sizes("huge")


def test_the_readme_quotes_the_recorded_full_measure():
    """README's §4.4 tables are figures/supervision_full.json (the `measure` run, notebook 04's full set)."""
    import json
    import re

    from redestyle import experiments
    from redestyle.viz import checkout_root

    root = checkout_root()
    recorded = json.loads((root / "figures" / "supervision_full.json").read_text())
    assert (recorded["n_contents"], recorded["n_exemplars"]) == supervision.set_sizes("full")
    blocks = dict(re.findall(r"<!-- supervision-full: (.+?) -->\n(.*?)\n<!-- /supervision-full -->",
                             (root / "README.md").read_text(), re.S))
    expected = experiments.supervision_readme_tables(recorded)
    assert set(blocks) == set(expected), "README: one block per table of supervision_readme_tables"
    for name, table in expected.items():
        assert blocks[name].strip() == table, f"README §4.4 table {name!r} differs from figures/supervision_full.json"
