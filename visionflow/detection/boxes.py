"""Boxes as [ymin, xmin, ymax, xmax] pixel edges: IoU, per-class NMS, mapping back to the original image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Detections:
    """Detections in one image: boxes (K, 4) in original-image pixels, class ids (K,), scores (K,)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float32).reshape(-1, 4))
        object.__setattr__(self, "classes", np.asarray(self.classes, np.int32).reshape(-1))
        object.__setattr__(self, "scores", np.asarray(self.scores, np.float32).reshape(-1))
        if not len(self.boxes) == len(self.classes) == len(self.scores):
            raise ValueError(
                f"Detections: {len(self.boxes)} boxes, {len(self.classes)} classes and {len(self.scores)} "
                "scores; give one class and one score per box"
            )

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth objects in one image: boxes (G, 4) in pixels and class ids (G,)."""

    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float32).reshape(-1, 4))
        object.__setattr__(self, "classes", np.asarray(self.classes, np.int32).reshape(-1))
        if len(self.boxes) != len(self.classes):
            raise ValueError(
                f"GroundTruth: {len(self.boxes)} boxes but {len(self.classes)} classes; give one class per box"
            )

    def __len__(self) -> int:
        return len(self.boxes)


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `boxes_a` (N, 4) with every box in `boxes_b` (M, 4): (N, M)."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)[:, None, :]  # (N, 1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)[None, :, :]  # (1, M, 4)
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_h * inter_w  # (N, M)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    # Degenerate (zero-area) pairs have no overlap to speak of: IoU 0 rather than 0/0.
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def to_original(
    boxes: np.ndarray, scale: tuple[float, float], image_shape: tuple[int, int]
) -> np.ndarray:
    """Boxes in upscaled pixels -> original pixels (divide by the (y, x) scale), clipped to the image."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    factors = np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
    limits = np.array([image_shape[0], image_shape[1], image_shape[0], image_shape[1]], np.float32)
    return np.clip(boxes / factors, 0.0, limits)


def per_class_nms(
    boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float
) -> Detections:
    """Score-threshold then non-max-suppress each class on its own; boxes (N, 4), scores (N, K) -> Detections."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32)
    if scores.ndim != 2 or len(scores) != len(boxes):
        raise ValueError(f"per_class_nms: scores must be (N={len(boxes)}, K), got {scores.shape}")
    kept_boxes, kept_classes, kept_scores = [], [], []
    for cls in range(scores.shape[1]):
        keep = tf.image.non_max_suppression(
            boxes,
            scores[:, cls],
            max_output_size=len(boxes),  # no cap: every window may be its own detection
            iou_threshold=iou_threshold,
            score_threshold=score_threshold,
        ).numpy()
        kept_boxes.append(boxes[keep])
        kept_classes.append(np.full(len(keep), cls, np.int32))
        kept_scores.append(scores[keep, cls])
    all_scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0, np.float32)
    order = np.argsort(-all_scores, kind="stable")
    return Detections(
        boxes=np.concatenate(kept_boxes)[order] if kept_boxes else np.zeros((0, 4), np.float32),
        classes=np.concatenate(kept_classes)[order] if kept_classes else np.zeros(0, np.int32),
        scores=all_scores[order],
    )
