"""Drawing detections: solid outlines in class colours with labels, ground truth dashed green, the saved grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visionflow.detection import Detections, GroundTruth, draw_detections, save_detection_grid
from visionflow.detection.draw import GT_COLOUR, GT_DASH, _colour


def test_boxes_are_drawn_where_the_detections_are():
    image = np.zeros((64, 80, 3), np.float32)
    dets = Detections([[10, 20, 40, 60]], [1], [0.87])
    gt = GroundTruth([[45, 5, 60, 30]], [0])
    out = draw_detections(image, dets, ["cat", "dog"], gt)
    assert out.shape == (64, 80, 3) and out.dtype == np.uint8
    colour = _colour(1)
    assert (out[39, 20:60] == colour).all()  # the detection: a solid bottom edge (ymax - 1)
    assert (out[25:40, 20] == colour).all() and (out[25:40, 59] == colour).all()  # solid left and right edges
    assert tuple(out[25, 40]) == (0, 0, 0)  # inside stays the image
    assert (out[10:22, 21:59] == colour).all(axis=-1).sum() > 50  # the label's filled background
    plain = draw_detections(image, Detections(np.zeros((0, 4)), [], []), ["cat", "dog"])
    assert plain.max() == 0  # nothing to draw, nothing drawn


def test_ground_truth_is_dashed_green_and_detections_are_never_green():
    image = np.zeros((64, 80, 3), np.float32)
    gt = GroundTruth([[45, 5, 60, 30]], [0])
    out = draw_detections(image, Detections(np.zeros((0, 4)), [], []), ["cat"], gt)
    on, off = GT_DASH
    for row in (45, 59):  # top and bottom edges, xmin 5 .. xmax - 1 = 29
        drawn = (out[row, 5:30] == GT_COLOUR).all(axis=-1)
        expected = (np.arange(25) % (on + off)) < on  # dashes of `on` px every on + off px
        np.testing.assert_array_equal(drawn, expected)
        assert (out[row, 5:30][~drawn] == 0).all()  # the gaps show the image
    left = (out[45:60, 5] == GT_COLOUR).all(axis=-1)
    assert left.any() and not left.all()
    assert GT_COLOUR[1] == 255 and GT_COLOUR[0] == GT_COLOUR[2] == 0
    for cls in range(20):  # no class colour is the ground truth's green, or green at all
        r, g, b = _colour(cls)
        assert _colour(cls) != GT_COLOUR and not (g > 150 and r < 100 and b < 100)


def test_a_class_without_a_name_is_an_error_not_a_number():
    image = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="class id 2 has no name among 2 class_names"):
        draw_detections(image, Detections([[2, 2, 20, 20]], [2], [0.9]), ["cat", "dog"])


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
