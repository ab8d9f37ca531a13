"""Augmentation: op registry (spec), Keras layers (placement=model), stateless tf.data ops (placement=dataset,
segmentation, offline copies).

Attributes load lazily: `visionflow.config` imports `visionflow.augment.spec`, which must not pull in
TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "validate_ops": "spec",
    "allowed_ops": "spec",
    "OPS": "spec",
    "RandomInvert": "layers",
    "build_model_augmentation": "layers",
    "model_augmentation": "layers",
    "augmented_examples": "pipeline",
    "keras_layers": "layers",
    "build_dataset_augmentation": "pipeline",
    "build_joint_augmentation": "pipeline",
    "augment_dataset": "pipeline",
    "offline_copies": "pipeline",
    "image_op": "pipeline",
    "joint_op": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'visionflow.augment' has no attribute {name!r}")
    return getattr(importlib.import_module(f"visionflow.augment.{_EXPORTS[name]}"), name)
