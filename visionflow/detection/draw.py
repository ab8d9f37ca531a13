"""Detections drawn on images: class-coloured boxes with label and score, ground truth in white."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from visionflow.detection.boxes import Detections, GroundTruth

GT_COLOUR = (255, 255, 255)
_PALETTE = matplotlib.colormaps["tab10"]


def _colour(cls: int) -> tuple[int, int, int]:
    r, g, b, _ = _PALETTE(cls % _PALETTE.N)
    return int(r * 255), int(g * 255), int(b * 255)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    return image


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    class_names: Sequence[str],
    ground_truth: GroundTruth | None = None,
) -> np.ndarray:
    """The image (H, W, 3) in [0, 1] or uint8 with boxes, class labels and scores drawn: (H, W, 3) uint8."""
    canvas = Image.fromarray(_to_uint8(image)).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if ground_truth is not None:
        for box in ground_truth.boxes:
            ymin, xmin, ymax, xmax = box
            draw.rectangle((xmin, ymin, xmax - 1, ymax - 1), outline=GT_COLOUR, width=1)
    # Lowest score first, so the most confident box and label end up on top.
    for box, cls, score in sorted(zip(detections.boxes, detections.classes, detections.scores), key=lambda d: d[2]):
        ymin, xmin, ymax, xmax = box
        colour = _colour(int(cls))
        draw.rectangle((xmin, ymin, xmax - 1, ymax - 1), outline=colour, width=2)
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        label = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((xmin + 2, ymin + 1), label, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
        draw.text((xmin + 2, ymin + 1), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def save_detection_grid(
    images: Sequence[np.ndarray],
    detections: Sequence[Detections],
    ground_truth: Sequence[GroundTruth] | None,
    class_names: Sequence[str],
    path: str | Path,
) -> Path:
    """Draw every image's detections (and ground truth) and save them tiled in a near-square PNG grid."""
    if len(images) == 0 or len(images) != len(detections):
        raise ValueError(f"save_detection_grid: {len(images)} images for {len(detections)} detection lists")
    truths = ground_truth if ground_truth is not None else [None] * len(images)
    tiles = [draw_detections(im, det, class_names, gt) for im, det, gt in zip(images, detections, truths)]
    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    grid = np.zeros((rows * tile_h, cols * tile_w, 3), np.uint8)  # (rows*H, cols*W, 3)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * tile_h : r * tile_h + tile.shape[0], c * tile_w : c * tile_w + tile.shape[1]] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
