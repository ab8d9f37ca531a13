"""read_rgb / encode_jpeg on every quirk the releases hold, generated with PIL, and on the real sample."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from visionflow.data.images import DataSourceError, UnreadableImageError, encode_jpeg, read_rgb


def _rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_baseline_jpeg_needs_no_fix(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(_rgb()).save(path, "JPEG", quality=95)
    image, fixes = read_rgb(path)
    assert fixes == []
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    with Image.open(path) as ref:
        np.testing.assert_array_equal(image, np.asarray(ref))


def test_png_rgba_inside_jpg_name(tmp_path):
    rgba = np.dstack([_rgb(), np.full((24, 32), 7, np.uint8)])
    path = tmp_path / "Abyssinian_5.jpg"
    Image.fromarray(rgba, "RGBA").save(path, "PNG")
    image, fixes = read_rgb(path)
    assert fixes == ["png in .jpg", "rgba->rgb"]
    np.testing.assert_array_equal(image, rgba[..., :3])  # alpha dropped, colours kept exactly


def test_gif_palette_inside_jpg_name(tmp_path):
    pal = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / "x.jpg"
    pal.save(path, "GIF")
    image, fixes = read_rgb(path)
    assert fixes == ["gif in .jpg", "palette->rgb"]
    np.testing.assert_array_equal(image, np.asarray(pal.convert("RGB")))


def test_grayscale_and_cmyk_jpegs_become_rgb(tmp_path):
    gray = tmp_path / "gray.jpg"
    Image.fromarray(_rgb()[..., 0], "L").save(gray, "JPEG")
    image, fixes = read_rgb(gray)
    assert fixes == ["grayscale->rgb"]
    assert image.shape == (24, 32, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])

    cmyk = tmp_path / "cmyk.jpg"
    red = np.zeros((16, 16, 4), np.uint8)
    red[..., 1:3] = 255  # C=0 M=255 Y=255 K=0 is red
    Image.fromarray(red, "CMYK").save(cmyk, "JPEG", quality=95)
    image, fixes = read_rgb(cmyk)
    assert fixes == ["cmyk->rgb"]
    assert image.shape == (16, 16, 3)
    assert image[..., 0].min() > 200 and image[..., 1:].max() < 50


def test_truncated_jpeg_is_unreadable_and_named(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # otherwise PIL would pad truncated files silently
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UnreadableImageError, match="cut.jpg") as info:
        read_rgb(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataSourceError)
    assert info.value.path == path and "truncated" in info.value.reason


@pytest.mark.parametrize("content", [b"MATLAB 5.0 MAT-file", b""])
def test_non_image_and_missing_files_are_unreadable(tmp_path, content):
    path = tmp_path / "Abyssinian_100.mat"
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match="Abyssinian_100.mat: cannot decode image"):
        read_rgb(path)
    with pytest.raises(UnreadableImageError, match="nope.jpg: file not found"):
        read_rgb(tmp_path / "nope.jpg")


def test_large_image_is_downscaled_to_max_side(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_rgb(200, 400)).save(path, "JPEG")
    image, fixes = read_rgb(path, max_side=100)
    assert image.shape == (50, 100, 3)
    assert fixes == ["downscaled 400x200->100x50"]
    same, none = read_rgb(path, max_side=400)  # at the limit: untouched
    assert same.shape == (200, 400, 3) and none == []


def test_encode_jpeg_is_deterministic_and_decodable():
    yy, xx = np.mgrid[0:40, 0:30]
    image = np.dstack([yy * 6, xx * 8, (yy + xx) * 3]).astype(np.uint8)  # smooth, like a photo
    first, second = encode_jpeg(image), encode_jpeg(image.copy())
    assert first == second
    assert first[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(first)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (30, 40)
        assert np.abs(np.asarray(decoded).astype(int) - image).mean() < 3  # lossy, but the same picture
    with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) uint8"):
        encode_jpeg(image[..., 0])


def test_real_sample_png_in_jpg(pets_sample):
    image, fixes = read_rgb(pets_sample / "images" / "Abyssinian_5.jpg")
    assert fixes == ["png in .jpg", "rgba->rgb"]
    assert image.shape == (150, 200, 3)
    plain, none = read_rgb(pets_sample / "images" / "Abyssinian_1.jpg")
    assert none == [] and plain.shape == (400, 600, 3)
