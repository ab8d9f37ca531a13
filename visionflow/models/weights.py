"""ImageNet MobileNetV2 through Keras' own cache, with a clear error when the weights cannot be had."""

from __future__ import annotations

import os

import keras

from visionflow.config import EncoderConfig
from visionflow.keras_cache import mobilenet_v2_file

_FETCH_FAILURE = "URL fetch failure on"  # how keras.utils.get_file words a failed HTTP/URL fetch


class WeightsUnavailableError(ValueError):
    """ImageNet weights were asked for but are neither in the Keras cache nor downloadable."""


def _weights_file(input_shape: tuple[int | None, int | None, int], alpha: float) -> str:
    rows, cols = input_shape[0], input_shape[1]
    return mobilenet_v2_file(rows if rows == cols else 0, alpha)


def is_fetch_failure(exc: Exception) -> bool:
    # keras.utils.get_file turns urllib's HTTPError/URLError into a bare `Exception` with this prefix;
    # anything else (a corrupt file, a bug) must surface as itself.
    return type(exc) is Exception and str(exc).startswith(_FETCH_FAILURE)


def mobilenet_v2(
    input_shape: tuple[int | None, int | None, int], encoder: EncoderConfig, param: str, name: str | None = None
) -> keras.Model:
    """MobileNetV2 without top as `encoder` says; `param` (e.g. segmentation.encoder) names it in errors."""
    try:
        return keras.applications.MobileNetV2(
            input_shape=input_shape, include_top=False, weights=encoder.weights, alpha=encoder.alpha, name=name
        )
    except Exception as exc:  # noqa: BLE001 - Keras raises a bare Exception for a failed fetch; filtered below
        if not is_fetch_failure(exc):
            raise
        home = os.environ.get("KERAS_HOME", "unset, so ~/.keras")
        raise WeightsUnavailableError(
            f"{param}.weights: 'imagenet' asks for ImageNet MobileNetV2 weights "
            f"({_weights_file(input_shape, encoder.alpha)}), which are not in the Keras cache and could not "
            f"be downloaded ({exc}). Set {param}.weights to null to train from scratch, or put that file "
            f"under $KERAS_HOME/models (KERAS_HOME={home}; Keras reads KERAS_HOME when it is first imported "
            "and uses it only if the directory is writable)."
        ) from exc


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> None:
    """Set the moving-average momentum of every BatchNormalization layer, nested models included."""
    for layer in model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001 - Keras' own walker
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def unfreeze_from_block(encoder: keras.Model, block: int) -> int:
    """Phase two of fine-tuning: MobileNetV2 `block_<block>_*` and every layer after it train, BatchNormalization
    layers excepted (frozen, they run in inference mode and keep their ImageNet statistics); returns how many
    layers now train. Recompile the model afterwards: Keras collects trainable weights when it compiles."""
    names = [layer.name for layer in encoder.layers]
    first = next((i for i, name in enumerate(names) if name.startswith(f"block_{block}_")), None)
    if first is None:
        raise ValueError(f"fine_tune.from_block: encoder {encoder.name!r} has no layer block_{block}_*")
    encoder.trainable = True
    for i, layer in enumerate(encoder.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(layer.trainable for layer in encoder.layers)
