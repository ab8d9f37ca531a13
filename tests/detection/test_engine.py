"""The three strategies: where feature_crops reproduces crops exactly, dense == feature_crops, run_detection."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionflow.config import ConfigError
from visionflow.detection import STRATEGIES, iou, run_detection, strategy_scores, to_original, window_grid
from visionflow.detection.heads import convolutional_head
from visionflow.detection.windows import crop_windows, feature_windows, upscale_image
from visionflow.models import build_classifier, split_classifier


@pytest.fixture
def classifier(small_params):
    """An untrained small_cnn (64 px, filters 16/32/64: stride 8, 8x8-cell windows) over 5 classes."""
    keras.utils.set_random_seed(0)
    return build_classifier(small_params.classifier, num_classes=5)


@pytest.fixture
def canvases(small_params):
    """Two 128-px images of smooth random texture (what canvases look like to a conv net)."""
    rng = np.random.default_rng(1)
    coarse = rng.random((2, 16, 16, 3)).astype(np.float32)
    return tf.image.resize(coarse, (128, 128)).numpy()


def test_feature_crops_equal_crops_except_the_border_ring_of_cells(classifier, canvases, small_params):
    """Why crops and feature_crops differ, exactly.

    A crop is zero-padded at its borders; the same window in the full image's feature map saw the neighbouring
    pixels instead. In small_cnn (3x3 'same' conv then 2x2 pool, three times) that difference reaches exactly one
    ring of cells: the first row/column of a window's cells when the window does not start at the image's
    top/left edge, the last row/column when it does not end at the bottom/right edge. Every other cell agrees to
    float precision, and feeding the head the crop's cells with that ring taken from the full map reproduces the
    feature_crops score: the ring is the whole difference. (The window at the origin, the reference's example, is
    therefore exact in its first rows and columns but not in its last ones.)
    """
    cfg, size = small_params.detection, small_params.classifier.image_size
    backbone, head = split_classifier(classifier)
    grid = window_grid(canvases.shape[1:3], size, cfg.stride, cfg.upscale)  # 256 px: 7x7 windows, 8x8 cells
    upscaled = upscale_image(canvases[0], grid)
    from_crops = backbone(crop_windows(upscaled, grid, 0, len(grid))).numpy()  # (49, 8, 8, C)
    from_map = feature_windows(backbone(upscaled[None]), grid, cells=8, step=4).numpy()  # (49, 8, 8, C)
    differs = np.abs(from_crops - from_map).max(axis=-1) > 1e-5  # (49, 8, 8)
    for k, (y, x) in enumerate(grid.offsets()):
        ring = np.zeros((8, 8), bool)
        ring[0, :] |= y > 0
        ring[-1, :] |= y + size < grid.upscaled[0]
        ring[:, 0] |= x > 0
        ring[:, -1] |= x + size < grid.upscaled[1]
        np.testing.assert_array_equal(differs[k], ring, err_msg=f"window {k} at {(y, x)}")
    np.testing.assert_allclose(from_crops[~differs], from_map[~differs], atol=1e-5)

    scores = strategy_scores(classifier, canvases[:1], cfg, size, strategies=("crops", "feature_crops"))
    patched = np.where(differs[..., None], from_map, from_crops)  # crop cells, ring from the full map
    np.testing.assert_allclose(tf.nn.softmax(head(patched)).numpy(), scores["feature_crops"][0], atol=1e-6)
    assert np.abs(scores["crops"] - scores["feature_crops"]).max() > 1e-4  # the ring does change the scores


def test_dense_reproduces_feature_crops(classifier, canvases, small_params):
    cfg, size = small_params.detection, small_params.classifier.image_size
    scores = strategy_scores(classifier, canvases, cfg, size)
    assert set(scores) == set(STRATEGIES)
    assert all(s.shape == (2, 49, 5) for s in scores.values())
    np.testing.assert_allclose(scores["dense"], scores["feature_crops"], atol=1e-5)
    np.testing.assert_allclose(scores["crops"].sum(-1), 1.0, atol=1e-5)  # softmax scores
    # both are sensitive to where a window is: neighbouring windows score differently
    assert np.abs(scores["dense"][:, 1:] - scores["dense"][:, :-1]).max() > 1e-3


def test_dense_reproduces_feature_crops_with_a_pooling_head(small_params, imagenet_weights):
    # MobileNetV2 backbone (ImageNet features, so its maps are not flat) with a GAP -> Dense head.
    raw = dataclasses.replace(
        small_params.classifier, backbone="mobilenet_v2", image_size=96,
        encoder=dataclasses.replace(small_params.classifier.encoder, weights="imagenet"),
    )
    keras.utils.set_random_seed(0)
    model = build_classifier(raw, num_classes=3)
    cfg = dataclasses.replace(small_params.detection, canvas_size=96, stride=32)  # 192 px: 4x4 windows
    images = np.random.default_rng(2).random((1, 96, 96, 3)).astype(np.float32)
    scores = strategy_scores(model, images, cfg, 96, strategies=("feature_crops", "dense"))
    np.testing.assert_allclose(scores["dense"], scores["feature_crops"], atol=1e-5)
    assert np.abs(scores["dense"][0, 1:] - scores["dense"][0, :-1]).max() > 1e-4


def test_convolutional_head_equals_the_head_on_one_window_and_strides_over_more(classifier):
    _, head = split_classifier(classifier)
    rng = np.random.default_rng(3)
    windows = rng.random((2, 8, 8, 64)).astype(np.float32)
    dense = convolutional_head(head, step=1)
    np.testing.assert_allclose(dense(windows).numpy()[:, 0, 0], head(windows).numpy(), atol=1e-5)
    big = rng.random((1, 12, 12, 64)).astype(np.float32)  # windows at cells 0, 2, 4 per axis with step 2
    out = convolutional_head(head, step=2)(big).numpy()
    assert out.shape == (1, 3, 3, 5)
    np.testing.assert_allclose(out[0, 1, 2], head(big[:, 2:10, 4:12]).numpy()[0], atol=1e-5)


def test_convolutional_head_rejects_layers_it_cannot_convert():
    features = keras.Input((4, 4, 8))
    x = keras.layers.Flatten()(features)
    x = keras.layers.BatchNormalization()(x)
    head = keras.Model(features, keras.layers.Dense(2)(x), name="head")
    with pytest.raises(ValueError, match=r"BatchNormalization.*detection\.strategy: feature_crops"):
        convolutional_head(head, step=1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_detection_maps_every_window_back_and_counts_runs(classifier, canvases, small_params, strategy):
    # Threshold 0 and NMS IoU 1 keep every (window, class): the output is the raw window grid, mapped back.
    cfg = dataclasses.replace(small_params.detection, score_threshold=0.0, nms_iou=1.0)
    size = small_params.classifier.image_size
    detections, stats = run_detection(classifier, canvases, cfg, size, strategy=strategy, progress=False)
    grid = window_grid((128, 128), size, cfg.stride, cfg.upscale)
    assert stats["strategy"] == strategy and stats["images"] == 2
    assert stats["classifier_calls_per_image"] == 49
    assert stats["backbone_runs_per_image"] == (49 if strategy == "crops" else 1)
    assert set(stats) == {"strategy", "images", "classifier_calls_per_image", "backbone_runs_per_image"}  # no time
    expected = grid.boxes() / 2  # a window at (y, x) of the 2x image is (y/2, x/2) with side S/2
    scores = strategy_scores(classifier, canvases, cfg, size, strategies=(strategy,))[strategy]
    for dets, image_scores in zip(detections, scores):
        assert len(dets) == 49 * 5
        window = np.array([np.flatnonzero((expected == b).all(axis=1))[0] for b in dets.boxes])
        np.testing.assert_allclose(dets.scores, image_scores[window, dets.classes], atol=1e-6)
        np.testing.assert_array_equal(np.bincount(window, minlength=49), 5)  # every window, every class
        np.testing.assert_allclose(dets.boxes[:, 2:] - dets.boxes[:, :2], size / 2)
    np.testing.assert_array_equal(to_original(grid.boxes(), grid.scale, (128, 128)), expected)


def test_threshold_and_nms_reduce_the_window_grid(classifier, canvases, small_params):
    cfg = dataclasses.replace(small_params.detection, score_threshold=0.0, nms_iou=0.3)
    detections, _ = run_detection(classifier, canvases, cfg, small_params.classifier.image_size, progress=False)
    for dets in detections:
        assert 0 < len(dets) < 49 * 5
        for cls in np.unique(dets.classes):
            boxes = dets.boxes[dets.classes == cls]
            assert (iou(boxes, boxes) - np.eye(len(boxes))).max() <= 0.3


def test_errors_name_the_parameter(classifier, canvases, small_params):
    cfg, size = small_params.detection, small_params.classifier.image_size
    plain = keras.Sequential([keras.Input((size, size, 3)), keras.layers.Flatten(), keras.layers.Dense(5)])
    with pytest.raises(ConfigError, match=r"detection\.classifier=pipeline: cannot split"):
        run_detection(plain, canvases, cfg, size, progress=False)
    with pytest.raises(ConfigError, match=r"detection\.stride: 12px is not a multiple of the backbone's .* \(8px"):
        run_detection(classifier, canvases, dataclasses.replace(cfg, stride=12), size, progress=False)
    for strategy in ("feature_crops", "dense"):
        with pytest.raises(ConfigError, match=r"detection\.stride"):
            strategy_scores(classifier, canvases, dataclasses.replace(cfg, stride=20), size, strategies=(strategy,))
    crops_ok, _ = run_detection(classifier, canvases, dataclasses.replace(cfg, stride=12), size, "crops", False)
    assert len(crops_ok) == 2  # crops has no stride constraint
    small = dataclasses.replace(cfg, canvas_size=32, upscale=1.5)  # a 48-px image under a 64-px window
    with pytest.raises(ConfigError, match=r"detection\.upscale / detection\.canvas_size"):
        run_detection(classifier, canvases[:, :32, :32], small, size, progress=False)
    with pytest.raises(ConfigError, match=r"detection\.num_images"):
        run_detection(classifier, np.zeros((0, 128, 128, 3)), cfg, size, progress=False)
    with pytest.raises(ConfigError, match=r"classifier\.image_size: 32"):
        run_detection(classifier, canvases, cfg, 32, progress=False)
    with pytest.raises(ConfigError, match=r"detection\.strategy: got 'sliding'"):
        run_detection(classifier, canvases, cfg, size, strategy="sliding", progress=False)
