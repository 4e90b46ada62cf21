"""Destylization metrics: known-answer cases for AUC / consistency / pose, and dlib on real faces."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from conftest import samples_dir

from redestyle import metrics
from redestyle.imaging import open_rgb
from redestyle.metrics import (
    ATTRIBUTES,
    Failure,
    attribute_errors,
    embed_faces,
    group_consistency,
    head_pose,
    identity_similarity,
    irse50_embedder,
    landmark_attributes,
    latent_distance_to_avg,
    paired_identity_similarity,
    points_attributes,
    realism_proxy,
    retention_errors,
    roc_auc,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# ROC AUC and group consistency (pure, known answers)


def brute_force_auc(pos, neg) -> float:
    """P(pos > neg) + 0.5 P(pos == neg) by counting every pair."""
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_known_cases():
    assert roc_auc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1, 0.2], [0.9, 0.8, 0.7]) == 0.0
    assert roc_auc([0.3, 0.5, 0.7], [0.3, 0.5, 0.7]) == 0.5  # identical distributions
    # By hand: 0.9 beats both (2), each 0.5 ties 0.5 (0.5) and beats 0.1 (1): 5 of 6 pairs.
    assert roc_auc([0.9, 0.5, 0.5], [0.5, 0.1]) == pytest.approx(5 / 6)


def test_roc_auc_matches_pair_count_with_ties():
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 6, 40).astype(float)  # few values: many ties
    neg = rng.integers(0, 5, 25).astype(float)
    assert roc_auc(pos, neg) == pytest.approx(brute_force_auc(pos, neg), abs=1e-12)


def test_roc_auc_needs_both_kinds():
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_auc([], [0.1])


def test_group_consistency_separable():
    e = np.eye(4)
    groups = {"a": [e[0], e[0] * 2.0], "b": [e[1], e[1]], "c": np.stack([e[2]])}
    out = group_consistency(groups)
    # Within pairs: (a0, a1), (b0, b1): cosine 1. Across: the 5 * 4 / 2 - 2 = 8 others: cosine 0.
    assert out["n_within"] == 2 and out["n_across"] == 8
    assert out["within_mean"] == pytest.approx(1.0)
    assert out["across_mean"] == pytest.approx(0.0)
    assert out["gap"] == pytest.approx(1.0)
    assert out["auc"] == 1.0
    assert (out["n_groups"], out["n_embeddings"], out["n_missing"]) == (3, 5, 0)


def test_group_consistency_known_angles_and_missing():
    e = np.eye(3)
    diag = (e[0] + e[1]) / math.sqrt(2)
    nan = np.full(3, np.nan)  # a face that was not found
    out = group_consistency({"a": [e[0], diag, nan], "b": [e[2], e[1]]})
    # Within: a: cos(e0, diag) = 1/sqrt2; b: cos(e2, e1) = 0. Across: e0.e2 = 0, e0.e1 = 0,
    # diag.e2 = 0, diag.e1 = 1/sqrt2.
    assert out["within_mean"] == pytest.approx((1 / math.sqrt(2) + 0) / 2)
    assert out["across_mean"] == pytest.approx((1 / math.sqrt(2)) / 4)
    # AUC by hand: within {0.707, 0} vs across {0, 0, 0, 0.707}:
    # 0.707 beats 3, ties 1 -> 3.5; 0 ties 3, loses 1 -> 1.5; (3.5 + 1.5) / 8.
    assert out["auc"] == pytest.approx(5 / 8)
    assert out["n_missing"] == 1 and out["n_embeddings"] == 4


def test_group_consistency_indistinguishable():
    v = np.array([1.0, 2.0, 3.0])
    out = group_consistency({"a": [v, v], "b": [v, v]})
    assert out["within_mean"] == pytest.approx(out["across_mean"])
    assert out["auc"] == 0.5


# --------------------------------------------------------------------------------------------
# landmark attributes and head pose (pure, known answers)

# iBUG-68 left-right mirror: index i of the mirrored face is index MIRROR[i] of the original.
MIRROR = np.array(
    list(range(16, -1, -1))  # chin
    + list(range(26, 16, -1))  # eyebrows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer mouth
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner mouth
)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) Ry(-yaw) Rx(pitch) in image axes (x right, y down, z into the image)."""
    y, p, r = np.deg2rad([-yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def posed_landmarks(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """68 landmarks whose pose points are the generic head rotated, scaled and projected."""
    lm = np.zeros((68, 2))
    pts = metrics._POSE_MODEL @ rotation(yaw, pitch, roll).T
    lm[metrics._POSE_INDICES] = pts[:, :2] * 0.4 + [300.0, 260.0]
    return lm


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, -10, 5), (-40, 15, -20), (10, 30, 45)])
def test_head_pose_recovers_known_rotation(angles):
    np.testing.assert_allclose(head_pose(posed_landmarks(*angles)), angles, atol=1e-6)


