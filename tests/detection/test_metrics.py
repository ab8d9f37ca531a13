"""IoU, VOC AP and evaluate() against hand-computed cases; the random baseline; strategy agreement."""

from __future__ import annotations

import numpy as np
import pytest

from visionflow.detection import Detections, GroundTruth, evaluate, iou, random_boxes_baseline, score_agreement
from visionflow.detection.metrics import average_precision, match_detections, window_recall_bound

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
C = [40, 0, 50, 10]
FAR = [80, 80, 90, 90]


def test_iou_hand_cases():
    got = iou(np.array([A, A]), np.array([A, [0, 5, 10, 15], [0, 0, 5, 5], B]))
    # identical; half shifted: 50 / (100 + 100 - 50); contained: 25 / 100; disjoint
    np.testing.assert_allclose(got, [[1.0, 1 / 3, 0.25, 0.0]] * 2, atol=1e-7)
    assert got.shape == (2, 4)
    assert iou(np.array([[5, 5, 5, 9]]), np.array([A]))[0, 0] == 0.0  # zero-area box: no overlap, no 0/0
    assert iou(np.zeros((0, 4)), np.array([A])).shape == (0, 1)


def _ap(boxes, scores, gts, thr=0.5):
    _, is_tp = match_detections(boxes, scores, gts, thr)
    return average_precision(is_tp, sum(len(g) for g in gts))


def test_no_detections_give_ap_zero():
    assert _ap([np.zeros((0, 4))], [np.zeros(0)], [np.array([A, B])]) == 0.0


def test_perfect_detections_give_ap_one():
    assert _ap([np.array([A, B])], [np.array([0.9, 0.3])], [np.array([A, B])]) == pytest.approx(1.0)


def test_duplicate_detection_is_a_false_positive():
    # Two objects A, B. Ranked detections: A (0.9, TP), A again (0.8, duplicate -> FP), B (0.7, TP).
    # precision = 1/1, 1/2, 2/3 ; recall = 1/2, 1/2, 2/2
    # interpolated precision (best at recall >= r): 1 up to recall 1/2, then 2/3 up to recall 1
    # AP = (1/2 - 0) * 1 + (1 - 1/2) * 2/3 = 1/2 + 1/3
    scores, is_tp = match_detections([np.array([A, A, B])], [np.array([0.9, 0.8, 0.7])], [np.array([A, B])], 0.5)
    np.testing.assert_array_equal(is_tp, [True, False, True])
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7])
    assert average_precision(is_tp, 2) == pytest.approx(1 / 2 + 1 / 3)


def test_missed_object_halves_ap():
    # One of two objects found, no false positives: precision 1 up to recall 1/2, nothing after.
    assert _ap([np.array([A])], [np.array([0.9])], [np.array([A, B])]) == pytest.approx(0.5)


def test_mixed_scores_hand_computed():
    # Three objects. Ranked: 0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP, 0.5 TP.
    # precision = 1, 1/2, 2/3, 2/4, 3/5 ; recall = 1/3, 1/3, 2/3, 2/3, 1
    # interpolated: 1 on (0, 1/3], 2/3 on (1/3, 2/3], 3/5 on (2/3, 1]
    # AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5
    boxes = np.array([A, FAR, B, FAR, C])
    # Detections are matched by score order, not by input order: shuffle them.
    order = [3, 0, 4, 2, 1]
    ap = _ap([boxes[order]], [np.array([0.9, 0.8, 0.7, 0.6, 0.5])[order]], [np.array([A, B, C])])
    assert ap == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)


def test_matching_respects_images_and_the_iou_threshold():
    # Image 0 holds A, image 1 holds B. A box on A's place in image 1 must not find image 0's A.
    _, is_tp = match_detections(
        [np.zeros((0, 4)), np.array([A])], [np.zeros(0), np.array([0.9])], [np.array([A]), np.array([B])], 0.5
    )
    assert not is_tp.any()
    half_shifted = np.array([[0, 5, 10, 15]])  # IoU 1/3 with A
    _, is_tp = match_detections([half_shifted], [np.array([0.9])], [np.array([A])], 0.5)
    assert not is_tp.any()
    _, is_tp = match_detections([half_shifted], [np.array([0.9])], [np.array([A])], 0.3)
    assert is_tp.all()


