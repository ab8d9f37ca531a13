"""Sliding-window detection over a backbone + head classifier: three strategies, one output contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from visionflow.config import ConfigError, DetectionConfig
from visionflow.detection.boxes import Detections, per_class_nms, to_original
from visionflow.detection.heads import convolutional_head
from visionflow.detection.windows import (
    WindowGrid,
    check_feature_map,
    crop_windows,
    feature_step,
    feature_windows,
    upscale_image,
    window_grid,
)
from visionflow.models.classifier import feature_stride, has_background, split_classifier

STRATEGIES = ("crops", "feature_crops", "dense")


@dataclass(frozen=True)
class WindowClassifier:
    """A classifier ready for sliding windows: whole model, backbone, head, and how outputs become class scores."""

    model: keras.Model  # (B, S, S, 3) in [0, 1] -> (B, K') outputs
    backbone: keras.Model  # (B, H, W, 3) in [0, 1] -> (B, H/s, W/s, C), any H, W
    head: keras.Model  # (B, cells, cells, C) -> (B, K') outputs, the same as `model`'s
    image_size: int  # S, the window side in pixels
    feature_stride: int  # s, input pixels per feature-map cell
    to_scores: Callable[[tf.Tensor], tf.Tensor]  # (N, K') outputs -> (N, K) class scores
    # The last of the K scores is "background" (no object): a window whose best score it is gives no box.
    background: bool = False

    @property
    def cells(self) -> int:
        """Window side in feature-map cells (what the head sees of one SxS image)."""
        return int(self.head.input_shape[1])


def pipeline_classifier(model: keras.Model, image_size: int) -> WindowClassifier:
    """Wrap a classifier from visionflow.models.build_classifier (logits) for sliding windows."""
    try:
        backbone, head = split_classifier(model)
    except ValueError as exc:
        raise ConfigError(
            f"detection.classifier=pipeline: cannot split the classifier into backbone and head: {exc}. "
            "Train it with the classifier stage, or set detection.classifier: imagenet"
        ) from None
    input_size = tuple(model.input_shape[1:3])
    if input_size != (image_size, image_size):
        raise ConfigError(
            f"classifier.image_size: {image_size}, but the classifier {model.name!r} takes {input_size} inputs; "
            "set classifier.image_size to the size the model was trained at"
        )
    return WindowClassifier(model, backbone, head, image_size, feature_stride(backbone), tf.nn.softmax,
                            has_background(model))


def as_window_classifier(classifier: keras.Model | WindowClassifier, image_size: int) -> WindowClassifier:
    """A WindowClassifier as is, or a pipeline keras classifier wrapped as one."""
    if isinstance(classifier, WindowClassifier):
        if classifier.image_size != image_size:
            raise ConfigError(
                f"classifier.image_size: {image_size}, but the window classifier takes {classifier.image_size}px "
                "windows; pass the classifier's own input size"
            )
        return classifier
    return pipeline_classifier(classifier, image_size)


def _compile(fn: Callable[..., tf.Tensor], spec: tf.TensorSpec, to_scores: Callable = tf.identity):
    # One trace per input signature; Dropout and augmentation layers are inert with training=False. No Python
    # control flow depends on tensors here, so AutoGraph has nothing to convert.
    return tf.function(lambda x: to_scores(fn(x, training=False)), input_signature=[spec], autograph=False)


class WindowScorer:
    """Class scores of every window of an image by one strategy; compiled once, reused for every image."""

    def __init__(self, classifier: WindowClassifier, strategy: str, stride: int, batch_size: int):
        if strategy not in STRATEGIES:
            raise ConfigError(f"detection.strategy: got {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if batch_size < 1:
            raise ConfigError(f"detection.batch_size: got {batch_size}; it must be at least 1")
        self.classifier, self.strategy, self.batch_size = classifier, strategy, batch_size
        c, s = classifier, classifier.image_size
        if strategy == "crops":
            self._model = _compile(c.model, tf.TensorSpec((None, s, s, 3), tf.float32), c.to_scores)
            return
        self.step = feature_step(stride, c.feature_stride)
        self._backbone = _compile(c.backbone, tf.TensorSpec((1, None, None, 3), tf.float32))
        if strategy == "feature_crops":
            self._head = _compile(c.head, tf.TensorSpec((None, *c.head.input_shape[1:]), tf.float32), c.to_scores)
        else:
            channels = c.head.input_shape[-1]
            self._dense = _compile(
                convolutional_head(c.head, self.step), tf.TensorSpec((1, None, None, channels), tf.float32)
            )

    def runs(self, grids: Sequence[WindowGrid]) -> dict[str, float]:
        """Head evaluations and backbone runs per image this strategy spends on images of these grids."""
        windows = float(np.mean([len(grid) for grid in grids]))
        backbone = windows if self.strategy == "crops" else 1.0
        return {"classifier_calls_per_image": windows, "backbone_runs_per_image": backbone}

    def __call__(self, image: np.ndarray, grid: WindowGrid) -> np.ndarray:
        """Scores of the grid's windows over `image` (H, W, 3) in [0, 1]: (N, K), row-major windows."""
        upscaled = upscale_image(image, grid)  # (H', W', 3)
        n = len(grid)
        if self.strategy == "crops":
            return np.concatenate(
                [
                    self._model(crop_windows(upscaled, grid, i, min(i + self.batch_size, n))).numpy()
                    for i in range(0, n, self.batch_size)
                ]
            )
        features = self._backbone(upscaled[None])  # (1, H'/s, W'/s, C)
        if self.strategy == "feature_crops":
            windows = feature_windows(features, grid, self.classifier.cells, self.step)  # (N, cells, cells, C)
            return np.concatenate(
                [self._head(windows[i : i + self.batch_size]).numpy() for i in range(0, n, self.batch_size)]
            )
        check_feature_map(features, grid, self.classifier.cells, self.step)
        score_map = self._dense(features)[0, : grid.rows, : grid.cols]  # (rows, cols, K')
        outputs = tf.reshape(score_map, (n, score_map.shape[-1]))  # (N, K'), row-major like the grid
        return self.classifier.to_scores(outputs).numpy()


