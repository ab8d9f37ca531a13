"""A briefly trained classifier finds objects on canvases: map50 far above the random-box baseline."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from visionflow.config import shipped_params
from visionflow.detection import (
    STRATEGIES,
    build_canvases,
    evaluate,
    random_boxes_baseline,
    run_detection,
    to_original,
    window_grid,
)
from visionflow.detection.metrics import window_recall_bound
from visionflow.models import build_classifier, compile_classifier


def _stripes(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Three learnable classes: horizontal, vertical and diagonal stripes of random colour, period and phase."""
    labels = np.arange(n) % 3
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((n, size, size, 3), np.float32)
    for i, cls in enumerate(labels):
        wave = (yy, xx, yy + xx)[cls]
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * wave / rng.uniform(4, 8) + rng.uniform(0, 2 * np.pi))
        noisy = pattern[..., None] * rng.uniform(0.2, 1.0, 3) + 0.1 * rng.standard_normal((size, size, 3))
        images[i] = np.clip(noisy, 0, 1)
    return images, labels


@pytest.mark.slow
def test_trained_classifier_detects_far_above_random(small_params):
    cfg = dataclasses.replace(
        small_params.classifier, image_size=32, filters=(8, 16), dense_units=32, dropout=0.0, epochs=4, batch_size=32,
        lr_schedule="constant",
    )
    rng = np.random.default_rng(0)
    train_x, train_y = _stripes(rng, 600, 32)
    test_x, test_y = _stripes(rng, 60, 32)
    keras.utils.set_random_seed(0)
    model = build_classifier(cfg, num_classes=3)
    compile_classifier(model, cfg)
    model.fit(train_x, train_y, epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=0)
    assert model.evaluate(test_x, test_y, verbose=0)[1] > 0.9

    # Objects about the window's footprint (32 px windows on a 64 px canvas at upscale 1), so windows can fit them.
    det = dataclasses.replace(
        shipped_params().detection,
        num_images=12, canvas_size=64, upscale=1.0, stride=8, min_objects=1, max_objects=2,
        min_object_scale=0.45, max_object_scale=0.55, score_threshold=0.5, nms_iou=0.3,
    )
    canvases = build_canvases(test_x, test_y, det, seed=1, class_names=("horizontal", "vertical", "diagonal"))
    grid = window_grid((64, 64), 32, det.stride, det.upscale)
    assert window_recall_bound(canvases.ground_truth, to_original(grid.boxes(), grid.scale, (64, 64))) == 1.0

    results = {}
    for strategy in STRATEGIES:
        detections, _ = run_detection(model, canvases.images, det, 32, strategy=strategy, progress=False)
        results[strategy] = evaluate(detections, canvases.ground_truth, 3, canvases.class_names)
    assert results["dense"]["map50"] == pytest.approx(results["feature_crops"]["map50"])  # same scores
    per_image = max(1, round(results["crops"]["detections_per_image"]))
    chance = random_boxes_baseline(canvases.ground_truth, seed=0, image_shape=(64, 64), box_size=(32, 32),
                                   num_classes=3, boxes_per_image=per_image)
    baseline = evaluate(chance, canvases.ground_truth, 3)["map50"]
    for strategy, result in results.items():
        assert result["map50"] > 0.6, strategy
        assert result["map50"] > baseline + 0.4, strategy
        assert result["recall"] > 0.8, strategy
