"""The detection evaluation set: test-split objects pasted at varied scales and places onto neutral canvases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from visionflow.config import ConfigError, DetectionConfig
from visionflow.detection.boxes import GroundTruth, iou

# Random placements tried per object before the canvas is declared too crowded. It only decides when to give
# up: any canvas that gets built is the same whatever this is, as long as it is large.
_PLACEMENT_TRIES = 1000


@dataclass(frozen=True)
class CanvasSet:
    """Canvases (N, C, C, 3) in [0, 1] with their ground-truth boxes (pixels) and class ids."""

    images: np.ndarray
    ground_truth: list[GroundTruth]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)


def background(rng: np.random.Generator, size: int, mean: np.ndarray, spread: np.ndarray, cells: int) -> np.ndarray:
    """A smooth colour field (size, size, 3): `mean` plus noise of std `spread` on a cells x cells grid, upsampled.

    Why this background: its colour is the test split's mean, so colour alone does not tell object from
    background; it varies only at the scale of an object (no fine texture), so no window of it looks like a
    class; and it is not flat black, which a conv net sees as the same zero padding it sees at crop borders.
    """
    coarse = mean + spread * rng.standard_normal((cells, cells, 3))  # (cells, cells, 3)
    field = tf.image.resize(coarse[None].astype(np.float32), (size, size), method="bilinear")[0]  # (size, size, 3)
    return np.clip(field.numpy(), 0.0, 1.0)


def colour_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread), each (3,): the mean colour of a split's images and how much image colours vary across it."""
    images = np.asarray(images, np.float32)
    return images.mean(axis=(0, 1, 2)), images.mean(axis=(1, 2)).std(axis=0)


def noise_cells(cfg: DetectionConfig) -> int:
    """Noise cells per canvas side: about the size of the smallest object."""
    return max(1, round(1 / cfg.min_object_scale))


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Bounding box [ymin, xmin, ymax, xmax] (pixel edges, max exclusive) of the True pixels of a 2-D mask."""
    mask = np.asarray(mask, bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask has no object pixels, so it has no bounding box")
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def _place(rng: np.random.Generator, canvas: int, side: int, placed: list[np.ndarray], max_iou: float) -> np.ndarray:
    for _ in range(_PLACEMENT_TRIES):
        top, left = rng.integers(0, canvas - side + 1, size=2)
        box = np.array([top, left, top + side, left + side], np.float32)
        if not placed or iou(box, np.stack(placed)).max() <= max_iou:
            return box
    raise ConfigError(
        f"detection: could not place {len(placed) + 1} objects of side {side}px on a {canvas}px canvas with IoU "
        f"<= detection.max_object_overlap ({max_iou:g}) after {_PLACEMENT_TRIES} tries; lower "
        "detection.max_objects or detection.max_object_scale, or raise detection.canvas_size"
    )


def build_canvases(
    images: np.ndarray,
    labels: np.ndarray,
    cfg: DetectionConfig,
    seed: int | Sequence[int],
    class_names: Sequence[str],
    masks: np.ndarray | None = None,
    split: str = "test",
) -> CanvasSet:
    """`cfg.num_images` canvases of `split` objects (N, S, S, 3) in [0, 1]; box = the object, or its mask's box.

    `seed` seeds numpy's default_rng: an int, or a sequence for a stream of its own (training canvases).
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32).reshape(-1)
    if len(images) == 0:
        raise ConfigError(f"{split} split: no images to build detection canvases from; check the prepared dataset")
    if images.ndim != 4 or images.shape[-1] != 3 or len(labels) != len(images):
        raise ValueError(
            f"{split} split: expected images (N, S, S, 3) with N labels, got {images.shape} and {labels.shape}"
        )
    if masks is not None and np.shape(masks) != images.shape[:3]:
        raise ValueError(f"{split} split: masks {np.shape(masks)} must be (N, S, S) like images {images.shape}")
    rng = np.random.default_rng(seed)
    size = cfg.canvas_size
    mean, spread = colour_stats(images)
    cells = noise_cells(cfg)
    canvases, truths = [], []
    for _ in tqdm(range(cfg.num_images), desc="detection canvases", unit="canvas", leave=False):
        canvas = background(rng, size, mean, spread, cells)
        count = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        picks = rng.choice(len(images), size=count, replace=count > len(images))
        placed, boxes = [], []
        for index in picks:
            side = max(1, round(rng.uniform(cfg.min_object_scale, cfg.max_object_scale) * size))
            # Objects may overlap a little: IoU up to detection.max_object_overlap (keep it at most detection.nms_iou,
            # or NMS may merge the boxes of two objects).
            square = _place(rng, size, side, placed, cfg.max_object_overlap)
            placed.append(square)
            top, left = int(square[0]), int(square[1])
            obj = tf.image.resize(images[index], (side, side), method="bilinear", antialias=True).numpy()
            canvas[top : top + side, left : left + side] = np.clip(obj, 0.0, 1.0)
            boxes.append(square if masks is None else _scaled_mask_box(masks[index], square, index, split))
        canvases.append(canvas)
        truths.append(GroundTruth(np.stack(boxes), labels[picks]))
    return CanvasSet(np.stack(canvases).astype(np.float32), truths, tuple(class_names))


def _scaled_mask_box(mask: np.ndarray, square: np.ndarray, index: int, split: str) -> np.ndarray:
    try:
        box = mask_box(mask)  # in source pixels
    except ValueError:
        raise ValueError(f"{split} split: image {index}'s mask has no object pixels; drop it or fix its mask") from None
    scale = (square[2] - square[0]) / np.array(mask.shape * 2, np.float32)
    return square[[0, 1, 0, 1]] + box * scale
