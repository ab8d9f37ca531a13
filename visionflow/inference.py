"""Model inference over datasets and files: the loops that evaluation stages and the CLI share."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from visionflow.augment.image_ops import central_crop


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


def predict_probabilities(model: keras.Model, images, flip: bool = False, crops: Sequence[float] = (1.0,),
                          scales: Sequence[float] = (1.0,)) -> np.ndarray:
    """Softmax of the model's logits for one batch, (B, K) or (B, S, S, K); with `flip`, the mean of the image's
    and its horizontal mirror's (a per-pixel output is mirrored back first): test-time flip averaging. `crops`
    (a classifier's only): the mean over central squares of these side fractions, each resized back to the
    input size (bilinear): test-time crop averaging; (1.0,) is the image alone. `scales` (a backbone + pooling
    head classifier's only): the mean over every crop resized to these multiples of the input side
    (config.scaled_side), through the backbone and head: multi-scale testing; (1.0,) is the input size alone."""
    if tuple(crops) == (1.0,) and tuple(scales) == (1.0,):
        return _softmax(model.predict_on_batch, images, flip)
    if len(model.output_shape) != 2:
        raise ValueError(f"crops {list(crops)}, scales {list(scales)}: test-time crops and scales average one score "
                         f"per image; model {model.name} predicts {model.output_shape}, so pass (1.0,) for both")
    images = tf.convert_to_tensor(images)
    views = [images if f == 1.0 else central_crop(images, None, fraction=f) for f in crops]
    return np.mean([_softmax(predict, view, flip) for predict in _scaled(model, scales) for view in views], axis=0)


def _scaled(model: keras.Model, scales: Sequence[float]) -> list[Callable]:
    """One logits function per test scale: the model itself at scale 1, else the image resized to the scaled side
    and passed through the model's backbone and its head's layers (the head's Input fixes the feature map size)."""
    from visionflow.config import scaled_side
    from visionflow.models.classifier import split_classifier

    if tuple(scales) == (1.0,):
        return [model.predict_on_batch]
    size = input_size(model)
    backbone, head = split_classifier(model)
    if any(isinstance(layer, keras.layers.Flatten) for layer in head.layers):
        raise ValueError(f"scales {list(scales)}: the head of model {model.name} flattens a feature map of one size "
                         "(classifier.backbone: small_cnn); pass scales (1.0,)")

    def at(side: int) -> Callable:
        def predict(images):
            x = backbone(tf.image.resize(images, (side, side), antialias=side < size), training=False)
            for layer in head.layers[1:]:
                x = layer(x, training=False)
            return np.asarray(x)
        return predict

    sides = [scaled_side(size, scale) for scale in scales]
    return [model.predict_on_batch if side == size else at(side) for side in sides]


def _softmax(predict: Callable, images, flip: bool) -> np.ndarray:
    probs = tf.nn.softmax(predict(images), axis=-1).numpy()
    if flip:
        mirrored = tf.nn.softmax(predict(tf.image.flip_left_right(images)), axis=-1).numpy()
        probs = (probs + (mirrored[:, :, ::-1] if probs.ndim == 4 else mirrored)) / 2  # (B, S, S, K): undo on W
    return probs


def batched(examples: Iterable[tuple[np.ndarray, np.ndarray]], batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
    """(images, targets) batches of `batch_size` from (image, target) pairs, holding one batch in memory: what
    segmentation_confusion and classify_batches take, for examples read from files rather than a tf.data cache."""
    batch: list[tuple[np.ndarray, np.ndarray]] = []
    for example in examples:
        batch.append(example)
        if len(batch) == batch_size:
            yield tuple(np.stack(part) for part in zip(*batch))
            batch.clear()
    if batch:
        yield tuple(np.stack(part) for part in zip(*batch))


def segmentation_confusion(model: keras.Model, batches: Iterable, num_classes: int, keep: int = 0,
                           flip: bool = False):
    """Confusion matrix of argmax predictions over (image, mask) batches, and up to `keep` (image, true, predicted)
    examples; `flip`: test-time flip averaging (predict_probabilities)."""
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


def classify_batches(model: keras.Model, batches: Iterable, keep: int = 0, flip: bool = False,
                     crops: Sequence[float] = (1.0,),
                     scales: Sequence[float] = (1.0,)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the first `keep` images, y_true, probabilities of every output) over (image, label) batches; `flip`,
    `crops` and `scales`: test-time averaging, as in predict_probabilities.

    Which class a row predicts is `visionflow.evaluation.class_predictions` (a background output is no class).
    """
    images, truth, probs = [], [], []
    for x, y in tqdm(batches, desc="classifying", unit="batch"):
        probs.append(predict_probabilities(model, x, flip, crops, scales))
        truth.append(np.asarray(y))
        kept = sum(map(len, images))
        if kept < keep:
            images.append(np.asarray(x)[: keep - kept])
    if not truth:  # no batch at all: nothing was classified
        return np.zeros((0,)), np.zeros((0,), np.int64), np.zeros((0, 0))
    return (np.concatenate(images) if images else np.zeros((0,))), np.concatenate(truth), np.concatenate(probs)
