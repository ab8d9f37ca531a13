"""Training windows for the classifier: canvases of training-split objects cut into windows as the detector sees
them, labelled by their overlap with the objects: an object's class, or "background" (nothing, or a cut-off part)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tqdm import tqdm

from visionflow.config import DetectionConfig, WindowsConfig
from visionflow.detection.boxes import iou, to_original
from visionflow.detection.canvas import build_canvases
from visionflow.detection.windows import upscale_image, window_grid

# Seed-sequence tags: the evaluation canvases draw from default_rng(seed); the training canvases and the choice
# of their windows draw from streams of their own, so no training canvas repeats an evaluation canvas's layout.
CANVAS_STREAM, CHOICE_STREAM = 1, 2


@dataclass(frozen=True)
class TrainingWindows:
    """Windows (N, S, S, 3) in [0, 1] and labels (N,): class ids, `background_label` for background. Kept as
    float16: the default 4,400 windows of 128 px take 430 MB so, twice that as float32, and float16's rounding
    (under 0.0005 in [0, 1]) is far below one grey level."""

    images: np.ndarray
    labels: np.ndarray
    background_label: int
    counts: dict[str, int]  # windows taken of each kind: objects, background, partial


def training_windows(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    cfg: DetectionConfig,
    windows: WindowsConfig,
    window: int,
    seed: int,
) -> TrainingWindows:
    """`windows.canvases` canvases of the given (training) images cut into `window`-px windows of the upscaled
    canvas (window / upscale canvas pixels each), chosen at random among every pixel position, per canvas:
    `objects` windows with IoU >= object_iou with an object (its class), `background` windows touching no object
    and `partial` windows with 0 < IoU <= partial_iou with every object (both labelled background). A canvas
    with fewer candidates of a kind gives what it has; `counts` says how many were taken."""
    background_label = len(class_names)
    if windows.canvases == 0:
        return TrainingWindows(np.zeros((0, window, window, 3), np.float16), np.zeros(0, np.int64), background_label,
                               {"objects": 0, "background": 0, "partial": 0})
    canvas_cfg = dataclasses.replace(cfg, num_images=windows.canvases)
    canvases = build_canvases(images, labels, canvas_cfg, [seed, CANVAS_STREAM], class_names, split="train")
    grid = window_grid(canvases.images.shape[1:3], window, 1, cfg.upscale)  # a window at every pixel
    corners = grid.offsets()  # (P, 2) in upscaled pixels
    boxes = to_original(grid.boxes(), grid.scale, grid.image_shape)  # (P, 4) in canvas pixels
    rng = np.random.default_rng([seed, CHOICE_STREAM])
    most = windows.canvases * (windows.objects + windows.background + windows.partial)
    picked, picked_labels = np.empty((most, window, window, 3), np.float16), []  # filled up to counts' sum
    counts, filled = {"objects": 0, "background": 0, "partial": 0}, 0
    for canvas, truth in tqdm(list(zip(canvases.images, canvases.ground_truth)), desc="training windows",
                              unit="canvas", leave=False):
        overlap = iou(boxes, truth.boxes)  # (P, G)
        best = overlap.max(axis=1)  # (P,)
        kinds = {
            "objects": (np.flatnonzero(best >= windows.object_iou), windows.objects),
            "background": (np.flatnonzero(best == 0), windows.background),
            "partial": (np.flatnonzero((best > 0) & (best <= windows.partial_iou)), windows.partial),
        }
        chosen = []
        for kind, (candidates, wanted) in kinds.items():
            # Partial windows by their IoU: the near misses, the detector's likeliest false boxes, come first.
            weights = best[candidates] / best[candidates].sum() if kind == "partial" and len(candidates) else None
            take = rng.choice(candidates, size=min(wanted, len(candidates)), replace=False, p=weights)
            chosen.append(take)
            counts[kind] += len(take)
            picked_labels.append(truth.classes[overlap[take].argmax(axis=1)] if kind == "objects"
                                 else np.full(len(take), background_label, np.int32))
        upscaled = upscale_image(canvas, grid).numpy()  # (H', W', 3)
        for y, x in corners[np.concatenate(chosen)]:
            picked[filled] = upscaled[y : y + window, x : x + window]
            filled += 1
    if not filled:
        raise ValueError("classifier.windows: no canvas had a window of the kinds asked for; check "
                         "classifier.windows and the detection canvas settings")
    order = rng.permutation(filled)  # canvases and kinds mixed, so any stretch of the stream has all kinds
    return TrainingWindows(picked[:filled][order], np.concatenate(picked_labels).astype(np.int64)[order],
                           background_label, counts)
