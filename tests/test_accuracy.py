"""Destylization accuracy experiments (redestyle.accuracy): known answers on constructed groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from redestyle import accuracy, experiments, metrics, zoo
from redestyle import destylize as ds
from redestyle.data import sample_portraits
from redestyle.inversion import restyle

SIZE = 64  # the tiny profile's encoder resolution; dlib still finds the bundled faces at 64 px


def mean_colour(x: torch.Tensor) -> torch.Tensor:
    """An embedding function: the mean colour [B, 3] (cosine of colours is easy to compute by hand)."""
    return x.mean(dim=(2, 3))


def flat(rgb, n=1) -> torch.Tensor:
    """n constant images of colour rgb (values in [-1, 1]): [n, 3, SIZE, SIZE]."""
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(n, 3, SIZE, SIZE).clone()


RED, GREEN = (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0)  # cosine -1/3


@pytest.fixture(scope="module")
def real_groups():
    return accuracy.sample_groups(SIZE)


@pytest.fixture(scope="module")
def tiny_models():
    return zoo.build_models("tiny", methods=("restyle_psp", "dsg_zplus"), seed=0, with_lpips=True,
                            g_prime_style="cartoon")


# ---------------------------------------------------------------------------------------------
# consistency on a group design with a known answer (embedding: mean colour; dlib finds nothing)


def test_group_design_known_consistency_and_failures():
    # Person A and B each have a red and a green portrait: within-person pairs are red-green
    # (cos -1/3), across-person pairs are 2x same colour (cos 1) and 2x red-green.
    groups = {"a": torch.cat([flat(RED), flat(GREEN)]), "b": torch.cat([flat(RED), flat(GREEN)])}

    def all_red(x):  # every portrait becomes the same face
        return accuracy.Destylization(flat(RED, x.shape[0]), None)

    out = accuracy.compare_destylizers({"identity": accuracy.identity_destylizer, "collapse": all_red},
                                       groups, id_embed=mean_colour, batch_size=3)
    ident, collapse = out.rows
    assert ident["within_irse"] == pytest.approx(-1 / 3)
    assert ident["across_irse"] == pytest.approx(1 / 3)
    # AUC: each within pair (-1/3) loses to 2 across pairs (1) and ties 2 (-1/3): (0+0+.5+.5)/4.
    assert ident["auc_irse"] == pytest.approx(0.25)
    assert ident["id_irse"] == pytest.approx(1.0)
    assert collapse["within_irse"] == pytest.approx(1.0) and collapse["across_irse"] == pytest.approx(1.0)
    assert collapse["auc_irse"] == pytest.approx(0.5)  # all ties: indistinguishable
    assert collapse["id_irse"] == pytest.approx((1 - 1 / 3) / 2)  # red->red 1, green->red -1/3
    for row in out.rows:  # flat colours hold no face: every dlib measurement fails, counted
        assert row["n_images"] == 4 and row["no_face"] == 4
        assert row["n"] == 0 and row["n_failed"] == 4
        assert math.isnan(row["auc_dlib"]) and math.isnan(row["id_dlib"])
        assert math.isnan(row["err_yaw"]) and math.isnan(row["latent_dist"])
    assert len(out.details["identity"]["failures"]) == 4
    assert out.group_of == ["a", "a", "b", "b"] and out.names == ["a/0", "a/1", "b/0", "b/1"]


# ---------------------------------------------------------------------------------------------
# real faces: the identity destylizer is perfect, blanked faces are failures


def test_identity_destylizer_on_real_faces_is_perfect_and_blanks_are_counted(real_groups):
    def blank_first(x):  # blank the first portrait of every batch (batch_size=2: images 0, 2, 4, 6)
        faces = x.clone()
        faces[0] = 0
        return accuracy.Destylization(faces, None)

    out = accuracy.compare_destylizers({"identity": accuracy.identity_destylizer, "blank": blank_first},
                                       real_groups, batch_size=2)
    ident, blank = out.rows
    n = sum(g.shape[0] for g in real_groups.values())
    assert n == 8 and ident["n_images"] == n
    assert ident["no_face"] == 0 and ident["n"] == n and ident["n_failed"] == 0
    assert ident["id_dlib"] == pytest.approx(1.0, abs=1e-9)
    for attribute in metrics.ATTRIBUTES:
        assert ident[f"err_{attribute}"] == 0.0
    # Two people, four portraits each: the AUC is that of the portraits' own embeddings.
    emb, _ = metrics.embed_faces(out.portraits)
    want = metrics.group_consistency({"astronaut": emb[:4], "grace_hopper": emb[4:]})
    assert ident["auc_dlib"] == pytest.approx(want["auc"])
    assert ident["within_dlib"] > ident["across_dlib"]
    assert blank["no_face"] == 4 and blank["n"] == 4 and blank["n_failed"] == 4
    assert blank["id_dlib"] == pytest.approx(1.0, abs=1e-9)  # over the faces found
    assert {f.index for f in out.details["blank"]["failures"]} == {0, 2, 4, 6}
    assert blank["err_mouth_open"] == 0.0


# ---------------------------------------------------------------------------------------------
# the default methods on tiny models


def test_default_destylizers_rows_cover_every_method(tiny_models):
    destylizers = accuracy.default_destylizers(tiny_models, baseline_steps=2)
    assert list(destylizers) == ["baseline", "redestyle 5-3-1", "redestyle 6-4-2", "restyle N=5"]
    groups = {"x": torch.zeros(2, 3, SIZE, SIZE), "y": torch.full((2, 3, SIZE, SIZE), 0.5)}
    out = accuracy.compare_destylizers(destylizers, groups, latent_avg=tiny_models.latent_avg,
                                       id_embed=mean_colour, batch_size=4)
    assert [r["method"] for r in out.rows] == list(destylizers)
    for row in out.rows:
        assert set(accuracy.CONSISTENCY_COLUMNS) | set(accuracy.RETENTION_COLUMNS) <= set(row)
        assert math.isfinite(row["latent_dist"]) and row["latent_dist"] >= 0
        assert math.isfinite(row["auc_irse"]) and row["sec_per_image"] > 0
        assert out.runs[row["method"]].faces.shape == (4, 3, 64, 64)
    table = experiments.format_table(out.rows, accuracy.CONSISTENCY_COLUMNS, digits=3)
    assert all(name in table for name in destylizers)


def test_restyle_methods_return_the_redestyle_faces_and_their_codes(tiny_models):
    portraits = sample_portraits(SIZE)["astronaut_ink"]
    m = tiny_models
    out = accuracy.default_destylizers(m, schedules=("2-1",), restyle_iters=3)
    with torch.no_grad():
        steps = restyle(m.encoder("restyle_psp"), m.generator, portraits, n_iters=3,
                        latent_avg=m.latent_avg, avg_image=m.avg_image)
        single = out["restyle N=3"](portraits)
        torch.testing.assert_close(single.faces, steps[-1].image)
        torch.testing.assert_close(single.w_plus, steps[-1].latent)
        chained = out["redestyle 2-1"](portraits)
        # The W+ code renders the face (registered noise), as the realism proxy assumes.
        torch.testing.assert_close(m.generator.decode(chained.w_plus, randomize_noise=False), chained.faces)
    assert not torch.allclose(chained.faces, single.faces)


def test_no_baseline_without_its_parts():
    models = zoo.build_models("tiny", methods=("restyle_psp",), seed=0)
    assert "baseline" not in accuracy.default_destylizers(models)


def test_protocol_destylizers_post_process_every_method_alike(tiny_models):
    m = tiny_models
    portraits = sample_portraits(SIZE)["astronaut_ink"]
    args = ds.baseline_arguments(m, ds.DestyleOptions(method="baseline", steps=1))
    with torch.no_grad():
        plain = ds.redestyle(m.encoder("restyle_psp"), m.generator, portraits, schedule="2-1",
                             latent_avg=m.latent_avg, avg_image=m.avg_image)
        post = ds.redestyle(m.encoder("restyle_psp"), m.generator, portraits, schedule="2-1",
                            latent_avg=m.latent_avg, avg_image=m.avg_image, preserve_color=True,
                            truncation=0.7, truncation_center="zero")
    for setting, colour, psi, expected in (("none", False, 1.0, plain), ("dualstylegan", True, 0.7, post)):
        out = accuracy.protocol_destylizers(m, postprocessing=setting, schedules=("2-1",), restyle_iters=(1, 2),
                                            baseline_steps=1)
        assert list(out) == ["baseline", "redestyle 2-1", "restyle N=1", "restyle N=2"]
        torch.testing.assert_close(out["redestyle 2-1"](portraits).faces, expected.image)
        base = ds.baseline(portraits=portraits, **{**args, "truncation": psi, "preserve_color": colour})
        torch.testing.assert_close(out["baseline"](portraits).faces, base.image)
    # DualStyleGAN's setting for the baseline is what `redestyle destylize --method baseline` gives
    official = accuracy.default_destylizers(m, baseline_steps=1, schedules=())["baseline"](portraits)
    torch.testing.assert_close(official.faces, base.image)
    assert not torch.allclose(plain.image, post.image)
    with pytest.raises(ValueError, match="postprocessing must be one of none, dualstylegan"):
        accuracy.protocol_destylizers(m, postprocessing="colour")


def test_baseline_is_seeded(tiny_models):
    portraits = sample_portraits(SIZE)["astronaut_flat"]
    run = accuracy.default_destylizers(tiny_models, baseline_steps=1)["baseline"]
    out, again = run(portraits), run(portraits)
    assert out.faces.shape == (1, 3, 64, 64) and out.w_plus.shape == (1, 10, 64)
    torch.testing.assert_close(again.faces, out.faces)  # the noise maps are drawn from `seed`


# ---------------------------------------------------------------------------------------------
# groups, batching, figure helpers


def test_sample_groups_are_the_bundled_samples_and_deterministic(real_groups, tiny_models):
    assert list(real_groups) == ["astronaut", "grace_hopper"]
    torch.testing.assert_close(real_groups["astronaut"], torch.cat(list(sample_portraits(SIZE).values())))
    assert real_groups["grace_hopper"].shape == (4, 3, SIZE, SIZE)
    a = accuracy.sample_groups(SIZE, decoder=tiny_models.generator, n_generated=2, real=False, seed=3)
    b = accuracy.sample_groups(SIZE, decoder=tiny_models.generator, n_generated=2, real=False, seed=3)
    assert list(a) == ["generated_0", "generated_1"]
    torch.testing.assert_close(a["generated_1"], b["generated_1"])
    assert not torch.equal(a["generated_0"], a["generated_1"])
    with pytest.raises(ValueError, match="needs a decoder"):
        accuracy.sample_groups(SIZE, n_generated=1, real=False)


def test_group_by_folder():
    img = {f"{p}/{i}.png": torch.full((1, 3, 4, 4), float(k)) for k, (p, i) in
           enumerate([("bob", 1), ("ann", 2), ("ann", 1)])}
    groups = accuracy.group_by_folder(img)
    assert list(groups) == ["ann", "bob"]
    assert groups["ann"][:, 0, 0, 0].tolist() == [2.0, 1.0]  # name order: ann/1, ann/2
    with pytest.raises(ValueError, match="sub-folder"):
        accuracy.group_by_folder({"loose.png": torch.zeros(1, 3, 4, 4)})


def test_run_destylizer_batches_and_times():
    x = torch.randn(5, 3, 8, 8)
    calls = []

    def record(batch):
        calls.append(batch.shape[0])
        return accuracy.Destylization(batch * 2, None)

    run = accuracy.run_destylizer(record, x, batch_size=2)
    assert calls == [2, 2, 1]
    torch.testing.assert_close(run.faces, x * 2)
    assert run.w_plus is None and run.seconds >= 0 and run.sec_per_image == run.seconds / 5
    with pytest.raises(ValueError, match="batch_size"):
        accuracy.run_destylizer(record, x, batch_size=0)


def test_closeups(real_groups):
    boxes = accuracy.closeup_boxes(real_groups["grace_hopper"][0])
    (et, eb, el, er), (mt, mb, ml, mr) = boxes["eyes"], boxes["mouth"]
    assert (et + eb) / 2 < (mt + mb) / 2  # eyes above the mouth
    assert el < ml < mr < er  # the mouth is narrower than the eyes and brows
    for top, bottom, left, right in (boxes["eyes"], boxes["mouth"]):
        assert right - left == pytest.approx(2 * (bottom - top))  # aspect 2
    crop = accuracy.crop_region(real_groups["grace_hopper"][0], boxes["eyes"], height=24)
    assert crop.shape[:2] == (3, 24) and abs(crop.shape[2] - 48) <= 1  # aspect 2, up to pixel rounding
    # No face: the fixed FFHQ boxes.
    assert accuracy.closeup_boxes(torch.zeros(3, SIZE, SIZE)) == accuracy._FFHQ_BOXES


def test_crop_region_pads_outside_with_the_border():
    image = torch.arange(16.0).view(1, 4, 4).expand(3, 4, 4)
    inside = accuracy.crop_region(image, (0.0, 0.5, 0.5, 1.0), height=2)
    torch.testing.assert_close(inside[0], torch.tensor([[2.0, 3.0], [6.0, 7.0]]))
    outside = accuracy.crop_region(image, (-0.25, 0.25, -0.25, 0.25), height=2)
    torch.testing.assert_close(outside[0], torch.tensor([[0.0, 0.0], [0.0, 0.0]]))


def test_group_grid_rows():
    groups = {"a": flat(RED, 2), "b": flat(GREEN, 3)}
    out = accuracy.compare_destylizers({"m": accuracy.identity_destylizer}, groups)
    rows, row_labels, col_labels = accuracy.group_grid_rows(out, ["m"], size=32)
    assert row_labels == ["portrait", "m"] and col_labels == ["a 0", "a 1", "b 0", "b 1", "b 2"]
    assert [len(r) for r in rows] == [5, 5] and rows[0][0].shape == (3, 32, 32)
    np.testing.assert_allclose(rows[1][4].numpy(), flat(GREEN)[0, :, :32, :32].numpy())


def test_closeup_rows(real_groups):
    groups = {"grace_hopper": real_groups["grace_hopper"][:2]}
    out = accuracy.compare_destylizers({"same": accuracy.identity_destylizer}, groups)
    rows, labels, cols = accuracy.closeup_rows(out, ["same"], index=1, height=20)
    assert labels == ["grace_hopper #1"] and cols == ["portrait", "same"]
    portrait_tile, face_tile = rows[0]
    assert portrait_tile.shape == (3, 40, 40)  # eyes (20 x 40) over mouth (20 x 40)
    torch.testing.assert_close(face_tile, portrait_tile)  # the identity destylizer: same pixels
