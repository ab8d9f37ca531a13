"""Small evaluators: arrays of class ids in, plain numbers out; the stages decide where they go.

Segmentation metrics for a class that appears neither in the truth nor in the prediction are NaN
(undefined: 0/0) and are left out of the means, so a class the evaluation set lacks neither rewards nor
punishes the model. Classification metrics follow scikit-learn with `zero_division=0`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def _class_ids(values: Any, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected integer class ids, got dtype {arr.dtype} (argmax logits first)")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name}: class ids must lie in [0, {num_classes}), got values in [{arr.min()}, {arr.max()}] "
            "(check num_classes / class_names against the dataset)"
        )
    return arr.reshape(-1).astype(np.int64)


class ConfusionAccumulator:
    """Running confusion matrix over any number of batches (rows = true class, columns = predicted)."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes: got {num_classes}; need at least one class")
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, y_true: Any, y_pred: Any) -> None:
        """Count one batch of predictions; both arrays have the same shape (any) and hold class ids."""
        true, pred = np.asarray(y_true), np.asarray(y_pred)
        if true.shape != pred.shape:
            raise ValueError(f"y_true and y_pred: shapes differ ({true.shape} vs {pred.shape}); squeeze masks first")
        true = _class_ids(true, "y_true", self.num_classes)
        pred = _class_ids(pred, "y_pred", self.num_classes)
        # Each (true, pred) pair as one flat index into the matrix, counted in one pass.
        counts = np.bincount(true * self.num_classes + pred, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)


def _check_confusion(confusion: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion: expected a square matrix, got shape {cm.shape}")
    names = [str(i) for i in range(cm.shape[0])] if class_names is None else list(class_names)
    if len(names) != cm.shape[0]:
        raise ValueError(f"class_names: {len(names)} names for a {cm.shape[0]}-class confusion matrix")
    if cm.sum() == 0:
        raise ValueError("confusion: no pixels counted (was the evaluation split empty?)")
    return cm, names


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # den == 0 only when the class is absent from both truth and prediction: undefined, NaN.
    return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def segmentation_metrics(confusion: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """Pixel accuracy, per-class and mean IoU and Dice from a confusion matrix (NaN: class absent)."""
    cm, names = _check_confusion(confusion, class_names)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp  # predicted as c but not c
    fn = cm.sum(axis=1) - tp  # c but predicted as something else
    iou = _ratio(tp, tp + fp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "pixel_accuracy": float(tp.sum() / cm.sum()),
        "mean_iou": _mean(iou),
        "iou": {n: float(v) for n, v in zip(names, iou)},
        "dice": _mean(dice),
        "dice_per_class": {n: float(v) for n, v in zip(names, dice)},
    }


def majority_baseline(confusion: Any, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """segmentation_metrics of a model predicting the most frequent true class everywhere (ties: lowest id)."""
    cm, names = _check_confusion(confusion, class_names)
    support = cm.sum(axis=1)  # true pixels per class
    majority = int(np.argmax(support))
    baseline = np.zeros_like(cm)
    baseline[:, majority] = support
    return {"majority_class": names[majority], **segmentation_metrics(baseline, names)}


def class_predictions(scores: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, background won) per row of classifier scores (N, num_classes [+ 1]), probabilities or logits.

    A classifier that learnt background windows (classifier.windows) has one output more, "background", last. The
    predicted class is the best of the `num_classes` classes whatever background scored (for images known to hold
    one object: which class it is); the second array says where background scored above every class.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] not in (num_classes, num_classes + 1):
        raise ValueError(f"scores: expected (N, {num_classes}) or (N, {num_classes + 1}) with a last background "
                         f"output, got shape {scores.shape} (check the model against the dataset's classes)")
    background = scores.argmax(axis=1) == num_classes  # never true without a background output
    return scores[:, :num_classes].argmax(axis=1), background


def classifier_metrics(y_true: Any, scores: Any, class_names: Sequence[str]) -> tuple[dict[str, Any], np.ndarray,
                                                                                     np.ndarray]:
    """classification_metrics of the best class per row (class_predictions), plus `flowers_called_background`: the
    share of rows where a background output beat every class; and the predictions and background flags."""
    pred, background = class_predictions(scores, len(class_names))
    metrics = classification_metrics(y_true, pred, class_names)
    metrics["flowers_called_background"] = float(background.mean())
    return metrics, pred, background


def classification_metrics(y_true: Any, y_pred: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 over all classes, per-class precision/recall/F1/support and the confusion matrix."""
    names = list(class_names)
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred: expected two 1-D arrays of equal length, got {true.shape} and {pred.shape}"
        )
    if true.size == 0:
        raise ValueError("y_true: no examples to evaluate (was the test split empty?)")
    true, pred = _class_ids(true, "y_true", len(names)), _class_ids(pred, "y_pred", len(names))
    labels = list(range(len(names)))  # so classes absent from both arrays still get a row and a column
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, average=None, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            n: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for n, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "confusion": confusion_matrix(true, pred, labels=labels).tolist(),
    }
