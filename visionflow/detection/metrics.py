"""Detection metrics: VOC-style AP/mAP at IoU 0.5, precision/recall, a random baseline, strategy agreement.

AP is written out here: none of the project's dependencies (TF, Keras, scikit-learn, numpy) computes VOC
detection AP. scikit-learn's average_precision_score ranks labelled samples; it cannot match boxes.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from visionflow.detection.boxes import Detections, GroundTruth, iou

__all__ = [
    "average_precision",
    "evaluate",
    "iou",
    "match_detections",
    "random_boxes_baseline",
    "score_agreement",
    "window_recall_bound",
]


def match_detections(
    boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """VOC matching of one class over images: (scores, is_true_positive) of all detections, best score first.

    Each detection, in order of falling score, looks at the ground truth it overlaps most in its image: a true
    positive when that IoU >= `iou_threshold` and no higher-scored detection took that object yet; otherwise a
    false positive (a second detection of a taken object is a duplicate), as in the VOC devkit.
    """
    image_ids = np.concatenate([np.full(len(s), i) for i, s in enumerate(scores)]) if scores else np.zeros(0, int)
    all_boxes = np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]) if boxes else np.zeros((0, 4))
    all_scores = np.concatenate([np.asarray(s, np.float32).reshape(-1) for s in scores]) if scores else np.zeros(0)
    order = np.argsort(-all_scores, kind="stable")
    taken = [np.zeros(len(g), bool) for g in gt_boxes]
    is_tp = np.zeros(len(order), bool)
    for rank, det in enumerate(order):
        img = image_ids[det]
        gts = np.asarray(gt_boxes[img], np.float32).reshape(-1, 4)
        if len(gts) == 0:
            continue
        overlaps = iou(all_boxes[det], gts)[0]  # (G,)
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not taken[img][best]:
            taken[img][best] = True
            is_tp[rank] = True
    return all_scores[order], is_tp


def average_precision(is_tp: np.ndarray, num_gt: int) -> float:
    """VOC (2010+) all-point interpolated AP from true-positive flags sorted by falling score and the GT count."""
    if num_gt < 1:
        raise ValueError("average_precision: num_gt must be >= 1; AP is undefined for a class with no objects")
    is_tp = np.asarray(is_tp, bool)
    tp = np.cumsum(is_tp)
    fp = np.cumsum(~is_tp)
    recall = tp / num_gt
    precision = tp / np.maximum(tp + fp, 1)
    # Interpolate: the precision at recall r is the best precision at any recall >= r.
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def evaluate(
    detections: Sequence[Detections],
    ground_truth: Sequence[GroundTruth],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
) -> dict:
    """map50 (mean AP over classes that have objects), precision and recall of all detections, per_class_ap."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"evaluate: {len(detections)} detection lists for {len(ground_truth)} ground-truth images")
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"evaluate: {len(names)} class names for num_classes={num_classes}")
    per_class_ap, true_positives = {}, 0
    for cls in range(num_classes):
        gts = [gt.boxes[gt.classes == cls] for gt in ground_truth]
        num_gt = sum(len(g) for g in gts)
        _, is_tp = match_detections(
            [d.boxes[d.classes == cls] for d in detections],
            [d.scores[d.classes == cls] for d in detections],
            gts,
            iou_threshold,
        )
        true_positives += int(is_tp.sum())
        if num_gt:  # VOC leaves classes with no objects out of the mean
            per_class_ap[names[cls]] = average_precision(is_tp, num_gt)
    total_gt = sum(len(gt) for gt in ground_truth)
    if total_gt == 0:
        raise ValueError("evaluate: the ground truth has no objects; mAP is undefined (check the evaluation set)")
    total_det = sum(len(d) for d in detections)
    return {
        "map50": float(np.mean(list(per_class_ap.values()))),
        "precision": true_positives / total_det if total_det else 0.0,
        "recall": true_positives / total_gt,
        "per_class_ap": per_class_ap,
        "detections_per_image": total_det / len(detections),
    }


def random_boxes_baseline(
    ground_truth: Sequence[GroundTruth],
    seed: int,
    image_shape: tuple[int, int],
    box_size: tuple[float, float],
    num_classes: int,
    boxes_per_image: int,
) -> list[Detections]:
    """Chance detections: `boxes_per_image` boxes of the window footprint at uniform places, classes and scores."""
    if boxes_per_image < 0:
        raise ValueError(f"random_boxes_baseline: boxes_per_image must be >= 0, got {boxes_per_image}")
    rng = np.random.default_rng(seed)
    height, width = image_shape
    box_h, box_w = min(box_size[0], height), min(box_size[1], width)
    out = []
    for _ in ground_truth:
        top = rng.uniform(0, height - box_h, boxes_per_image)
        left = rng.uniform(0, width - box_w, boxes_per_image)
        boxes = np.stack([top, left, top + box_h, left + box_w], axis=1)
        out.append(Detections(boxes, rng.integers(0, num_classes, boxes_per_image), rng.random(boxes_per_image)))
    return out


def window_recall_bound(
    ground_truth: Sequence[GroundTruth], window_boxes: np.ndarray, iou_threshold: float = 0.5
) -> float:
    """Best recall any classifier could reach: the share of objects some window overlaps with IoU >= threshold.

    Sliding windows only ever propose the grid's boxes; when objects are much larger or smaller than a window's
    footprint in the image, no window reaches the IoU threshold and map50 is bounded by this, not the classifier.
    """
    total = sum(len(gt) for gt in ground_truth)
    if total == 0:
        raise ValueError("window_recall_bound: the ground truth has no objects")
    reachable = sum(
        int((iou(gt.boxes, window_boxes).max(axis=1) >= iou_threshold).sum()) for gt in ground_truth if len(gt)
    )
    return reachable / total


def score_agreement(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest absolute difference of class scores on the same windows, per pair of strategies and overall."""
    pairs = {
        f"{a}_vs_{b}": float(np.max(np.abs(scores[a] - scores[b]))) for a, b in combinations(sorted(scores), 2)
    }
    return {**pairs, "max_abs_diff": max(pairs.values(), default=0.0)}