def test_head_pose_sign_conventions():
    lm = posed_landmarks(0, 0, 0)
    turned = lm.copy()
    turned[30, 0] += 20  # nose tip to the image's right
    assert head_pose(turned)[0] > 5
    looking_down = lm.copy()
    looking_down[30, 1] += 20  # nose tip down
    assert head_pose(looking_down)[1] > 5


def test_mirrored_landmarks_negate_yaw_and_roll():
    lm = posed_landmarks(25, -10, 8)
    mirrored = lm[MIRROR] * [-1, 1] + [1000, 0]
    yaw, pitch, roll = head_pose(lm)
    yaw_m, pitch_m, roll_m = head_pose(mirrored)
    assert (yaw_m, pitch_m, roll_m) == pytest.approx((-yaw, pitch, -roll), abs=1e-9)


def test_points_attributes_hand_computed():
    lm = np.zeros((68, 2))
    eye = np.array([[0, 0], [1, -1], [3, -1], [4, 0], [3, 1], [1, 1]], float)  # EAR = (2+2)/(2*4)
    lm[36:42] = eye
    lm[42:48] = eye + [10, 0]  # eye centres 10 apart
    lm[48], lm[54] = (2, 20), (12, 20)  # mouth width 10
    lm[[61, 62, 63]] = [(5, 19), (7, 19), (9, 19)]
    lm[[67, 66, 65]] = [(5, 22), (7, 22), (9, 22)]  # inner lips 3 apart
    lm[30], lm[8] = (7, 10), (7, 30)
    got = points_attributes(lm)
    assert set(got) == set(ATTRIBUTES)
    assert got["eye_open"] == pytest.approx(0.5)
    assert got["mouth_width"] == pytest.approx(1.0)
    assert got["mouth_open"] == pytest.approx(0.3)


def test_attribute_errors_counts_failures():
    a = dict.fromkeys(ATTRIBUTES, 1.0)
    b = dict.fromkeys(ATTRIBUTES, 3.0)
    out = attribute_errors([a, a, None], [b, a, a])
    assert out["n"] == 2 and out["n_failed"] == 1
    assert out["mean_abs_error"] == {k: pytest.approx(1.0) for k in ATTRIBUTES}
    assert out["per_pair"][2] is None


# --------------------------------------------------------------------------------------------
# latent realism proxy


def test_latent_distance_known():
    avg = torch.randn(512, dtype=torch.float64)
    direction = torch.zeros(18, 512, dtype=torch.float64)
    direction[:9, 0] = 2.0  # 9 layers at distance 2, 9 at distance 4: mean 3
    direction[9:, 1] = 4.0
    w = torch.stack([avg + direction, avg.expand(18, 512)])
    np.testing.assert_allclose(latent_distance_to_avg(w, avg).numpy(), [3.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(
        latent_distance_to_avg(w, avg.expand(18, 512)).numpy(), [3.0, 0.0], atol=1e-12
    )
    with pytest.raises(ValueError, match="latent_avg"):
        latent_distance_to_avg(w, torch.zeros(14, 512))
    out = realism_proxy(w, avg)
    assert out["latent_distance_mean"] == pytest.approx(1.5) and out["id_similarity"] is None


# --------------------------------------------------------------------------------------------
# embedding-function backend (ArcFace-style), with stand-in networks


def test_embedding_function_gets_256_inputs():
    seen = []
    proj = torch.randn(3 * 256 * 256, 8, generator=torch.Generator().manual_seed(0))

    def embed(x):
        seen.append(tuple(x.shape))
        assert x.min() >= -1 and x.max() <= 1
        return x.flatten(1) @ proj

    x = torch.rand(3, 3, 1024, 1024) * 2 - 1
    emb, failures = embed_faces(x, backend=embed, batch_size=2)
    assert seen == [(2, 3, 256, 256), (1, 3, 256, 256)]
    assert emb.shape == (3, 8) and failures == []
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0)
    assert identity_similarity(x[0], x[0].clone(), backend=embed) == pytest.approx(1.0, abs=1e-6)


def test_irse50_embedder_sees_only_the_face_crop():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.AvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 512)
    ).double()
    fn = irse50_embedder(backbone)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    y = x.clone()
    y[:, :, :35] = 0.3  # outside rows 35:223 and columns 32:220
    y[:, :, :, 220:] = -0.7
    out_x, out_y = fn(x), fn(y)
    assert out_x.shape == (2, 512) and out_x.dtype == torch.float64
    torch.testing.assert_close(out_x, out_y)
    torch.testing.assert_close(out_x.norm(dim=1), torch.ones(2, dtype=torch.float64))
    y[:, :, 100, 100] = 5.0  # inside the crop: changes the embedding
    assert not torch.allclose(fn(y), out_x)


