"""Training loops: cache -> tf.data input pipeline -> compiled Keras model -> fit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import keras
import pandas as pd
import tensorflow as tf

from visionflow import cache
from visionflow.checkpoints import Backup
from visionflow.config import Params

AUTOTUNE = tf.data.AUTOTUNE


def seed_everything(seed: int) -> None:
    """Python, numpy and TF seeds from params.yaml, and deterministic TF kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _training_stream(cache_dir: Path, target: str, shuffle_buffer: int, seed: int) -> tf.data.Dataset:
    """Endless shuffled (image, target) pairs of the training split, reshuffled every pass."""
    pairs = cache.load_split(cache_dir, "train").map(lambda ex: (ex["image"], ex[target]))
    return pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()


def _batches(cache_dir: Path, train: tf.data.Dataset, target: str, batch_size: int, start_epoch: int = 0):
    """(training batches, un-augmented validation batches, steps per epoch).

    A run resumed at `start_epoch` skips the examples the finished epochs drew from the endless stream, so
    it sees exactly the batches (order and augmentations) an uninterrupted run sees from there on.
    """
    val = cache.load_split(cache_dir, "val").map(lambda ex: (ex["image"], ex[target]))
    steps = max(1, math.ceil(cache.read_info(cache_dir)["counts"]["train"] / batch_size))
    train = train.skip(start_epoch * steps * batch_size) if start_epoch else train
    return train.batch(batch_size).prefetch(AUTOTUNE), val.batch(batch_size).prefetch(AUTOTUNE), steps


def _fit(model: keras.Model, inputs, epochs: int, callbacks, backup: Backup | None) -> pd.DataFrame:
    train, val, steps = inputs
    callbacks = [*callbacks, *([backup] if backup else [])]
    # The stream is shuffled and endless: Keras must neither reshuffle nor stop it.
    history = model.fit(train, validation_data=val, epochs=epochs, steps_per_epoch=steps,
                        callbacks=callbacks, verbose=2, shuffle=False)
    return backup.history() if backup else history_frame(history)


def segmentation_inputs(cache_dir: Path, params: Params, start_epoch: int = 0):
    """(train, val, steps_per_epoch): (image, mask[, pixel weights]) batches, training split augmented."""
    from visionflow.augment import augment_dataset
    from visionflow.models.segmentation import pixel_weights

    cfg = params.segmentation
    train = _training_stream(cache_dir, "mask", cfg.shuffle_buffer, params.seed)
    # After repeat(): every epoch draws new augmentation seeds.
    train = augment_dataset(train, params.augment.segmentation, params.seed, kind="segmentation")
    if cfg.border_weight != 1.0:
        train = train.map(lambda x, y: (x, y, pixel_weights(y, cfg.border_weight)), num_parallel_calls=AUTOTUNE)
    return _batches(cache_dir, train, "mask", cfg.batch_size, start_epoch)


def train_segmentation(cache_dir: Path, params: Params, callbacks: Sequence[keras.callbacks.Callback] = (),
                       backup_dir: Path | None = None):
    """Build, compile and fit the U-Net; returns (model, history DataFrame).

    With `backup_dir`, every epoch is checkpointed there and a killed run resumes from its last epoch.
    """
    from visionflow.models.segmentation import build_unet, compile_segmentation

    seed_everything(params.seed)
    backup = Backup(backup_dir) if backup_dir else None
    inputs = segmentation_inputs(cache_dir, params, backup.start_epoch if backup else 0)
    model = build_unet(params.segmentation, num_classes=len(cache.MASK_CLASSES))
    compile_segmentation(model, params.segmentation, steps_per_epoch=inputs[2])
    return model, _fit(model, inputs, params.segmentation.epochs, callbacks, backup)


def classifier_inputs(cache_dir: Path, params: Params, start_epoch: int = 0):
    """(train, val, steps_per_epoch) batches of (image, label); augmentation in the dataset when placed there."""
    from visionflow.augment import augment_dataset

    cfg = params.classifier
    train = _training_stream(cache_dir, "label", cfg.shuffle_buffer, params.seed)
    if params.augment.placement == "dataset":
        train = augment_dataset(train, params.augment.classifier, params.seed, kind="classifier")
    return _batches(cache_dir, train, "label", cfg.batch_size, start_epoch)


def train_classifier(cache_dir: Path, params: Params, callbacks: Sequence[keras.callbacks.Callback] = (),
                     backup_dir: Path | None = None):
    """Build, compile and fit the classifier; returns (model, history DataFrame); `backup_dir` as above."""
    from visionflow.augment import build_model_augmentation
    from visionflow.models.classifier import build_classifier, compile_classifier

    seed_everything(params.seed)
    backup = Backup(backup_dir) if backup_dir else None
    augmentation = None
    if params.augment.placement == "model":
        augmentation = build_model_augmentation(params.augment.classifier, params.seed)
    classes = cache.read_info(cache_dir)["class_names"]
    model = build_classifier(params.classifier, num_classes=len(classes), augmentation=augmentation)
    compile_classifier(model, params.classifier)
    inputs = classifier_inputs(cache_dir, params, backup.start_epoch if backup else 0)
    return model, _fit(model, inputs, params.classifier.epochs, callbacks, backup)


def history_frame(history: keras.callbacks.History) -> pd.DataFrame:
    """Keras History -> one row per epoch (epoch, loss, accuracy, val_loss, val_accuracy, ...)."""
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame
