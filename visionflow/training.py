"""Training loops: cache -> tf.data input pipeline -> compiled Keras model -> fit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import keras
import pandas as pd
import tensorflow as tf

from visionflow import cache
from visionflow.config import Params

AUTOTUNE = tf.data.AUTOTUNE


def seed_everything(seed: int) -> None:
    """Python, numpy and TF seeds from params.yaml, and deterministic TF kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _train_pipeline(ds: tf.data.Dataset, shuffle_buffer: int, seed: int) -> tf.data.Dataset:
    return ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()


def segmentation_inputs(cache_dir: Path, params: Params) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """(train, val, steps_per_epoch): (image, mask[, pixel weights]) batches, training split augmented."""
    from visionflow.augment import augment_dataset
    from visionflow.models.segmentation import pixel_weights

    cfg = params.segmentation
    info = cache.read_info(cache_dir)
    to_pair = lambda ex: (ex["image"], ex["mask"])  # noqa: E731
    train = cache.load_split(cache_dir, "train").map(to_pair)
    train = _train_pipeline(train, cfg.shuffle_buffer, params.seed)
    train = augment_dataset(train, params.augment.segmentation, params.seed, kind="segmentation")
    if cfg.border_weight != 1.0:
        train = train.map(lambda x, y: (x, y, pixel_weights(y, cfg.border_weight)), num_parallel_calls=AUTOTUNE)
    train = train.batch(cfg.batch_size).prefetch(AUTOTUNE)
    val = cache.load_split(cache_dir, "val").map(to_pair).batch(cfg.batch_size).prefetch(AUTOTUNE)
    steps = max(1, math.ceil(info["counts"]["train"] / cfg.batch_size))
    return train, val, steps


def train_segmentation(cache_dir: Path, params: Params, callbacks: Sequence[keras.callbacks.Callback] = ()):
    """Build, compile and fit the U-Net; returns (model, history DataFrame)."""
    from visionflow.models.segmentation import build_unet, compile_segmentation

    seed_everything(params.seed)
    train, val, steps = segmentation_inputs(cache_dir, params)
    model = build_unet(params.segmentation, num_classes=len(cache.MASK_CLASSES))
    compile_segmentation(model, params.segmentation, steps_per_epoch=steps)
    history = model.fit(train, validation_data=val, epochs=params.segmentation.epochs,
                        steps_per_epoch=steps, callbacks=list(callbacks), verbose=2, shuffle=False)
    return model, history_frame(history)


def classifier_inputs(cache_dir: Path, params: Params) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """(train, val, steps_per_epoch) batches of (image, label); augmentation in the dataset when placed there."""
    from visionflow.augment import augment_dataset

    cfg = params.classifier
    info = cache.read_info(cache_dir)
    to_pair = lambda ex: (ex["image"], ex["label"])  # noqa: E731
    train = _train_pipeline(cache.load_split(cache_dir, "train").map(to_pair), cfg.shuffle_buffer, params.seed)
    if params.augment.placement == "dataset":
        train = augment_dataset(train, params.augment.classifier, params.seed, kind="classifier")
    train = train.batch(cfg.batch_size).prefetch(AUTOTUNE)
    val = cache.load_split(cache_dir, "val").map(to_pair).batch(cfg.batch_size).prefetch(AUTOTUNE)
    steps = max(1, math.ceil(info["counts"]["train"] / cfg.batch_size))
    return train, val, steps


def train_classifier(cache_dir: Path, params: Params, callbacks: Sequence[keras.callbacks.Callback] = ()):
    """Build, compile and fit the classifier; returns (model, history DataFrame)."""
    from visionflow.augment import build_model_augmentation
    from visionflow.models.classifier import build_classifier, compile_classifier

    seed_everything(params.seed)
    info = cache.read_info(cache_dir)
    train, val, steps = classifier_inputs(cache_dir, params)
    augmentation = None
    if params.augment.placement == "model":
        augmentation = build_model_augmentation(params.augment.classifier, params.seed)
    model = build_classifier(params.classifier, num_classes=len(info["class_names"]), augmentation=augmentation)
    compile_classifier(model, params.classifier)
    history = model.fit(train, validation_data=val, epochs=params.classifier.epochs,
                        steps_per_epoch=steps, callbacks=list(callbacks), verbose=2, shuffle=False)
    return model, history_frame(history)


def history_frame(history: keras.callbacks.History) -> pd.DataFrame:
    """Keras History -> one row per epoch (epoch, loss, accuracy, val_loss, val_accuracy, ...)."""
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame
