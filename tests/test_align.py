"""FFHQ alignment: the quad geometry, dlib detection choices, and the folder runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import samples_dir
from PIL import Image

from redestyle.align import (
    NoFaceError,
    _pick_face,
    align_face,
    align_folder,
    detect_landmarks,
    face_quad,
)
from redestyle.cli import main as redestyle_main
from redestyle.imaging import open_rgb

REPO = Path(__file__).resolve().parents[1]


def synthetic_landmarks(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """68 landmarks whose eye means and mouth corners are the given points."""
    lm = np.zeros((68, 2))
    lm[36:42] = eye_left
    lm[42:48] = eye_right
    lm[48] = mouth_left
    lm[54] = mouth_right
    return lm


def test_face_quad_hand_computed():
    # Eyes 200 px apart, mouth 200 px below their midpoint: eye_to_eye = (200, 0),
    # eye_to_mouth = (0, 200); x = e2e - rot(e2m) = (400, 0) -> unit (1, 0) scaled by
    # max(2 * 200, 1.8 * 200) = 400; y = rot(x) = (0, 400); centre = (500, 500) + 0.1 * (0, 200).
    lm = synthetic_landmarks((400, 500), (600, 500), (420, 700), (580, 700))
    quad, qsize = face_quad(lm)
    want = np.array([[100, 120], [100, 920], [900, 920], [900, 120]])
    np.testing.assert_allclose(quad, want, atol=1e-9)
    assert qsize == pytest.approx(800.0)


def test_face_quad_mouth_term_and_rotation():
    # A long face: 1.8 * |eye_to_mouth| = 1.8 * 300 = 540 > 2 * 200, so the half-side is 540.
    lm = synthetic_landmarks((400, 500), (600, 500), (450, 800), (550, 800))
    quad, qsize = face_quad(lm)
    assert qsize == pytest.approx(2 * 540.0)
    # Rotating the face rotates its quad the same way (about the same centre).
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([500.0, 600.0])
    quad_r, qsize_r = face_quad((lm - centre) @ rot.T + centre)
    np.testing.assert_allclose(quad_r, (quad - centre) @ rot.T + centre, atol=1e-9)
    assert qsize_r == pytest.approx(qsize)


def test_face_quad_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        face_quad(np.zeros((5, 2)))


def test_pick_face_prefers_area_then_score():
    # A face twice as large wins even with a lower score.
    assert _pick_face([100 * 100, 50 * 50], [0.5, 2.0]) == 0
    assert _pick_face([50 * 50, 100 * 100], [2.0, 0.5]) == 1
    # Boxes of nearly the same size (HOG pyramid steps): the detector score decides.
    assert _pick_face([91 * 91, 90 * 91], [0.12, 1.16]) == 1


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def astronaut_aligned(astronaut) -> Image.Image:
    return align_face(astronaut, size=1024)


# Where FFHQ alignment puts the eye centres in a 1024 image. When the eye term dominates the
# quad (2 |eye_to_eye| >= 1.8 |eye_to_mouth|, the usual case) the eyes are 1024 / 4 = 256 px
# apart and centred horizontally, and sit 0.1 |eye_to_mouth| above the centre, i.e.
# 512 - 0.1 * 256 * |e2m| / |e2e| ~ 486 px for an average face (|e2m| ~ |e2e|).
CANONICAL_EYES_1024 = np.array([[384.0, 486.0], [640.0, 486.0]])


def test_align_astronaut_canonical_eyes(astronaut_aligned):
    assert astronaut_aligned.size == (1024, 1024)
    assert astronaut_aligned.mode == "RGB"
    lm, info = detect_landmarks(astronaut_aligned)
    assert info["n_faces"] == 1
    eyes = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])
    assert np.abs(eyes - CANONICAL_EYES_1024).max() < 0.02 * 1024, eyes
    # Aligning an aligned face again is (nearly) the identity: its quad is the image square.
    quad, qsize = face_quad(lm)
    corners = np.array([[0, 0], [0, 1024], [1024, 1024], [1024, 0]])
    assert np.abs(quad - corners).max() < 0.03 * 1024, quad
    assert qsize == pytest.approx(1024, rel=0.03)


def test_align_small_output_without_supersampling(astronaut):
    # The pSp / DualStyleGAN encoder scripts: output 256 with transform 256.
    out = align_face(astronaut, size=256, transform_size=256)
    assert out.size == (256, 256)
    lm, _ = detect_landmarks(out)
    eyes = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])
    assert np.abs(eyes - CANONICAL_EYES_1024 / 4).max() < 0.03 * 256, eyes


def test_align_given_landmarks_skip_detection(astronaut):
    lm, _ = detect_landmarks(astronaut)
    a = align_face(astronaut, size=128, transform_size=128, landmarks=lm)
    b = align_face(Image.fromarray(astronaut), size=128, transform_size=128)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_ffhq_samples_are_fixed_points():
    """The shipped FFHQ images were aligned by NVlabs' script: our quad is their whole square."""
    folder = samples_dir() / "content"
    corners = np.array([[0, 0], [0, 1024], [1024, 1024], [1024, 0]])
    for name in ["006750.jpg", "019706.jpg", "077417.jpg", "081680.jpg"]:
        lm, info = detect_landmarks(open_rgb(folder / name), source=name)
        assert info["n_faces"] == 1
        quad, _ = face_quad(lm)
        assert np.abs(quad - corners).max() < 0.05 * 1024, (name, quad)
        eyes = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])
        assert np.abs(eyes - CANONICAL_EYES_1024).max() < 0.025 * 1024, (name, eyes)