# --------------------------------------------------------------------------------------------
# dlib on real faces


def test_identical_images_similarity_one_and_zero_error(astronaut):
    assert identity_similarity(astronaut, astronaut.copy()) == pytest.approx(1.0, abs=1e-6)
    out = retention_errors([astronaut], [astronaut.copy()])
    assert out["n"] == 1 and out["n_failed"] == 0 and out["failures"] == []
    assert out["mean_abs_error"] == dict.fromkeys(ATTRIBUTES, 0.0)


def test_tensor_images_match_arrays(astronaut):
    t = torch.from_numpy(astronaut).permute(2, 0, 1).float() / 127.5 - 1  # [3, H, W] in [-1, 1]
    (attrs_t,), _ = landmark_attributes(t[None])
    (attrs_a,), _ = landmark_attributes([astronaut])
    assert attrs_t == attrs_a


def test_no_face_is_counted_not_dropped(astronaut, noise):
    attrs, failures = landmark_attributes([astronaut, noise], names=["astronaut", "noise.png"])
    assert attrs[0] is not None and attrs[1] is None
    assert failures == [Failure(1, "noise.png", failures[0].error)]
    assert "noise.png: no face found" in failures[0].error

    out = retention_errors(
        [astronaut, noise], [astronaut, astronaut], names=["astronaut", "noise.png"]
    )
    assert out["n"] == 1 and out["n_failed"] == 1
    assert [f.name for f in out["failures"]] == ["noise.png (source)"]

    emb, failures = embed_faces([noise, astronaut])
    assert np.isnan(emb[0]).all() and np.isfinite(emb[1]).all()
    assert [f.index for f in failures] == [0]
    sims, failures = paired_identity_similarity([astronaut], [noise])
    assert np.isnan(sims[0]) and failures[0].name == "image 0 (destylized)"
    with pytest.raises(metrics.NoFaceError):
        identity_similarity(astronaut, noise)


def test_mirror_flips_yaw_on_a_turned_face():
    # 081680 (FFHQ) is turned about 28 degrees: mirroring must flip the sign, keep the size.
    img = np.asarray(open_rgb(samples_dir() / "content" / "081680.jpg"))
    (a, b), failures = landmark_attributes([img, img[:, ::-1]])
    assert failures == []
    assert a["yaw"] > 15 and b["yaw"] < -15
    assert abs(a["yaw"] + b["yaw"]) < 5
    assert abs(a["pitch"] - b["pitch"]) < 5
    assert abs(a["mouth_width"] - b["mouth_width"]) < 0.1


def test_astronaut_mirror_pose_and_identity(astronaut):
    mirrored = astronaut[:, ::-1]
    (a, b), _ = landmark_attributes([astronaut, mirrored])
    assert abs(a["yaw"] + b["yaw"]) < 5 and abs(a["roll"] + b["roll"]) < 3
    # Plausible values for a closed-mouth, open-eyed, nearly frontal face.
    assert 0.2 < a["eye_open"] < 0.45 and 0.8 < a["mouth_width"] < 1.3 and a["mouth_open"] < 0.3


def test_sample_faces_consistency_and_failures():
    """dlib on DualStyleGAN's samples: every content photo has a face, the anime and Pixar-like
    cartoon have none (shared/data/README.md), and a person's mirror is closer than others."""
    folder = samples_dir()
    names = sorted(p.name for p in (folder / "content").glob("*.jpg"))
    photos = [np.asarray(open_rgb(folder / "content" / n)) for n in names]
    attrs, failures = landmark_attributes(photos, names=names)
    assert failures == [] and len(attrs) == 5
    for name, at in zip(names, attrs):
        assert 0.1 < at["eye_open"] < 0.5 and 0.6 < at["mouth_width"] < 1.4, (name, at)

    hard = [folder / "anime" / "16031200.jpg", folder / "cartoon" / "Cartoons_00038_07.jpg"]
    emb, failures = embed_faces(
        [np.asarray(open_rgb(p)) for p in hard], names=[p.name for p in hard]
    )
    assert [f.name for f in failures] == [p.name for p in hard] and np.isnan(emb).all()

    groups = {}
    for name, img in zip(names[:3], photos[:3]):
        img = img[::2, ::2]  # 512 px: the face stays large, detection is 4x cheaper
        e, f = embed_faces([img, img[:, ::-1]])
        assert f == []
        groups[name] = e
    out = group_consistency(groups)
    assert out["auc"] == 1.0 and out["within_mean"] > out["across_mean"]
    assert (out["n_within"], out["n_across"]) == (3, 12)
