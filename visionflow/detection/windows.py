"""Sliding-window geometry: the upscaled image, the window grid, and cutting windows out of pixels or features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from visionflow.config import ConfigError


@dataclass(frozen=True)
class WindowGrid:
    """Square windows of `window` px every `stride` px over an image upscaled to `upscaled` (H', W')."""

    image_shape: tuple[int, int]
    upscaled: tuple[int, int]
    window: int
    stride: int
    rows: int
    cols: int

    @property
    def scale(self) -> tuple[float, float]:
        """Exact (y, x) upscale factors after rounding the upscaled size to whole pixels."""
        return self.upscaled[0] / self.image_shape[0], self.upscaled[1] / self.image_shape[1]

    def __len__(self) -> int:
        return self.rows * self.cols

    def offsets(self) -> np.ndarray:
        """Top-left corner (y, x) of every window in upscaled pixels, row-major: (N, 2)."""
        ys, xs = np.meshgrid(np.arange(self.rows), np.arange(self.cols), indexing="ij")
        return np.stack([ys.ravel(), xs.ravel()], axis=1) * self.stride

    def boxes(self) -> np.ndarray:
        """Every window as [ymin, xmin, ymax, xmax] in upscaled pixels, row-major: (N, 4)."""
        corners = self.offsets().astype(np.float32)
        return np.concatenate([corners, corners + self.window], axis=1)


def window_grid(image_shape: tuple[int, int], window: int, stride: int, upscale: float) -> WindowGrid:
    """The windows of side `window` at `stride` over an image of `image_shape` upscaled by `upscale`."""
    if stride < 1:
        raise ConfigError(f"detection.stride: got {stride}; the window step must be a positive number of pixels")
    if upscale <= 0:
        raise ConfigError(f"detection.upscale: got {upscale}; it must be a positive factor (reference: 2.0)")
    height, width = int(image_shape[0]), int(image_shape[1])
    upscaled = (int(round(height * upscale)), int(round(width * upscale)))
    if window > min(upscaled):
        raise ConfigError(
            f"detection.upscale / detection.canvas_size: the window (classifier input {window}px) is larger than "
            f"the upscaled image ({height}x{width} * {upscale:g} = {upscaled[0]}x{upscaled[1]}); raise "
            "detection.upscale or detection.canvas_size, or lower classifier.image_size"
        )
    # Only whole windows: the grid stops where the next window would leave the image (the reference's
    # 224-px windows every 32 px over 448 px give 8 positions per axis).
    rows = (upscaled[0] - window) // stride + 1
    cols = (upscaled[1] - window) // stride + 1
    return WindowGrid((height, width), upscaled, window, stride, rows, cols)


def feature_step(stride: int, backbone_stride: int) -> int:
    """The window step in feature-map cells; the pixel stride must be a whole number of cells."""
    if stride % backbone_stride:
        raise ConfigError(
            f"detection.stride: {stride}px is not a multiple of the backbone's feature stride "
            f"({backbone_stride}px per cell), so windows would not line up with feature-map cells; set "
            f"detection.stride to a multiple of {backbone_stride} or use detection.strategy: crops"
        )
    return stride // backbone_stride


def upscale_image(image: tf.Tensor, grid: WindowGrid) -> tf.Tensor:
    """(H, W, 3) -> (H', W', 3) bilinear, the size the grid was laid out on."""
    return tf.image.resize(tf.convert_to_tensor(image, tf.float32), grid.upscaled, method="bilinear")


def crop_windows(upscaled: tf.Tensor, grid: WindowGrid, start: int, stop: int) -> tf.Tensor:
    """Windows start..stop-1 (row-major) cut out of the upscaled image: (stop - start, S, S, 3)."""
    s = grid.window
    return tf.stack([upscaled[y : y + s, x : x + s] for y, x in grid.offsets()[start:stop]])


def feature_windows(features: tf.Tensor, grid: WindowGrid, cells: int, step: int) -> tf.Tensor:
    """The grid's windows cut out of a (1, h, w, C) feature map: (N, cells, cells, C), row-major."""
    check_feature_map(features, grid, cells, step)
    channels = features.shape[-1]
    patches = tf.image.extract_patches(
        features, sizes=[1, cells, cells, 1], strides=[1, step, step, 1], rates=[1, 1, 1, 1], padding="VALID"
    )  # (1, rows', cols', cells*cells*C), rows' >= grid.rows
    patches = patches[0, : grid.rows, : grid.cols]  # (rows, cols, cells*cells*C)
    return tf.reshape(patches, (len(grid), cells, cells, channels))


def check_feature_map(features: tf.Tensor, grid: WindowGrid, cells: int, step: int) -> None:
    """Raise unless a (1, h, w, C) feature map holds every window of the grid."""
    need = ((grid.rows - 1) * step + cells, (grid.cols - 1) * step + cells)
    have = tuple(features.shape[1:3])
    if have[0] < need[0] or have[1] < need[1]:
        raise ValueError(
            f"feature map {have} of the {grid.upscaled} upscaled image is smaller than the {need} cells the "
            f"{grid.rows}x{grid.cols} windows need; the backbone's stride does not match classifier.image_size"
        )
