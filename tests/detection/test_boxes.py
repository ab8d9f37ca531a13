"""Per-class NMS, the window grid, and mapping windows of the upscaled image back to the original."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from visionflow.config import ConfigError
from visionflow.detection import Detections, per_class_nms, to_original, window_grid
from visionflow.detection.windows import crop_windows, feature_step, feature_windows, upscale_image


def test_nms_removes_overlapping_same_class_and_keeps_other_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 1, 10, 11], [50, 50, 60, 60]], np.float32)
    # class 0 fires on both overlapping boxes (IoU 9/11) and weakly on the far one; class 1 on box 0 only
    scores = np.array([[0.9, 0.8], [0.7, 0.1], [0.3, 0.0]], np.float32)
    dets = per_class_nms(boxes, scores, score_threshold=0.5, iou_threshold=0.5)
    assert isinstance(dets, Detections)
    # box 1 (class 0, 0.7) is suppressed by box 0 (class 0, 0.9); box 0 stays for class 1 too; 0.3 < threshold
    np.testing.assert_array_equal(dets.classes, [0, 1])
    np.testing.assert_allclose(dets.scores, [0.9, 0.8])
    np.testing.assert_array_equal(dets.boxes, boxes[[0, 0]])
    loose = per_class_nms(boxes, scores, score_threshold=0.5, iou_threshold=0.95)
    assert len(loose) == 3  # an IoU of 9/11 is under 0.95: both class-0 boxes stay
    assert list(loose.scores) == sorted(loose.scores, reverse=True)


def test_window_grid_follows_the_reference_geometry():
    grid = window_grid((224, 224), window=224, stride=32, upscale=2.0)
    assert grid.upscaled == (448, 448)
    assert (grid.rows, grid.cols) == (8, 8)  # 224-px windows at 0, 32, .., 224
    boxes = grid.boxes()
    np.testing.assert_array_equal(boxes[0], [0, 0, 224, 224])
    np.testing.assert_array_equal(boxes[9], [32, 32, 256, 256])  # row-major: row 1, column 1
    np.testing.assert_array_equal(boxes[-1], [224, 224, 448, 448])


def test_window_at_y_x_of_the_2x_image_maps_to_half_coordinates_and_half_side():
    grid = window_grid((100, 120), window=64, stride=16, upscale=2.0)
    original = to_original(grid.boxes(), grid.scale, grid.image_shape)
    for (y, x), box in zip(grid.offsets(), original):
        np.testing.assert_allclose(box, [y / 2, x / 2, y / 2 + 32, x / 2 + 32])
    assert original[:, 2].max() <= 100 and original[:, 3].max() <= 120


def test_mapping_uses_the_exact_factor_after_rounding_and_clips():
    grid = window_grid((33, 33), window=32, stride=8, upscale=1.5)  # 49.5 px rounds to 50 px
    assert grid.upscaled == (50, 50) and grid.scale == (50 / 33, 50 / 33)
    last = to_original(grid.boxes()[-1:], grid.scale, grid.image_shape)[0]
    np.testing.assert_allclose(last, np.array([16, 16, 48, 48]) * 33 / 50, rtol=1e-6)
    clipped = to_original(np.array([[-4, -4, 60, 60]]), (2.0, 2.0), (20, 25))
    np.testing.assert_array_equal(clipped[0], [0, 0, 20, 25])


def test_crops_and_feature_windows_cut_the_right_places():
    grid = window_grid((16, 16), window=16, stride=8, upscale=2.0)  # 32 px image, 3x3 windows
    upscaled = upscale_image(np.random.default_rng(0).random((16, 16, 3)), grid)
    crops = crop_windows(upscaled, grid, 0, len(grid))  # (9, 16, 16, 3)
    assert crops.shape == (9, 16, 16, 3)
    np.testing.assert_array_equal(crops[5], upscaled[8:24, 16:32])  # row 1, column 2
    features = tf.reshape(tf.range(8 * 8 * 2, dtype=tf.float32), (1, 8, 8, 2))  # stride-4 map of 32 px
    windows = feature_windows(features, grid, cells=4, step=feature_step(8, 4))  # (9, 4, 4, 2)
    np.testing.assert_array_equal(windows[5], features[0, 2:6, 4:8])


def test_grid_errors_name_the_parameter():
    with pytest.raises(ConfigError, match=r"detection\.stride: got 0"):
        window_grid((64, 64), window=32, stride=0, upscale=2.0)
    with pytest.raises(ConfigError, match=r"detection\.upscale / detection\.canvas_size.*larger than"):
        window_grid((20, 20), window=64, stride=8, upscale=2.0)  # 64-px window, 40-px upscaled image
    with pytest.raises(ConfigError, match=r"detection\.stride: 12px is not a multiple of .* \(8px"):
        feature_step(12, 8)
