"""Figures: overlay colours by hand, PNG files of the expected size, byte-identical reruns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from visionflow import viz

MASK = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)  # pet background border / border background pet


def _png(path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG"
    image.load()
    return image


def _assert_size(image: Image.Image, width: float, height: float) -> None:
    # figure inches x dpi; allow a pixel either way for rounding
    assert abs(image.width - width) <= 1 and abs(image.height - height) <= 1, image.size


def test_overlay_colours_on_a_hand_made_mask():
    black = np.zeros((2, 3, 3), np.float32)
    full = viz.overlay(black, MASK, alpha=1.0)
    assert full.dtype == np.uint8 and full.shape == (2, 3, 3)
    np.testing.assert_array_equal(full[0, 0], [230, 25, 75])  # pet: red
    np.testing.assert_array_equal(full[0, 1], [0, 130, 200])  # background: blue
    np.testing.assert_array_equal(full[0, 2], [255, 225, 25])  # border: yellow
    np.testing.assert_array_equal(full[1], full[0, ::-1])

    grey = np.full((2, 3, 3), 0.4, np.float32)  # 0.4 * 255 = 102
    np.testing.assert_array_equal(viz.overlay(grey, MASK[..., None], alpha=0.0), np.full((2, 3, 3), 102))
    half = viz.overlay(grey, MASK, alpha=0.5)
    # pet pixel: 0.5 * 102 + 0.5 * (230, 25, 75) = (166, 63.5, 88.5) -> rounded half to even (166, 64, 88)
    np.testing.assert_array_equal(half[0, 0], [166, 64, 88])
    # border pixel: 0.5 * 102 + 0.5 * (255, 225, 25) = (178.5, 163.5, 63.5) -> (178, 164, 64)
    np.testing.assert_array_equal(half[1, 0], [178, 164, 64])
    uint8 = viz.overlay(np.full((2, 3, 3), 102, np.uint8), MASK, alpha=0.5)
    np.testing.assert_array_equal(uint8, half)


def test_overlay_rejects_bad_input():
    image = np.zeros((2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"mask: shape \(3, 2\) does not match the image's \(2, 3\)"):
        viz.overlay(image, MASK.T)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        viz.overlay(image, MASK + 1)
    with pytest.raises(ValueError, match="alpha: got 1.5"):
        viz.overlay(image, MASK, alpha=1.5)
    with pytest.raises(ValueError, match=r"image: expected an RGB image of shape \(H, W, 3\)"):
        viz.overlay(np.zeros((2, 3), np.float32), MASK)


def test_segmentation_grid_is_a_png_of_one_row_per_example_and_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((2, 32, 32, 3), dtype=np.float32)
    masks = rng.integers(0, 3, (2, 32, 32, 1)).astype(np.uint8)
    path = viz.save_segmentation_grid(images, masks, masks[..., 0], tmp_path / "figs" / "seg.png", titles=["a", "b"])
    cell = viz.CELL_INCHES * viz.DPI
    _assert_size(_png(path), 3 * cell, 2 * cell)
    again = viz.save_segmentation_grid(images, masks, masks[..., 0], tmp_path / "seg2.png", titles=["a", "b"])
    assert path.read_bytes() == again.read_bytes()
    with pytest.raises(ValueError, match="same non-zero count, got 2, 2, 1"):
        viz.save_segmentation_grid(images, masks, masks[:1], tmp_path / "bad.png")


def test_image_grid_draws_the_images(tmp_path):
    red = np.zeros((5, 16, 16, 3), np.uint8)
    red[..., 0] = 255
    path = viz.save_image_grid(red, [f"true {i} / pred {i}" for i in range(5)], tmp_path / "grid.png", ncols=2)
    image = _png(path)
    cell = viz.CELL_INCHES * viz.DPI
    _assert_size(image, 2 * cell, 3 * cell)  # 5 images in rows of 2 -> 3 rows
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    red_pixels = np.all(pixels == [255, 0, 0], axis=1).sum()
    assert red_pixels > 5 * (0.5 * cell) ** 2  # each image fills most of its cell
    with pytest.raises(ValueError, match="titles: 2 titles for 5 images"):
        viz.save_image_grid(red, ["a", "b"], tmp_path / "bad.png")


def test_confusion_matrix_png(tmp_path):
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 3]])
    names = ["pet", "background", "border"]
    image = _png(viz.save_confusion_matrix(cm, names, tmp_path / "cm.png"))
    assert 300 <= image.width <= 1000 and 300 <= image.height <= 1000
    normalised = _png(viz.save_confusion_matrix(cm, names, tmp_path / "n.png", normalize=True))
    assert normalised.size == image.size
    assert (tmp_path / "cm.png").read_bytes() != (tmp_path / "n.png").read_bytes()
    with pytest.raises(ValueError, match=r"confusion: shape \(3, 3\) does not match 2 class_names"):
        viz.save_confusion_matrix(cm, ["pet", "background"], tmp_path / "bad.png")


def test_history_from_keras_dict_and_epoch_frame(tmp_path):
    history = {
        "loss": [1.0, 0.5, 0.3],
        "accuracy": [0.3, 0.5, 0.7],
        "val_loss": [1.1, 0.6, 0.4],
        "val_accuracy": [0.2, 0.4, 0.6],
    }
    from_dict = _png(viz.save_history(history, tmp_path / "h.png"))
    _assert_size(from_dict, 2 * 4.0 * viz.DPI, 3.5 * viz.DPI)  # one panel per metric
    frame = pd.DataFrame({"epoch": [1, 2, 3], **history})  # the layout of visionflow.training.history_frame
    viz.save_history(frame, tmp_path / "f.png")
    assert (tmp_path / "h.png").read_bytes() == (tmp_path / "f.png").read_bytes()
    with pytest.raises(ValueError, match="history: no epochs recorded"):
        viz.save_history({}, tmp_path / "bad.png")
