"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionflow.evaluation import (
    ConfusionAccumulator,
    classification_metrics,
    majority_baseline,
    segmentation_metrics,
)

TRIMAP = ["pet", "background", "border"]


def test_confusion_accumulator_counts_pairs_over_batches():
    acc = ConfusionAccumulator(3)
    # Pairs (true, pred): (0,0) (1,2) / (2,2) (2,1)
    acc.update(np.array([[0, 1], [2, 2]], np.uint8), np.array([[0, 2], [2, 1]], np.int64))
    np.testing.assert_array_equal(acc.matrix, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    # A second batch of another shape adds on: (1,1) (1,1) (0,2)
    acc.update(np.array([[[1], [1], [0]]]), np.array([[[1], [1], [2]]]))
    np.testing.assert_array_equal(acc.matrix, [[1, 0, 1], [0, 2, 1], [0, 1, 1]])
    assert acc.matrix.dtype == np.int64


def test_confusion_accumulator_rejects_bad_input():
    acc = ConfusionAccumulator(3)
    with pytest.raises(ValueError, match=r"shapes differ \(\(2,\) vs \(3,\)\)"):
        acc.update([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match=r"y_pred: class ids must lie in \[0, 3\).*\[0, 3\]"):
        acc.update([0, 1], [0, 3])
    with pytest.raises(ValueError, match="y_pred: expected integer class ids, got dtype float32"):
        acc.update(np.array([0, 1]), np.array([0.0, 1.0], np.float32))
    np.testing.assert_array_equal(acc.matrix, np.zeros((3, 3)))  # failed updates count nothing


def test_segmentation_metrics_with_a_class_absent_from_truth_and_prediction():
    # rows = true: pet 3 right 1 as background; background 1 as pet 4 right; no border anywhere.
    cm = [[3, 1, 0], [1, 4, 0], [0, 0, 0]]
    m = segmentation_metrics(cm, TRIMAP)
    assert m["pixel_accuracy"] == pytest.approx((3 + 4) / 9)
    # pet: TP 3, FP 1, FN 1 -> IoU 3/5, Dice 6/8; background: TP 4, FP 1, FN 1 -> IoU 4/6, Dice 8/10
    assert m["iou"]["pet"] == pytest.approx(3 / 5)
    assert m["iou"]["background"] == pytest.approx(4 / 6)
    assert math.isnan(m["iou"]["border"])  # 0/0: undefined, left out of the mean
    assert m["mean_iou"] == pytest.approx((3 / 5 + 4 / 6) / 2)
    assert m["dice_per_class"] == pytest.approx({"pet": 6 / 8, "background": 8 / 10, "border": math.nan}, nan_ok=True)
    assert m["dice"] == pytest.approx((6 / 8 + 8 / 10) / 2)


def test_segmentation_metrics_class_predicted_but_not_true_or_true_but_never_predicted_scores_zero():
    # Border is never true but predicted 4 times; background is true 3 times but never predicted.
    cm = [[2, 0, 1], [0, 0, 3], [0, 0, 0]]
    m = segmentation_metrics(cm, TRIMAP)
    # pet: TP 2, FP 0, FN 1 -> IoU 2/3, Dice 4/5
    # background: TP 0, FP 0, FN 3 -> IoU 0, Dice 0
    # border: TP 0, FP 1 + 3 = 4, FN 0 -> IoU 0, Dice 0
    assert m["iou"] == pytest.approx({"pet": 2 / 3, "background": 0.0, "border": 0.0})
    assert m["mean_iou"] == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert m["dice"] == pytest.approx((4 / 5 + 0 + 0) / 3)
    assert m["pixel_accuracy"] == pytest.approx(2 / 6)


def test_segmentation_metrics_perfect_and_all_wrong():
    perfect = segmentation_metrics([[5, 0, 0], [0, 2, 0], [0, 0, 1]], TRIMAP)
    assert perfect["pixel_accuracy"] == perfect["mean_iou"] == perfect["dice"] == 1.0
    assert perfect["iou"] == {"pet": 1.0, "background": 1.0, "border": 1.0}
    wrong = segmentation_metrics([[0, 4, 1], [2, 0, 0], [1, 1, 0]], TRIMAP)
    assert wrong["pixel_accuracy"] == wrong["mean_iou"] == wrong["dice"] == 0.0


def test_segmentation_metrics_reject_bad_confusion():
    with pytest.raises(ValueError, match="class_names: 2 names for a 3-class"):
        segmentation_metrics(np.eye(3, dtype=int), ["pet", "background"])
    with pytest.raises(ValueError, match="confusion: no pixels counted"):
        segmentation_metrics(np.zeros((3, 3), int), TRIMAP)
    with pytest.raises(ValueError, match=r"square matrix, got shape \(2, 3\)"):
        segmentation_metrics(np.ones((2, 3), int), TRIMAP)


def test_majority_baseline_predicts_the_most_frequent_true_class():
    cm = [[3, 1, 0], [1, 4, 0], [0, 0, 0]]  # true pixels: pet 4, background 5, border 0
    m = majority_baseline(cm, TRIMAP)
    assert m["majority_class"] == "background"
    # Baseline confusion [[0, 4, 0], [0, 5, 0], [0, 0, 0]]
    assert m["pixel_accuracy"] == pytest.approx(5 / 9)
    # pet: TP 0, FN 4 -> 0; background: TP 5, FP 4 -> IoU 5/9, Dice 10/14; border: NaN
    assert m["iou"]["pet"] == 0.0
    assert m["iou"]["background"] == pytest.approx(5 / 9)
    assert math.isnan(m["iou"]["border"])
    assert m["mean_iou"] == pytest.approx((0 + 5 / 9) / 2)
    assert m["dice"] == pytest.approx((0 + 10 / 14) / 2)
    assert majority_baseline(cm)["majority_class"] == "1"  # names default to class ids


def test_classification_metrics_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 2]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"])  # "d" never occurs
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: TP 1 of 2 predicted, 1 of 2 true -> P 1/2, R 1/2, F1 1/2
    # b: TP 2 of 3 predicted, 2 of 2 true -> P 2/3, R 1, F1 2*(2/3)/(5/3) = 4/5
    # c: TP 1 of 1 predicted, 1 of 2 true -> P 1, R 1/2, F1 2*(1/2)/(3/2) = 2/3
    # d: nothing true or predicted -> 0 (zero_division=0), still counted in the macro mean
    assert m["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 4 / 5, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3 + 0) / 4)
    assert m["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_classification_metrics_perfect_and_all_wrong():
    perfect = classification_metrics(np.array([0, 1, 2]), np.array([0, 1, 2]), ["a", "b", "c"])
    assert perfect["accuracy"] == perfect["macro_f1"] == 1.0
    wrong = classification_metrics([0, 1, 2], [1, 2, 0], ["a", "b", "c"])
    assert wrong["accuracy"] == wrong["macro_f1"] == 0.0
    assert wrong["confusion"] == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]


def test_classification_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="y_true: no examples"):
        classification_metrics([], [], ["a", "b"])
    with pytest.raises(ValueError, match=r"y_true: class ids must lie in \[0, 2\)"):
        classification_metrics([0, 2], [0, 1], ["a", "b"])
