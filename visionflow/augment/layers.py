"""Keras preprocessing layers built from op mappings, and the custom `RandomInvert` layer.

Used with `augment.placement=model`: the layers live inside the model (saved with it, on the
accelerator, inactive at inference). Random layers are seeded from the caller's seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers
from keras import ops as kops

from visionflow.augment.spec import resolve, validate_ops

# Images reaching augmentation are float32 in [0, 1] (the data contract of visionflow.data).
VALUE_RANGE = (0.0, 1.0)


@keras.saving.register_keras_serializable(package="visionflow")
class RandomInvert(layers.Layer):
    """Inverts each image (x -> 1 - x) with probability `probability`; training only; images in [0, 1]."""

    def __init__(self, probability: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"RandomInvert: probability={probability!r} must be in [0, 1]")
        self.probability = probability
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        # One draw per image: (B, 1, 1, 1) for a batch, (1, 1, 1) for a single image.
        shape = (kops.shape(images)[0], 1, 1, 1) if len(images.shape) == 4 else (1, 1, 1)
        draw = keras.random.uniform(shape, seed=self.generator)
        return kops.where(draw < self.probability, VALUE_RANGE[1] + VALUE_RANGE[0] - images, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "probability": self.probability, "seed": self.seed}


def layer_seeds(seed: int, n: int) -> list[int]:
    """n well-mixed 32-bit seeds derived from one (numpy SeedSequence), one per layer."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def keras_layers(op: Mapping[str, Any], seed: int) -> list[layers.Layer]:
    """The Keras layer(s) of one validated Keras-layer op mapping."""
    if op["op"] == "random_crop":
        # Keras 3.15's RandomCrop returns its input unchanged at inference (its docstring promises a
        # centre crop): the CenterCrop after it is a no-op in training and gives the (height, width)
        # centre window at inference, so the model sees one size in both.
        return [_keras_layer(op, seed), layers.CenterCrop(op["height"], op["width"])]
    return [_keras_layer(op, seed)]


def _keras_layer(op: Mapping[str, Any], seed: int) -> layers.Layer:
    name, a = op["op"], resolve(op)
    warp = {k: a[k] for k in ("fill_mode", "fill_value", "interpolation") if k in a}
    if name == "resizing":
        return layers.Resizing(a["height"], a["width"], interpolation=a["interpolation"])
    if name == "rescaling":
        return layers.Rescaling(a["scale"], offset=a["offset"])
    if name == "random_flip":
        return layers.RandomFlip(a["mode"], seed=seed)
    if name == "random_rotation":
        return layers.RandomRotation(a["factor"], seed=seed, **warp)
    if name == "random_zoom":
        # width_factor=None: the same zoom on both axes, so the aspect ratio is kept.
        return layers.RandomZoom(a["factor"], width_factor=None, seed=seed, **warp)
    if name == "random_translation":
        return layers.RandomTranslation(a["height_factor"], a["width_factor"], seed=seed, **warp)
    if name == "random_crop":
        return layers.RandomCrop(a["height"], a["width"], seed=seed)
    if name == "random_contrast":
        return layers.RandomContrast(a["factor"], value_range=VALUE_RANGE, seed=seed)
    if name == "random_brightness":
        return layers.RandomBrightness(a["factor"], value_range=VALUE_RANGE, seed=seed)
    if name == "random_invert":
        return RandomInvert(a["probability"], seed=seed)
    raise ValueError(f"{name}: not a Keras-layer op (use it with augment.placement=dataset)")


MODEL_LAYER = "augmentation"  # the name of the classifier's augmentation block (placement: model)


def build_model_augmentation(ops: Sequence[Mapping[str, Any]], seed: int) -> keras.Sequential:
    """Classifier ops as a Keras Sequential named MODEL_LAYER; random layers act only when training=True."""
    validate_ops(ops, "classifier", placement="model")
    seeds = layer_seeds(seed, len(ops))
    return keras.Sequential([layer for op, s in zip(ops, seeds) for layer in keras_layers(op, s)],
                            name=MODEL_LAYER)


def model_augmentation(model: keras.Model) -> keras.layers.Layer:
    """The augmentation block of a classifier built with augment.placement: model."""
    return model.get_layer(MODEL_LAYER)
