"""Procedural face renderer: determinism, shared geometry across domains, localized edits."""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest

from redestyle.imaging import to_tensor
from redestyle.miniature import (
    DOMAINS,
    HAIR_STYLES,
    LABELS,
    VECTOR_NAMES,
    Expression,
    FaceParams,
    Identity,
    landmarks,
    render,
    render_batch,
    sample_params,
    segment,
)

SIZE = 64
HEAD = [LABELS.index(n) for n in ("skin", "hair", "eye", "brow", "mouth", "glasses")]


def _params(seed: int) -> FaceParams:
    return sample_params(np.random.default_rng(seed))


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(row, col) [K, 2] of pixels whose colour differs by more than 2 levels."""
    diff = np.abs(a.astype(int) - b.astype(int)).max(-1)
    return np.argwhere(diff > 2)


def _dist(pix: np.ndarray, point: tuple[float, float]) -> np.ndarray:
    return np.hypot(pix[:, 1] - point[0], pix[:, 0] - point[1])


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(0)


def test_same_seed_same_face_and_image():
    a, b = _params(3), _params(3)
    assert a == b
    for domain in DOMAINS:
        np.testing.assert_array_equal(render(a, domain=domain), render(b, domain=domain))
    assert _params(4) != a
    assert not np.array_equal(render(_params(4)), render(a))


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("size", [32, 48, 64])
def test_output_dtype_shape_and_content(domain, size):
    img = render(_params(0), size=size, domain=domain)
    assert img.dtype == np.uint8 and img.shape == (size, size, 3)
    assert img.std() > 20  # a picture, not a flat fill
    labels = segment(_params(0), size=size, domain=domain)
    assert labels.shape == (size, size) and labels.max() < len(LABELS)


def test_batch_and_tensor():
    params = [_params(s) for s in range(3)]
    batch = render_batch(params, domain="portrait")
    assert batch.shape == (3, SIZE, SIZE, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[1], render(params[1], domain="portrait"))
    x = to_tensor(batch)
    assert tuple(x.shape) == (3, 3, SIZE, SIZE) and str(x.dtype) == "torch.float32"
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    corner = np.array([[[0, 127, 255]]], np.uint8)
    np.testing.assert_allclose(to_tensor(corner)[0, :, 0, 0].numpy(), [-1, 127 / 127.5 - 1, 1])
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(batch.astype(np.float32))


def test_import_does_not_load_torch():
    code = "import sys, redestyle.miniature; assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("seed", range(4))
def test_domains_differ_but_share_geometry(seed):
    p = _params(seed)
    photo, portrait = render(p, domain="photo"), render(p, domain="portrait")
    assert np.abs(photo.astype(int) - portrait.astype(int)).mean() > 15
    seg = {d: segment(p, domain=d) for d in DOMAINS}
    for labels in ([LABELS.index("skin")], HEAD):
        photo_c, portrait_c = (_centroid(np.isin(seg[d], labels)) for d in DOMAINS)
        assert np.abs(photo_c - portrait_c).max() < 3, (labels, photo_c, portrait_c)
    marks = {d: landmarks(p, domain=d) for d in DOMAINS}
    for name, (x, y) in marks["photo"].items():
        assert math.dist((x, y), marks["portrait"][name]) < 3, name
    # the photo's skin pixels carry the identity's skin tone (shading only scales it)
    skin = photo[seg["photo"] == LABELS.index("skin")].mean(0) / 255
    cos = skin @ np.array(p.identity.skin) / np.linalg.norm(skin) / np.linalg.norm(p.identity.skin)
    assert cos > 0.98


@pytest.mark.parametrize("domain", DOMAINS)
def test_landmarks_sit_on_the_drawn_features(domain):
    p = dataclasses.replace(_params(5), expression=Expression(eye_open=1.0), glasses=False)
    labels = segment(p, domain=domain)
    marks = landmarks(p, domain=domain)
    eyes = np.argwhere(labels == LABELS.index("eye"))
    mid = (marks["left_eye"][0] + marks["right_eye"][0]) / 2
    for name, side in (("left_eye", eyes[:, 1] < mid), ("right_eye", eyes[:, 1] >= mid)):
        cy, cx = eyes[side].mean(0)
        assert math.dist((cx, cy), marks[name]) < 1.5, name
    mouth = np.argwhere(labels == LABELS.index("mouth")).mean(0)
    assert math.dist(mouth[::-1], marks["mouth"]) < 2


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """Binary dilation by a (2k+1)^2 square."""
    out = mask.copy()
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_expression_changes_only_mouth_and_eyes(domain, seed):
    p = dataclasses.replace(_params(seed), glasses=False)
    marks = landmarks(p, domain=domain)

    def edit(feature: str, a: dict, b: dict, grow: int) -> tuple[np.ndarray, np.ndarray]:
        """Changed pixels between two expressions, and the feature's mask (either one, + grow)."""
        pa, pb = (dataclasses.replace(p, expression=Expression(**e)) for e in (a, b))
        changed = _changed(render(pa, domain=domain), render(pb, domain=domain))
        label = LABELS.index(feature)
        mask = (segment(pa, domain=domain) == label) | (segment(pb, domain=domain) == label)
        return changed, _dilate(mask, grow)

    # 3 px: the portrait's ink outline reaches past the (thin) labelled lip corners
    changed, mouth = edit("mouth", {"smile": -1, "mouth_open": 0}, {"smile": 1, "mouth_open": 1}, 3)
    assert len(changed) > 10
    assert mouth[changed[:, 0], changed[:, 1]].all()
    assert _dist(changed, marks["mouth"]).max() < 0.17 * SIZE

    changed, eyes = edit("eye", {"eye_open": 0}, {"eye_open": 1}, 2)
    assert len(changed) > 10
    assert eyes[changed[:, 0], changed[:, 1]].all()
    for e in (marks["left_eye"], marks["right_eye"]):  # both eyes close
        assert (_dist(changed, e) < 0.1 * SIZE).sum() > 3


