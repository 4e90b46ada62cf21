"""Destylization accuracy experiments (redestyle.accuracy): known answers on constructed groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from redestyle import accuracy, data, experiments, metrics, zoo
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
    # The loss network needs no detection: every image of every method, here all 4.
    assert ident["within_irse_loss"] == pytest.approx(-1 / 3)
    assert ident["across_irse_loss"] == pytest.approx(1 / 3)
    # AUC: each within pair (-1/3) loses to 2 across pairs (1) and ties 2 (-1/3): (0+0+.5+.5)/4.
    assert ident["auc_irse_loss"] == pytest.approx(0.25)
    assert collapse["within_irse_loss"] == pytest.approx(1.0) and collapse["across_irse_loss"] == pytest.approx(1.0)
    assert collapse["auc_irse_loss"] == pytest.approx(0.5)  # all ties: indistinguishable
    assert out.details["collapse"]["consistency"]["irse_loss"]["n_embeddings"] == 4
    for row in out.rows:  # flat colours hold no face: every dlib measurement fails, counted
        assert row["n_images"] == 4 and row["no_face"] == 4
        assert row["n_scored"] == 0 and row["n_pairs"] == 0
        assert math.isnan(row["auc_dlib"]) and math.isnan(row["within_dlib"])
        assert math.isnan(row["err_yaw"]) and math.isnan(row["latent_dist"])
        assert not any(k.startswith("id_") for k in row)  # no face-vs-own-portrait column
    assert len(out.details["identity"]["failures"]) == 4
    assert out.group_of == ["a", "a", "b", "b"] and out.names == ["a/0", "a/1", "b/0", "b/1"]
    assert not out.scored.any() and not out.pairs.any()
    assert out.counts().startswith("scored on 0 of 4 images, the same for every method")


# ---------------------------------------------------------------------------------------------
# real faces: one set of scored images for every method; the portraits win nothing by construction


def test_every_method_is_scored_on_the_images_all_methods_kept(real_groups):
    def blank_first(x):  # blank the first portrait of every batch (batch_size=2: images 0, 2, 4, 6)
        faces = x.clone()
        faces[0] = 0
        return accuracy.Destylization(faces, None)

    out = accuracy.compare_destylizers({"identity": accuracy.identity_destylizer, "blank": blank_first},
                                       real_groups, batch_size=2)
    ident, blank = out.rows
    n = sum(g.shape[0] for g in real_groups.values())
    assert n == 8 and ident["n_images"] == blank["n_images"] == n
    # Each method's own losses are shown; the blanked images are left out for every method.
    assert ident["no_face"] == 0 and blank["no_face"] == 4
    assert {f.index for f in out.details["blank"]["failures"]} == {0, 2, 4, 6}
    assert out.scored.tolist() == [False, True] * 4 and out.pairs.tolist() == out.scored.tolist()
    for row in out.rows:
        assert row["n_scored"] == 4 and row["n_pairs"] == 4
        assert out.details[row["method"]]["consistency"]["dlib"]["n_embeddings"] == 4
    # On the kept images the blank method's faces are the portraits: every dlib number agrees,
    # which it could not if the identity row were scored on all 8 images.
    for column in ("within_dlib", "across_dlib", "auc_dlib", *(f"err_{a}" for a in metrics.ATTRIBUTES)):
        assert blank[column] == pytest.approx(ident[column], abs=1e-12), column
    emb, _ = metrics.embed_faces(out.portraits)
    kept = metrics.group_consistency({"astronaut": emb[[1, 3]], "grace_hopper": emb[[5, 7]]})
    everything = metrics.group_consistency({"astronaut": emb[:4], "grace_hopper": emb[4:]})
    assert ident["within_dlib"] == pytest.approx(kept["within_mean"])
    assert ident["within_dlib"] != pytest.approx(everything["within_mean"])
    for attribute in metrics.ATTRIBUTES:
        assert ident[f"err_{attribute}"] == 0.0  # the portraits-as-faces reference: 0 by construction
    assert "scored on 4 of 8 images, the same for every method" in out.counts()
    assert "no face: blank 4" in out.counts()


def test_common_faces_is_one_mask_for_all_methods():
    def reading(found):
        emb = np.where(np.array(found)[:, None], 1.0, np.nan) * np.ones((len(found), 128))
        return accuracy.FaceReadings(emb, [{} if f else None for f in found], [])

    mask = accuracy.common_faces({"a": reading([1, 1, 0, 1]), "b": reading([1, 0, 1, 1])})
    assert mask.tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="different numbers of images"):
        accuracy.common_faces({"a": reading([1, 1]), "b": reading([1, 1, 1])})


def test_the_portraits_win_no_consistency_column_by_construction(real_groups):
    """The ideal destylizer (each person's true photo for every portrait) beats the portraits.

    The removed ``id_dlib`` column (face vs its own portrait) scored the portraits 1.0 and the
    ideal answer less; consistency among the faces ranks them the right way round."""
    photos = {g: imgs[0] for g, imgs in real_groups.items()}  # sample_groups: the photo comes first

    def true_photo(x):
        out = [next(photos[g] for g, imgs in real_groups.items() if any(torch.equal(p, q) for q in imgs))
               for p in x]
        return accuracy.Destylization(torch.stack(out), None)

    out = accuracy.compare_destylizers({"portraits (input)": accuracy.identity_destylizer,
                                        "true photo": true_photo}, real_groups, batch_size=4)
    ident, answer = out.rows
    assert ident["n_scored"] == answer["n_scored"] == 8
    assert set(accuracy.CONSISTENCY_COLUMNS).isdisjoint({"id_dlib", "id_irse"})
    assert answer["within_dlib"] == pytest.approx(1.0) and ident["within_dlib"] < 0.99
    assert answer["auc_dlib"] == 1.0 and answer["auc_dlib"] >= ident["auc_dlib"]
    assert answer["across_dlib"] < answer["within_dlib"]
    # What the old column measured: the portraits score 1 against themselves, the answer less.
    sims, _ = metrics.paired_identity_similarity(out.portraits, out.runs["true photo"].faces)
    assert np.nanmean(sims) < 0.999


# ---------------------------------------------------------------------------------------------
# the default methods on tiny models


def test_default_destylizers_rows_cover_every_method(tiny_models):
    destylizers = accuracy.default_destylizers(tiny_models, baseline_steps=2)
    assert list(destylizers) == ["baseline", "redestyle 5-3-1", "redestyle 6-4-2", "restyle N=5"]
    groups = {"x": torch.zeros(2, 3, SIZE, SIZE), "y": torch.full((2, 3, SIZE, SIZE), 0.5)}
    out = accuracy.compare_destylizers(destylizers, groups, latent_avg=tiny_models.latent_avg,
                                       id_embed=mean_colour, batch_size=4)
    assert [r["method"] for r in out.rows] == list(destylizers)
    columns = {*accuracy.CONSISTENCY_COLUMNS, *accuracy.LOSS_NETWORK_COLUMNS, *accuracy.RETENTION_COLUMNS}
    for row in out.rows:
        assert columns <= set(row)
        assert math.isfinite(row["latent_dist"]) and row["latent_dist"] >= 0
        assert math.isfinite(row["auc_irse_loss"]) and row["sec_per_image"] > 0
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
           enumerate([("bob", 1), ("ann", 2), ("ann", 1), ("bob", 2)])}
    groups = accuracy.group_by_folder(img)
    assert list(groups) == ["ann", "bob"]
    assert groups["ann"][:, 0, 0, 0].tolist() == [2.0, 1.0]  # name order: ann/1, ann/2


@pytest.mark.parametrize("names, problem", [
    (["loose.png", "ann/1.png", "ann/2.png"], "1 image(s) directly in the folder, person unknown (e.g. 'loose.png')"),
    ([], "no images; same-person consistency needs different people"),
    (["ann/1.png", "ann/2.png"], "1 person ('ann'); same-person consistency needs different people"),
    (["ann/1.png", "ann/2.png", "bob/1.png"], "1 person(s) with 1 portrait (e.g. 'bob'); same-person consistency needs 2"),
])
def test_group_by_folder_layout_errors_name_the_folder(names, problem):
    images = {n: torch.zeros(1, 3, 4, 4) for n in names}
    with pytest.raises(ValueError) as err:
        accuracy.group_by_folder(images, folder="/data/cartoon")
    message = str(err.value)
    assert message.startswith(f"/data/cartoon: {problem}") and "\n" not in message
    assert message.endswith("expected <folder>/<person>/<portrait>, >= 2 people with >= 2 portraits each")


def test_group_by_folder_reads_the_layout_from_disk(tmp_path):
    """data.load_folder + group_by_folder, as notebook 03 with data_dir (files of any depth)."""
    for i, name in enumerate(["ann/a.png", "ann/extra/b.png", "bob/c.jpg", "bob/d.png"]):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(tmp_path / name)
    images, unreadable = data.load_folder(tmp_path, size=4)
    groups = accuracy.group_by_folder(images, folder=tmp_path)
    assert unreadable == {} and {k: v.shape[0] for k, v in groups.items()} == {"ann": 2, "bob": 2}
    (tmp_path / "bob" / "d.png").unlink()
    images, _ = data.load_folder(tmp_path, size=4)
    with pytest.raises(ValueError) as err:
        accuracy.group_by_folder(images, folder=tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: 1 person(s) with 1 portrait (e.g. 'bob')")


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
