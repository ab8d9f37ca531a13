"""Drawing detections: box outlines in class colours, ground truth in white, labels, and the saved grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visionflow.detection import Detections, GroundTruth, draw_detections, save_detection_grid
from visionflow.detection.draw import GT_COLOUR, _colour


def test_boxes_are_drawn_where_the_detections_are():
    image = np.zeros((64, 80, 3), np.float32)
    dets = Detections([[10, 20, 40, 60]], [1], [0.87])
    gt = GroundTruth([[45, 5, 60, 30]], [0])
    out = draw_detections(image, dets, ["cat", "dog"], gt)
    assert out.shape == (64, 80, 3) and out.dtype == np.uint8
    colour = _colour(1)
    assert tuple(out[39, 40]) == colour  # bottom edge of the detection (ymax - 1)
    assert tuple(out[25, 20]) == colour and tuple(out[25, 59]) == colour  # left and right edges
    assert tuple(out[25, 40]) == (0, 0, 0)  # inside stays the image
    assert tuple(out[59, 15]) == GT_COLOUR and tuple(out[50, 5]) == GT_COLOUR  # ground-truth outline
    assert (out[10:22, 21:59] == colour).all(axis=-1).sum() > 50  # the label's filled background
    plain = draw_detections(image, Detections(np.zeros((0, 4)), [], []), ["cat", "dog"])
    assert plain.max() == 0  # nothing to draw, nothing drawn


def test_detection_grid_is_saved_as_one_png(tmp_path):
    images = [np.full((32, 32, 3), v, np.float32) for v in (0.2, 0.4, 0.6)]
    dets = [Detections([[2, 2, 20, 20]], [0], [0.9]) for _ in images]
    gts = [GroundTruth([[4, 4, 24, 24]], [0]) for _ in images]
    path = save_detection_grid(images, dets, gts, ["flower"], tmp_path / "plots" / "grid.png")
    grid = np.asarray(Image.open(path))
    assert grid.shape == (64, 64, 3)  # 3 tiles in a 2x2 grid
    assert grid[32 + 28, 28, 0] == round(0.6 * 255)  # the third tile is row 1, column 0
    assert grid[40:, 32:].max() == 0  # the fourth place is empty
    assert tuple(grid[32 + 19, 10]) == _colour(0)
    with pytest.raises(ValueError, match="3 images for 2 detection lists"):
        save_detection_grid(images, dets[:2], None, ["flower"], tmp_path / "x.png")