def test_no_face_raises_with_name():
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="noise.png: no face found"):
        detect_landmarks(noise, source="noise.png")
    with pytest.raises(NoFaceError, match="noise.png"):
        align_face(noise, size=64, source="noise.png")


def test_largest_face_is_chosen(astronaut):
    # A half-size copy on the left (dlib scores it *higher*) and the full one on the right.
    canvas = np.full((560, 900, 3), 128, np.uint8)
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS))
    canvas[20:276, 20:276] = small
    canvas[30:542, 360:872] = astronaut
    lm, info = detect_landmarks(canvas)
    assert info["n_faces"] >= 2
    left, top, right, bottom = info["box"]
    assert left >= 360 and top >= 30 and right <= 872 and bottom <= 542
    assert (lm[:, 0] > 360).all()
    # ... and the landmarks are the full-size astronaut's, shifted by the paste offset.
    lm_ref, _ = detect_landmarks(astronaut)
    assert np.abs(lm - (lm_ref + [360, 30])).max() <= 3


def test_align_folder_reports_and_resumes(tmp_path, astronaut):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(astronaut).save(src / "sub" / "good.jpg")
    (src / "broken.png").write_text("this is not an image")
    Image.new("RGB", (256, 256), (200, 180, 160)).save(src / "blank.png")
    (src / "notes.txt").write_text("ignored")

    argv = [str(src), str(out), "--size", "128", "--transform-size", "128"]
    assert redestyle_main(["align", *argv]) == 1  # something failed
    report = json.loads((out / "report.json").read_text())
    files = report["images"]
    n = report["summary"]
    assert (n["images"], n["ok"], n["failed"], n["ignored"]) == (4, 1, 2, 1) and "skipped" not in n
    assert sorted(report["failed"]) == ["blank.png", "broken.png"] and report["size"] == 128
    assert (
        files["sub/good.jpg"]["status"] == "ok"
        and files["sub/good.jpg"]["output"] == "sub/good.png"
    )
    assert files["broken.png"]["status"] == "failed"
    assert (
        "broken.png" in files["broken.png"]["error"]
        and "not an image" in files["broken.png"]["error"]
    )
    assert files["blank.png"]["status"] == "failed"
    assert "blank.png: no face found" in files["blank.png"]["error"]
    assert files["notes.txt"]["status"] == "ignored"
    good = out / "sub" / "good.png"
    assert Image.open(good).size == (128, 128)
    assert sorted(p.name for p in out.rglob("*")) == [
        "good.png",
        "report.json",
        "sub",
    ]  # no temp files

    # Second run: the done file is skipped (not rewritten), the bad ones are reported again.
    mtime = good.stat().st_mtime_ns
    report2 = align_folder(src, out, size=128, transform_size=128)
    assert report2["images"]["sub/good.jpg"]["status"] == "skipped"
    n2 = report2["summary"]
    assert (n2["ok"], n2["failed"], n2["skipped"]) == (0, 2, 1)
    assert good.stat().st_mtime_ns == mtime

    # A folder without bad files exits 0.
    (src / "broken.png").unlink()
    (src / "blank.png").unlink()
    assert redestyle_main(["align", *argv]) == 0


def test_align_folder_missing_input(tmp_path):
    with pytest.raises(NotADirectoryError, match="nope"):
        align_folder(tmp_path / "nope", tmp_path / "out")


def test_truncated_file_is_named(tmp_path, astronaut):
    path = tmp_path / "cut.jpg"
    Image.fromarray(astronaut).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"cut\.jpg: not a readable image"):
        open_rgb(path)


def test_align_reads_by_the_input_policy(tmp_path):
    """align reads files like destylize does: .ppm accepted, alpha over white (not black)."""
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    rgba[:4, :, :] = (10, 20, 30, 255)  # opaque top half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    arr = np.asarray(open_rgb(tmp_path / "a.png"))
    assert arr[0, 0].tolist() == [10, 20, 30] and arr[7, 7].tolist() == [255, 255, 255]
    Image.fromarray(arr).save(tmp_path / "b.ppm")
    assert np.array_equal(np.asarray(open_rgb(tmp_path / "b.ppm")), arr)


def test_upsample_recovers_a_small_face_the_default_misses(tmp_path, astronaut, capsys):
    """A 128 px photo: dlib's default upsampling finds no face; the no-face line names --upsample,
    and --upsample 2 finds and aligns it (96-160 px all behave so: a margin on either side)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(astronaut).resize((128, 128), Image.LANCZOS).save(src / "small.png")
    argv = ["align", str(src), str(out), "--size", "64", "--transform-size", "64"]
    assert redestyle_main(argv) == 1
    error = json.loads((out / "report.json").read_text())["failed"]["small.png"]
    assert error == "small.png: no face found (dlib HOG detector, upsample 1; try --upsample 2)"
    assert redestyle_main([*argv, "--upsample", "2"]) == 0
    assert Image.open(out / "small.png").size == (64, 64)
