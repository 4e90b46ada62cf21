"""imaging: the input policy (load_image on a generated corpus of awkward files: one clear error or a
correct RGB), and the tensor <-> uint8 conversions."""

import numpy as np
import pytest
import torch
from PIL import Image

from redestyle import data, imaging
from redestyle.imaging import to_tensor

SIZE = 64


def gradient(side=80, width=None):
    """A deterministic uint8 [H, W, 3] picture with distinct channels."""
    width = width or side
    y, x = np.mgrid[0:side, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(side - 1, 1),
                     (x + y) * 255 // (side + width - 2)], axis=-1).astype(np.uint8)


def make_corpus(folder):
    """name -> expected: a uint8 RGB array it must load as, or the substring of its one-line error."""
    rgb = gradient()
    grey = rgb[..., 0]
    cases = {}
    Image.fromarray(rgb).save(folder / "rgb.png")
    cases["rgb.png"] = rgb
    Image.fromarray(grey).save(folder / "grey.png")
    cases["grey.png"] = np.repeat(grey[..., None], 3, axis=-1)
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "grey16.png")  # 16-bit greyscale PNG
    cases["grey16.png"] = np.repeat(grey[..., None], 3, axis=-1)
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:, :40] = 0  # left half transparent -> white
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    want = rgb.copy()
    want[:, :40] = 255
    cases["rgba.png"] = want
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    cases["cmyk.jpg"] = rgb  # up to JPEG loss
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    cases["palette.png"] = rgb  # up to the palette's quantisation
    (folder / "empty.png").write_bytes(b"")
    cases["empty.png"] = "empty file (0 bytes)"
    (folder / "text.png").write_text("these are notes, renamed .png\n")
    cases["text.png"] = "not an image (the format cannot be identified)"
    png = (folder / "rgb.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    cases["truncated.png"] = "not a readable image"
    Image.fromarray(gradient(8)).save(folder / "tiny.png")
    cases["tiny.png"] = "8x8 px is smaller than the 32 px minimum; run `redestyle align`"
    Image.fromarray(gradient(80, 120)).save(folder / "wide.png")
    cases["wide.png"] = "120x80 px is not square: inputs must be aligned square faces; run `redestyle align`"
    Image.new("1", (9000, 9000)).save(folder / "huge.png")  # 81 Mpx declared, a few kB on disk
    cases["huge.png"] = "9000x9000 px is larger than the"
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_corpus(folder)


def test_corpus_each_file_loads_correctly_or_fails_with_one_line(corpus):
    folder, cases = corpus
    for name, want in cases.items():
        path = folder / name
        if isinstance(want, str):
            with pytest.raises(imaging.ImageReadError) as info:
                imaging.load_image(path, size=SIZE)
            message = str(info.value)
            assert message.startswith(f"{path}: ") and want in message, (name, message)
            assert "\n" not in message
        else:
            got = imaging.load_image(path, size=SIZE)
            assert got.shape == (1, 3, SIZE, SIZE) and got.dtype == torch.float32
            tol = {"cmyk.jpg": 0.05, "palette.png": 0.05}.get(name, 1e-6)
            assert (got - to_tensor(want, size=SIZE)).abs().mean() < tol, name


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    """PIL's own convert('RGB') clips 16-bit values at 255 (a white image); ours scales them."""
    Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(tmp_path / "mid.png")
    got = imaging.load_image(tmp_path / "mid.png", size=32)
    assert got.mean().item() == pytest.approx(round(30000 / 257) / 127.5 - 1, abs=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    rgb = gradient(48)
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    got = imaging.load_image(tmp_path / "rot.jpg", size=48)
    assert (got - to_tensor(np.ascontiguousarray(rgb[::-1, ::-1]))).abs().mean() < 0.03


def test_min_side_is_a_parameter(tmp_path):
    Image.fromarray(gradient(40)).save(tmp_path / "a.png")
    assert imaging.load_image(tmp_path / "a.png", size=16).shape == (1, 3, 16, 16)
    with pytest.raises(imaging.ImageReadError, match="40x40 px is smaller than the 64 px minimum"):
        imaging.load_image(tmp_path / "a.png", size=16, min_side=64)


def test_load_folder_collects_failures(corpus):
    folder, cases = corpus
    images, failures = data.load_folder(folder, size=SIZE)
    assert sorted(images) == sorted(n for n, w in cases.items() if not isinstance(w, str))
    assert sorted(failures) == sorted(n for n, w in cases.items() if isinstance(w, str))


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        imaging.list_images(tmp_path / "nowhere")


def test_uint8_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(imaging.to_uint8(imaging.to_tensor(img)), img)


def test_to_uint8_rejects_a_batch():
    with pytest.raises(ValueError, match="one image, got a batch of 2"):
        imaging.to_uint8(torch.zeros(2, 3, 4, 4))


def test_batches_convert_like_single_images():
    """[N, H, W, 3] arrays (renders) give the rows that one-image conversion (through PIL) gives."""
    batch = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    x = imaging.to_tensor(batch)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    for i in range(3):
        assert torch.equal(x[i : i + 1], imaging.to_tensor(Image.fromarray(batch[i])))
    u = imaging.to_uint8_batch(x)
    assert u.dtype == torch.uint8 and torch.equal(u.permute(0, 2, 3, 1), torch.from_numpy(batch))
    assert imaging.to_uint8_batch(torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])).tolist() == [0, 0, 128, 255, 255]


def test_pool_is_the_identity_at_its_size_and_a_block_mean_below():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert imaging.pool(x, 4) is x
    assert imaging.pool(x, 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_rgba_arrays_are_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    out = imaging.as_rgb_uint8(rgba)
    assert out[0, 0].tolist() == [10, 20, 30] and out[1, 1].tolist() == [255, 255, 255]
    assert imaging.as_rgb_uint8(np.full((2, 2), 0.5)).shape == (2, 2, 3)
