"""detection.classifier: imagenet — Keras' ImageNet MobileNetV2 with top, its cat and dog classes grouped."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from visionflow.detection.engine import WindowClassifier
from visionflow.keras_cache import TOP_SIZE, mobilenet_v2_file
from visionflow.models.classifier import feature_stride
from visionflow.models.weights import WeightsUnavailableError, is_fetch_failure

# ImageNet-1k class ids (0-based, Keras order): 151 Chihuahua .. 268 Mexican hairless are dogs; 281 tabby ..
# 285 Egyptian cat are domestic cats. The Oxford-IIIT Pet species: 1 = cat, 2 = dog.
DOG_IDS = range(151, 269)
CAT_IDS = range(281, 286)
SPECIES = ("cat", "dog")
IMAGENET_SIZE = TOP_SIZE  # the only input size Keras publishes MobileNetV2 top (classifier) weights for


def species_matrix(num_classes: int = 1000) -> np.ndarray:
    """(num_classes, 2) 0/1 matrix summing ImageNet probabilities into (cat, dog)."""
    matrix = np.zeros((num_classes, len(SPECIES)), np.float32)
    matrix[list(CAT_IDS), SPECIES.index("cat")] = 1.0
    matrix[list(DOG_IDS), SPECIES.index("dog")] = 1.0
    return matrix


def group_species(probabilities: tf.Tensor) -> tf.Tensor:
    """ImageNet probabilities (N, 1000) -> (N, 2) cat and dog probabilities (sums over their classes)."""
    probabilities = tf.convert_to_tensor(probabilities, tf.float32)
    return tf.matmul(probabilities, species_matrix(probabilities.shape[-1]))  # (N, 2)


def _imagenet_top(alpha: float, weights: str | None) -> keras.Model:
    try:
        return keras.applications.MobileNetV2(
            input_shape=(IMAGENET_SIZE, IMAGENET_SIZE, 3), include_top=True, weights=weights, alpha=alpha
        )
    except Exception as exc:  # noqa: BLE001 - Keras raises a bare Exception for a failed fetch; filtered here
        if not is_fetch_failure(exc):
            raise
        home = os.environ.get("KERAS_HOME", "unset, so ~/.keras")
        raise WeightsUnavailableError(
            "detection.classifier: 'imagenet' needs the ImageNet MobileNetV2 weights WITH the classifier top "
            f"({mobilenet_v2_file(IMAGENET_SIZE, alpha, top=True)}, "
            f"detection.imagenet_alpha={alpha}), which are not in the Keras cache and could not be downloaded "
            f"({exc}). Set detection.classifier: pipeline, or place that file under $KERAS_HOME/models "
            f"(KERAS_HOME={home}; it must be writable and set before Keras is imported)."
        ) from exc


def build_imagenet_classifier(alpha: float, weights: str | None = "imagenet") -> WindowClassifier:
    """Keras' MobileNetV2 with top (ImageNet weights, detection.imagenet_alpha) as a cat/dog WindowClassifier."""
    return split_imagenet_top(_imagenet_top(alpha, weights), alpha)


def split_imagenet_top(top: keras.Model, alpha: float) -> WindowClassifier:
    """A MobileNetV2 with top as backbone (to out_relu, any input size) + head (GAP + predictions), same weights."""
    size = top.input_shape[1]
    inputs = keras.Input((size, size, 3), name="image")
    # The ImageNet weights expect [-1, 1]; the pipeline's images are [0, 1].
    model = keras.Model(inputs, top(layers.Rescaling(2.0, offset=-1.0)(inputs)), name="imagenet_classifier")

    # Everything up to the last conv block (out_relu) again, now at any input size (a Keras functional model
    # is tied to its input shape), carrying the top model's weights layer by layer (same layer names).
    trunk = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None, alpha=alpha)
    for layer in trunk.layers:
        if layer.weights:
            layer.set_weights(top.get_layer(layer.name).get_weights())
    image = keras.Input((None, None, 3), name="image")
    backbone = keras.Model(image, trunk(layers.Rescaling(2.0, offset=-1.0)(image)), name="backbone")

    stride = feature_stride(backbone)
    features = keras.Input((size // stride, size // stride, trunk.output_shape[-1]), name="features")
    pooled = layers.GlobalAveragePooling2D()(features)  # (B, cells, cells, C) -> (B, C)
    head = keras.Model(features, top.get_layer("predictions")(pooled), name="head")  # shares the top's weights
    return WindowClassifier(model, backbone, head, size, stride, group_species)
