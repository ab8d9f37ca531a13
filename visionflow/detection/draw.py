"""Detections drawn on images: solid class-coloured boxes with label and score; ground truth dashed green."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from visionflow.detection.boxes import Detections, GroundTruth
from visionflow.files import atomic_output
from visionflow.viz import to_uint8

GT_COLOUR = (0, 255, 0)
GT_DASH = (4, 3)  # ground-truth outline: 4 px drawn, 3 px left out, so it never looks like a detection
BOX_WIDTH = 2  # px, both outlines
# Detections: tab10 without its green, which is the ground truth's.
_PALETTE = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 2]


def _colour(cls: int) -> tuple[int, int, int]:
    r, g, b = _PALETTE[cls % len(_PALETTE)]
    return int(r * 255), int(g * 255), int(b * 255)


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box, colour: tuple[int, int, int]) -> None:
    """Outline of [ymin, xmin, ymax, xmax] (max exclusive) in dashes of GT_DASH, BOX_WIDTH px wide, inside the box."""
    ymin, xmin, ymax, xmax = (int(round(float(v))) for v in box)
    on, off = GT_DASH
    for w in range(BOX_WIDTH):
        top, left, bottom, right = ymin + w, xmin + w, ymax - 1 - w, xmax - 1 - w
        if bottom < top or right < left:
            return
        for x in range(left, right + 1, on + off):
            end = min(x + on - 1, right)
            draw.line((x, top, end, top), fill=colour)
            draw.line((x, bottom, end, bottom), fill=colour)
        for y in range(top, bottom + 1, on + off):
            end = min(y + on - 1, bottom)
            draw.line((left, y, left, end), fill=colour)
            draw.line((right, y, right, end), fill=colour)


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    class_names: Sequence[str],
    ground_truth: GroundTruth | None = None,
) -> np.ndarray:
    """The image (H, W, 3) in [0, 1] or uint8 with boxes, class labels and scores drawn: (H, W, 3) uint8.

    Detections: solid outlines in their class's colour with a "class score" label; ground truth: dashed green.
    """
    canvas = Image.fromarray(to_uint8(image)).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if ground_truth is not None:
        for box in ground_truth.boxes:
            _dashed_rectangle(draw, box, GT_COLOUR)
    # Lowest score first, so the most confident box and label end up on top.
    for box, cls, score in sorted(zip(detections.boxes, detections.classes, detections.scores), key=lambda d: d[2]):
        if not 0 <= cls < len(class_names):
            raise ValueError(f"draw_detections: class id {cls} has no name among {len(class_names)} class_names")
        ymin, xmin, ymax, xmax = box
        colour = _colour(int(cls))
        draw.rectangle((xmin, ymin, xmax - 1, ymax - 1), outline=colour, width=BOX_WIDTH)
        label = f"{class_names[cls]} {score:.2f}"
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
    with atomic_output(path, ".png") as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path