def _images(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    images = [np.asarray(image, np.float32) for image in images]
    if not images:
        raise ConfigError(
            "detection.num_images: no images to detect objects in; build the evaluation set with "
            "detection.num_images >= 1 from a non-empty test split"
        )
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"images[{i}]: expected an (H, W, 3) RGB array in [0, 1], got shape {image.shape}")
    return images


def window_detections(grid: WindowGrid, scores: np.ndarray, cfg: DetectionConfig, background: bool) -> Detections:
    """The boxes of one image's windows (N, K scores): windows whose best score is background (the last, when
    `background`) dropped, then score threshold and per-class NMS on the object classes' scores."""
    boxes = to_original(grid.boxes(), grid.scale, grid.image_shape)  # (N, 4) in original pixels
    scores = np.asarray(scores, np.float32)
    if background:
        objects = scores.argmax(axis=1) != scores.shape[1] - 1
        boxes, scores = boxes[objects], scores[objects, :-1]  # (N', K - 1): the object classes' probabilities
    return per_class_nms(boxes, scores, cfg.score_threshold, cfg.nms_iou)


def run_detection(
    classifier: keras.Model | WindowClassifier,
    images: np.ndarray | Sequence[np.ndarray],
    cfg: DetectionConfig,
    image_size: int,
    strategy: str | None = None,
    progress: bool = True,
) -> tuple[list[Detections], dict[str, float | int | str]]:
    """Detect objects in every image: per-image Detections (original pixels, object classes only) and counters.

    No timing: speed is measured by the benchmarks (bench/), so that results hold no wall-clock numbers.
    """
    window_classifier = as_window_classifier(classifier, image_size)
    images = _images(images)
    scorer = WindowScorer(window_classifier, strategy or cfg.strategy, cfg.stride, cfg.batch_size)
    grids = [window_grid(image.shape[:2], image_size, cfg.stride, cfg.upscale) for image in images]
    pairs = tqdm(list(zip(images, grids)), desc=f"detect ({scorer.strategy})", unit="image", disable=not progress)
    detections = [window_detections(grid, scorer(image, grid), cfg, window_classifier.background)
                  for image, grid in pairs]
    stats: dict[str, float | int | str] = {"strategy": scorer.strategy, "images": len(images), **scorer.runs(grids)}
    return detections, stats


def strategy_scores(
    classifier: keras.Model | WindowClassifier,
    images: np.ndarray | Sequence[np.ndarray],
    cfg: DetectionConfig,
    image_size: int,
    strategies: Sequence[str] = STRATEGIES,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Per-window class scores of each strategy on the same windows of same-size images: {strategy: (B, N, K)}."""
    window_classifier = as_window_classifier(classifier, image_size)
    images = _images(images)
    grids = [window_grid(image.shape[:2], image_size, cfg.stride, cfg.upscale) for image in images]
    out = {}
    for strategy in strategies:
        scorer = WindowScorer(window_classifier, strategy, cfg.stride, cfg.batch_size)
        pairs = tqdm(list(zip(images, grids)), desc=f"scores ({strategy})", unit="image", disable=not progress)
        out[strategy] = np.stack([scorer(image, grid) for image, grid in pairs])
    return out