def test_evaluate_reports_map_precision_recall_per_class():
    gts = [GroundTruth([A, B], [0, 1]), GroundTruth([C], [0])]
    dets = [
        Detections([A, B, FAR], [0, 0, 1], [0.9, 0.8, 0.7]),  # A right; B with the wrong class; FAR nothing
        Detections([C], [0], [0.6]),
    ]
    result = evaluate(dets, gts, num_classes=3, class_names=["cat", "dog", "bird"])
    # cat: ranked A (TP), B (FP: no cat there), C (TP): precision 1, 1/2, 2/3, recall 1/2, 1/2, 1 -> 1/2 + 1/2*2/3
    # dog: FAR (FP) is its only detection -> AP 0. bird has no objects and is left out of the mean.
    assert result["per_class_ap"] == pytest.approx({"cat": 1 / 2 + 1 / 3, "dog": 0.0})
    assert result["map50"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["detections_per_image"] == pytest.approx(2.0)


def test_evaluate_rejects_ground_truth_without_objects():
    with pytest.raises(ValueError, match="no objects"):
        evaluate([Detections([A], [0], [0.9])], [GroundTruth(np.zeros((0, 4)), [])], num_classes=2)


def test_random_baseline_is_seeded_sized_and_far_below_perfect():
    gts = [GroundTruth([A, B], [0, 1]), GroundTruth([C], [1])] * 10
    kw = dict(image_shape=(100, 100), box_size=(10, 10), num_classes=2, boxes_per_image=3)
    base = random_boxes_baseline(gts, seed=3, **kw)
    again = random_boxes_baseline(gts, seed=3, **kw)
    other = random_boxes_baseline(gts, seed=4, **kw)
    assert all(np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores) for a, b in zip(base, again))
    assert not np.array_equal(base[0].boxes, other[0].boxes)
    boxes = np.concatenate([d.boxes for d in base])
    np.testing.assert_allclose(boxes[:, 2:] - boxes[:, :2], 10, atol=1e-4)
    assert boxes.min() >= 0 and boxes.max() <= 100
    perfect = [Detections(gt.boxes, gt.classes, np.ones(len(gt))) for gt in gts]
    assert evaluate(perfect, gts, 2)["map50"] == pytest.approx(1.0)
    assert evaluate(base, gts, 2)["map50"] < 0.2


def test_score_agreement_is_the_largest_absolute_difference():
    scores = {
        "crops": np.array([[[0.2, 0.8]], [[0.5, 0.5]]]),
        "feature_crops": np.array([[[0.25, 0.75]], [[0.5, 0.5]]]),
        "dense": np.array([[[0.25, 0.75]], [[0.4, 0.6]]]),
    }
    got = score_agreement(scores)
    assert got["crops_vs_feature_crops"] == pytest.approx(0.05)
    assert got["dense_vs_feature_crops"] == pytest.approx(0.1)
    assert got["crops_vs_dense"] == pytest.approx(0.1)
    assert got["max_abs_diff"] == pytest.approx(0.1)


def test_window_recall_bound_counts_objects_some_window_can_match():
    windows = np.array([A, [0, 20, 10, 30]], np.float32)
    gts = [GroundTruth([A, [0, 20, 20, 40]], [0, 1]), GroundTruth([B], [0])]
    # A: a window matches it exactly; the 20x20 object overlaps the 10x10 window with IoU 1/4; B no window.
    assert window_recall_bound(gts, windows) == pytest.approx(1 / 3)
    assert window_recall_bound(gts, windows, iou_threshold=0.25) == pytest.approx(2 / 3)
