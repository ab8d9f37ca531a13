"""The models as served: raw RGB pixels in (0-255, the model's input size), the pipeline's scaling inside."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

PIXEL_SCALE = 1.0 / 255.0  # the caches hold images / 255 (visionflow.cache)


def raw_pixel_model(model: keras.Model) -> keras.Model:
    """`model` behind a Rescaling layer, so a client sends the image's pixel values as they are."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")  # (B, S, S, 3), 0-255
    outputs = model(keras.layers.Rescaling(PIXEL_SCALE, name="scale_to_unit")(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_pixels")


def pixel_examples(images: tf.data.Dataset, n: int = 2) -> np.ndarray:
    """(n, S, S, 3) float32 0-255 input example from a cache split's [0, 1] images."""
    batch = np.stack([ex["image"] for ex in images.take(n).as_numpy_iterator()])
    return np.round(batch / PIXEL_SCALE).astype(np.float32)
