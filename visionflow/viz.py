"""Figures as PNG files: mask overlays, segmentation grids, confusion matrices, training curves, image grids.

Uses matplotlib's object API on the Agg canvas (no pyplot, so no global backend or figure state), a
fixed size and dpi, and no version stamp in the PNG metadata: the same inputs give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from visionflow.classes import MASK_CLASSES
from visionflow.files import atomic_output

# RGB per MASK_CLASSES index (pet, background, border): red, blue, yellow stay apart on photos.
PALETTE = np.array([[230, 25, 75], [0, 130, 200], [255, 225, 25]], dtype=np.uint8)
CELL_INCHES = 2.5  # side of one image panel
DPI = 100


def to_uint8(image: Any, name: str = "image") -> np.ndarray:
    """An RGB image (H, W, 3), uint8 or float in [0, 1], as uint8: what every figure and drawn box is made from."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected an RGB image of shape (H, W, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float in [0, 1], got dtype {arr.dtype}")
    # Augmented images may overshoot [0, 1] slightly (brightness, contrast); clip for display only.
    return np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def _mask2d(mask: Any, name: str = "mask") -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]  # (H, W, 1) -> (H, W)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name}: expected integer class ids of shape (H, W) or (H, W, 1), got {arr.dtype} {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= len(PALETTE)):
        raise ValueError(
            f"{name}: class ids must lie in [0, {len(PALETTE)}) ({', '.join(MASK_CLASSES)}), got max {arr.max()}"
        )
    return arr


def overlay(image: Any, mask: Any, alpha: float = 0.5) -> np.ndarray:
    """Image blended with its mask's class colours (PALETTE), uint8 RGB (H, W, 3)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: got {alpha}; the blend weight of the mask colours must lie in [0, 1]")
    rgb = to_uint8(image).astype(np.float64)
    classes = _mask2d(mask)
    if classes.shape != rgb.shape[:2]:
        raise ValueError(f"mask: shape {classes.shape} does not match the image's {rgb.shape[:2]}")
    colours = PALETTE[classes].astype(np.float64)  # (H, W) -> (H, W, 3)
    return np.round((1.0 - alpha) * rgb + alpha * colours).astype(np.uint8)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _panel(ax, image: np.ndarray, title: str | None) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def save_segmentation_grid(
    images: Any, true_masks: Any, pred_masks: Any, path: str | Path, titles: Sequence[str] | None = None
) -> Path:
    """One row per example: image | true mask over it | predicted mask over it."""
    n = len(images)
    if not n or len(true_masks) != n or len(pred_masks) != n:
        raise ValueError(
            "images, true_masks, pred_masks: need the same non-zero count, "
            f"got {n}, {len(true_masks)}, {len(pred_masks)}"
        )
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles: {len(titles)} titles for {n} images")
    fig = Figure(figsize=(3 * CELL_INCHES, n * CELL_INCHES), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        image = to_uint8(images[i], f"images[{i}]")
        _panel(axes[i, 0], image, titles[i] if titles else "image")
        _panel(axes[i, 1], overlay(image, true_masks[i]), "true")
        _panel(axes[i, 2], overlay(image, pred_masks[i]), "predicted")
    return _save(fig, path)


def save_confusion_matrix(
    confusion: Any, class_names: Sequence[str], path: str | Path, normalize: bool = False
) -> Path:
    """Confusion matrix heat map (rows = true class); `normalize` shows each row as fractions."""
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion: shape {cm.shape} does not match {len(class_names)} class_names")
    values_format = "d"
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        values_format = ".2f"
    side = max(4.0, 0.7 * len(class_names) + 2.5)
    fig = Figure(figsize=(side, side), layout="constrained")
    ax = fig.subplots()
    ConfusionMatrixDisplay(cm, display_labels=list(class_names)).plot(
        ax=ax, values_format=values_format, xticks_rotation=45, colorbar=False
    )
    return _save(fig, path)


def save_history(history: Mapping[str, Sequence[float]] | pd.DataFrame, path: str | Path) -> Path:
    """One panel per metric (loss, accuracy, ...), train solid and validation dashed, by epoch."""
    frame = pd.DataFrame(history)
    if frame.empty:
        raise ValueError("history: no epochs recorded (did training run?)")
    # A frame written by the stages carries an `epoch` column (used as is); a Keras History dict does not.
    epochs = frame["epoch"] if "epoch" in frame else pd.Series(range(1, len(frame) + 1))
    frame = frame.drop(columns="epoch", errors="ignore")
    metrics = [c for c in frame.columns if not c.startswith("val_")]
    if not metrics:
        raise ValueError(f"history: no training metrics among the columns {list(frame.columns)}")
    fig = Figure(figsize=(4.0 * len(metrics), 3.5), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        ax.plot(epochs, frame[metric], marker="o", label="train")
        if f"val_{metric}" in frame:
            ax.plot(epochs, frame[f"val_{metric}"], marker="o", linestyle="--", label="val")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    return _save(fig, path)


def save_image_grid(
    images: Any, titles: Sequence[str] | None, path: str | Path, ncols: int = 4
) -> Path:
    """Images in rows of `ncols`, each under its title (augmented examples, predictions with labels)."""
    n = len(images)
    if not n:
        raise ValueError("images: nothing to draw")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles: {len(titles)} titles for {n} images")
    if ncols < 1:
        raise ValueError(f"ncols: got {ncols}; need at least one column")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * CELL_INCHES, nrows * CELL_INCHES), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for i, ax in enumerate(axes):
        if i < n:
            _panel(ax, to_uint8(images[i], f"images[{i}]"), titles[i] if titles else None)
        else:
            ax.set_axis_off()
    return _save(fig, path)


def save_classifier_figures(confusion: Any, images: Any, truth: Sequence[int], said: Sequence[str],
                            scores: Any, class_names: Sequence[str], folder: Path) -> tuple[Path, Path]:
    """`folder`/confusion.png and `folder`/predictions.png: the first images titled with what the classifier said,
    its top score and the true class."""
    names = list(class_names)
    titles = [f"{said[i]} {np.max(scores[i]):.2f}\n(true {names[truth[i]]})" for i in range(len(images))]
    return (save_confusion_matrix(confusion, names, Path(folder) / "confusion.png"),
            save_image_grid(list(images), titles, Path(folder) / "predictions.png"))
