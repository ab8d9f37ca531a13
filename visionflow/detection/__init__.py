"""Sliding-window detection over the classifier: evaluation canvases, three strategies, AP metrics, drawing, and
the training windows that teach the classifier "background"."""

from visionflow.detection.boxes import Detections, GroundTruth, iou, per_class_nms, to_original
from visionflow.detection.canvas import CanvasSet, build_canvases, mask_box
from visionflow.detection.draw import draw_detections, save_detection_grid
from visionflow.detection.engine import (
    STRATEGIES,
    WindowClassifier,
    WindowScorer,
    as_window_classifier,
    pipeline_classifier,
    run_detection,
    strategy_scores,
    window_detections,
)
from visionflow.detection.metrics import (
    average_precision,
    evaluate,
    random_boxes_baseline,
    score_agreement,
    window_recall_bound,
)
from visionflow.detection.training_set import TrainingWindows, training_windows
from visionflow.detection.windows import WindowGrid, window_grid

__all__ = [
    "STRATEGIES",
    "CanvasSet",
    "Detections",
    "GroundTruth",
    "TrainingWindows",
    "WindowClassifier",
    "WindowGrid",
    "WindowScorer",
    "as_window_classifier",
    "average_precision",
    "build_canvases",
    "draw_detections",
    "evaluate",
    "iou",
    "mask_box",
    "per_class_nms",
    "pipeline_classifier",
    "random_boxes_baseline",
    "run_detection",
    "save_detection_grid",
    "score_agreement",
    "strategy_scores",
    "to_original",
    "training_windows",
    "window_detections",
    "window_grid",
    "window_recall_bound",
]
