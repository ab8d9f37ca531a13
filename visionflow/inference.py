"""Model inference over datasets and files: the loops that evaluation stages and the CLI share."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from visionflow.cache import resize_image


def load_model(path: Path) -> keras.Model:
    """Load a .keras model in safe mode, with a clear error when the file is missing or not a model."""
    import visionflow.augment  # noqa: F401  registers the custom augmentation layers for deserialisation

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model: {path} not found (train it first with `dvc repro`)")
    try:
        # Not compiled: inference needs no loss or optimizer (so a model trained with a visionflow loss loads too).
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # a damaged file raises KeyError, TypeError, zipfile.BadZipFile... as well
        raise ValueError(f"--model: {path} is not a loadable Keras model ({type(exc).__name__}: {exc}); pass a "
                         "model saved by the pipeline, e.g. models/classifier.keras") from None


def input_size(model: keras.Model) -> int:
    """The square input side a model was built for."""
    shape = model.input_shape
    if shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"model {model.name}: expected a fixed square input, got {shape}")
    return int(shape[1])


def predict_probabilities(model: keras.Model, images, flip: bool = False) -> np.ndarray:
    """Softmax of the model's logits for one batch, (B, K) or (B, S, S, K); with `flip`, the mean of the image's
    and its horizontal mirror's (a per-pixel output is mirrored back first): test-time flip averaging."""
    probs = tf.nn.softmax(model.predict_on_batch(images), axis=-1).numpy()
    if flip:
        mirrored = tf.nn.softmax(model.predict_on_batch(tf.image.flip_left_right(images)), axis=-1).numpy()
        probs = (probs + (mirrored[:, :, ::-1] if probs.ndim == 4 else mirrored)) / 2  # (B, S, S, K): undo on W
    return probs


def segment_batches(model: keras.Model, batches: Iterable, num_classes: int, keep: int = 0, flip: bool = False):
    """Confusion matrix of argmax predictions over (image, mask) batches, and up to `keep` examples;
    `flip`: test-time flip averaging (predict_probabilities)."""
    from visionflow.evaluation import ConfusionAccumulator

    acc = ConfusionAccumulator(num_classes)
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for images, masks in tqdm(batches, desc="segmenting", unit="batch"):
        pred = np.argmax(predict_probabilities(model, images, flip), axis=-1)  # (B, S, S)
        true = np.asarray(masks)[..., 0]
        acc.update(true, pred)
        for i in range(min(len(pred), keep - len(kept))):
            kept.append((np.asarray(images[i]), true[i], pred[i]))
    return acc.matrix, kept


def classify_batches(model: keras.Model, batches: Iterable,
                     flip: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, y_true, probabilities of every output) over (image, label) batches; `flip` as in segment_batches.

    Which class a row predicts is `visionflow.evaluation.class_predictions` (a background output is no class).
    """
    images, truth, probs = [], [], []
    for x, y in tqdm(batches, desc="classifying", unit="batch"):
        probs.append(predict_probabilities(model, x, flip))
        truth.append(np.asarray(y))
        images.append(np.asarray(x))
    return np.concatenate(images), np.concatenate(truth), np.concatenate(probs)


def load_image(path: Path, size: int) -> np.ndarray:
    """Any image file -> float32 (size, size, 3) in [0, 1], robust to the release quirks."""
    from visionflow.data.images import read_rgb

    rgb, _ = read_rgb(Path(path))
    return resize_image(rgb, size).numpy()