@pytest.mark.parametrize("domain", DOMAINS)
def test_glasses_change_only_the_eye_band(domain):
    p = dataclasses.replace(_params(6), roll=0.0, glasses=False)
    with_glasses = dataclasses.replace(p, glasses=True)
    edit = _changed(render(p, domain=domain), render(with_glasses, domain=domain))
    marks = landmarks(p, domain=domain)
    eye_row = marks["left_eye"][1]
    assert np.abs(edit[:, 0] - eye_row).max() < 0.1 * SIZE
    for e in (marks["left_eye"], marks["right_eye"]):
        assert (_dist(edit, e) < 0.1 * SIZE).sum() > 10
    glasses = LABELS.index("glasses")
    assert (segment(with_glasses, domain=domain) == glasses).any()
    assert not (segment(p, domain=domain) == glasses).any()


def test_hair_styles_differ():
    base = dataclasses.replace(_params(7), roll=0.0, yaw=0.0)
    hair = LABELS.index("hair")
    masks = [segment(dataclasses.replace(base, identity=dataclasses.replace(base.identity,
                                                                            hair_style=k))) == hair
             for k in range(len(HAIR_STYLES))]
    for i in range(len(masks)):
        for j in range(i):
            assert (masks[i] != masks[j]).sum() > 20, (HAIR_STYLES[i], HAIR_STYLES[j])


def test_vector_round_trip():
    rng = np.random.default_rng(11)
    for _ in range(20):
        p = sample_params(rng)
        v = p.to_vector()
        assert v.shape == (len(VECTOR_NAMES),) and v.dtype == np.float64
        assert FaceParams.from_vector(v) == p
    assert dict(zip(VECTOR_NAMES, v))["smile"] == p.expression.smile
    with pytest.raises(ValueError, match="shape"):
        FaceParams.from_vector(v[:-1])


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Expression(smile=1.5), ValueError, r"Expression\.smile"),
        (lambda: Expression(eye_open=float("nan")), ValueError, r"Expression\.eye_open"),
        (lambda: Identity(eye_size=0.5), ValueError, r"Identity\.eye_size"),
        (lambda: Identity(skin=(1.0, 0.2, 2.0)), ValueError, r"Identity\.skin\[2\]"),
        (lambda: Identity(hair=(0.1, 0.2)), ValueError, r"Identity\.hair"),
        (lambda: Identity(hair_style=len(HAIR_STYLES)), ValueError, r"Identity\.hair_style"),
        (lambda: Identity(hair_style=1.0), TypeError, r"Identity\.hair_style"),
        (lambda: FaceParams(yaw=90.0), ValueError, r"FaceParams\.yaw"),
        (lambda: FaceParams(glasses="yes"), TypeError, r"FaceParams\.glasses"),
        (lambda: FaceParams(light_strength="bright"), TypeError, r"FaceParams\.light_strength"),
        (lambda: render(FaceParams(), domain="sketch"), ValueError, r"domain"),
        (lambda: render(FaceParams(), size=4), ValueError, r"size"),
    ],
)
def test_validation_names_the_field(build, error, message):
    with pytest.raises(error, match=message):
        build()
