"""Keras models: the segmentation U-Net and the backbone + head classifier."""

from visionflow.models.classifier import (
    build_classifier,
    compile_classifier,
    feature_stride,
    split_classifier,
)
from visionflow.models.segmentation import build_unet, compile_segmentation, pixel_weights
from visionflow.models.weights import WeightsUnavailableError

__all__ = [
    "WeightsUnavailableError",
    "build_classifier",
    "build_unet",
    "compile_classifier",
    "compile_segmentation",
    "feature_stride",
    "pixel_weights",
    "split_classifier",
]
