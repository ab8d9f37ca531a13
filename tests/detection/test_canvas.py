"""The evaluation canvases: deterministic from the seed, ground-truth boxes on the pasted objects, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from visionflow.config import ConfigError, DetectionConfig, shipped_params
from visionflow.detection import build_canvases, iou, mask_box

NAMES = ("a", "b", "c")


@pytest.fixture
def split():
    """A tiny test split: 9 noise images (32x32) of 3 classes."""
    rng = np.random.default_rng(0)
    return rng.random((9, 32, 32, 3), dtype=np.float32), np.arange(9) % 3


def _cfg(**kw) -> DetectionConfig:
    base = dict(num_images=5, canvas_size=96, min_objects=2, max_objects=3, min_object_scale=0.3,
                max_object_scale=0.45, max_object_overlap=0.3)
    return dataclasses.replace(shipped_params().detection, **{**base, **kw})


def test_same_seed_same_canvases_other_seed_other_canvases(split):
    first = build_canvases(*split, _cfg(), seed=7, class_names=NAMES)
    again = build_canvases(*split, _cfg(), seed=7, class_names=NAMES)
    other = build_canvases(*split, _cfg(), seed=8, class_names=NAMES)
    assert first.images.shape == (5, 96, 96, 3) and first.images.dtype == np.float32
    assert 0.0 <= first.images.min() and first.images.max() <= 1.0
    np.testing.assert_array_equal(first.images, again.images)
    for a, b in zip(first.ground_truth, again.ground_truth):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.classes, b.classes)
    assert not np.array_equal(first.images, other.images)
    assert first.class_names == NAMES


def test_objects_respect_counts_scales_bounds_and_overlap_limit(split):
    cfg = _cfg(num_images=12)
    canvases = build_canvases(*split, cfg, seed=1, class_names=NAMES)
    classes = set()
    for gt in canvases.ground_truth:
        assert cfg.min_objects <= len(gt) <= cfg.max_objects
        sides = gt.boxes[:, 2:] - gt.boxes[:, :2]
        np.testing.assert_array_equal(sides[:, 0], sides[:, 1])  # square objects
        assert sides.min() >= round(cfg.min_object_scale * 96) and sides.max() <= round(cfg.max_object_scale * 96)
        assert gt.boxes.min() >= 0 and gt.boxes.max() <= 96
        overlaps = iou(gt.boxes, gt.boxes) - np.eye(len(gt))
        assert overlaps.max() <= cfg.max_object_overlap
        classes.update(gt.classes.tolist())
    assert classes == {0, 1, 2}  # objects of different classes appear


def test_ground_truth_box_holds_exactly_the_pasted_object(split):
    images, labels = split
    canvases = build_canvases(images, labels, _cfg(min_objects=1, max_objects=1), seed=2, class_names=NAMES)
    for canvas, gt in zip(canvases.images, canvases.ground_truth):
        ymin, xmin, ymax, xmax = gt.boxes[0].astype(int)
        inside = canvas[ymin:ymax, xmin:xmax]
        side = ymax - ymin
        resized = tf.image.resize(images, (side, side), antialias=True).numpy().clip(0, 1)  # (9, side, side, 3)
        errors = np.abs(resized - inside).max(axis=(1, 2, 3))
        source = int(np.argmin(errors))
        assert errors[source] < 1e-6  # the box is exactly where and as large as the object
        assert labels[source] == gt.classes[0]
        # just outside the box is background, not the object: the noise object differs from the smooth field
        if ymax < 96:
            assert np.abs(canvas[ymax, xmin:xmax] - resized[source, -1]).mean() > 0.05


def test_masked_objects_get_the_box_of_their_mask():
    # Every source is black with a white 16x16 "pet" at rows 8..23, columns 4..19.
    images = np.zeros((4, 32, 32, 3), np.float32)
    images[:, 8:24, 4:20] = 1.0
    masks = images[..., 0] > 0.5
    # One object per canvas, so no later object can cover part of a pet.
    cfg = _cfg(num_images=6, min_objects=1, max_objects=1)
    canvases = build_canvases(images, np.zeros(4), cfg, seed=3, class_names=("pet",), masks=masks)
    for canvas, gt in zip(canvases.images, canvases.ground_truth):
        # the background is the split's flat mean colour here (all sources alike), far below white
        white = canvas[..., 0] > 0.75
        for box in gt.boxes:
            ymin, xmin, ymax, xmax = box
            assert ymax - ymin == pytest.approx(xmax - xmin)  # a square pet in a square source stays square
            # the pet is half the source's side, so its box is half the pasted object's side, not all of it
            assert cfg.min_object_scale * 96 / 2 - 0.5 <= ymax - ymin <= cfg.max_object_scale * 96 / 2 + 0.5
            inner = white[int(np.ceil(ymin)) + 1 : int(ymax) - 1, int(np.ceil(xmin)) + 1 : int(xmax) - 1]
            assert inner.all()  # the pet fills its box
        # and every white pixel lies in some box (1 px slack for the resize's edge blur)
        ys, xs = np.nonzero(white)
        inside = np.zeros(len(ys), bool)
        for ymin, xmin, ymax, xmax in gt.boxes:
            inside |= (ys >= ymin - 1) & (ys < ymax + 1) & (xs >= xmin - 1) & (xs < xmax + 1)
        assert inside.all()


def test_mask_box_is_pixel_edges_with_exclusive_max():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_box(mask), [2, 3, 5, 9])
    with pytest.raises(ValueError, match="no object pixels"):
        mask_box(np.zeros((4, 4), bool))


def test_empty_evaluation_set_errors_name_the_input(split):
    with pytest.raises(ValueError, match=r"num_images\s+Input should be greater than or equal to 1"):
        _cfg(num_images=0)  # refused with the params, before any stage
    with pytest.raises(ConfigError, match=r"test split: no images"):
        build_canvases(np.zeros((0, 32, 32, 3)), np.zeros(0), _cfg(), seed=0, class_names=NAMES)
    with pytest.raises(ValueError, match=r"test split: image \d+'s mask has no object pixels"):
        build_canvases(*split, _cfg(), seed=0, class_names=NAMES, masks=np.zeros((9, 32, 32), bool))


def test_too_crowded_canvas_names_the_parameters(split):
    cfg = _cfg(min_objects=8, max_objects=8, min_object_scale=0.6, max_object_scale=0.6, max_object_overlap=0.05)
    with pytest.raises(ConfigError, match=r"detection\.max_object_overlap \(0\.05\).*detection\.max_objects"):
        build_canvases(*split, cfg, seed=0, class_names=NAMES)
