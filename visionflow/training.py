"""Training loops: cache -> tf.data input pipeline -> compiled Keras model -> fit; the segmentation U-Net's, and
what the classifier's (visionflow.classifier_training) shares with it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from visionflow import cache, distribute
from visionflow.augment.mixup import MixUp
from visionflow.checkpoints import Backup
from visionflow.config import Params, TrainConfig
from visionflow.models.weights import unfreeze_from_block

AUTOTUNE = tf.data.AUTOTUNE


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Python, numpy and TF seeds from params.yaml, and deterministic TF kernels unless `deterministic` is False
    (Keras will not XLA-compile with TF's op determinism on, so train.jit_compile turns it off)."""
    from tensorflow.python.framework import config as tf_config  # Keras reads the switch from here too

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
        print("train.jit_compile: XLA kernels are not bit-for-bit deterministic; reruns agree within the "
              "README's tolerance", flush=True)


def training_stream(cache_dir: Path, target: str, shuffle_buffer: int, seed: int,
                    extra: tf.data.Dataset | None = None) -> tf.data.Dataset:
    """Endless shuffled (image, target) pairs of the training split, reshuffled every pass.

    `extra` pairs (a finite dataset) are dealt in among the split's at seeded random places before the shuffle,
    so a shuffle buffer smaller than both together still mixes them.
    """
    pairs = cache.load_split(cache_dir, "train").map(lambda ex: (ex["image"], ex[target]))
    if extra is not None:
        sizes = [int(cache.read_info(cache_dir)["counts"]["train"]), int(extra.cardinality())]
        order = np.random.default_rng(seed).permutation(np.repeat([0, 1], sizes))  # which source each draw takes
        pairs = tf.data.Dataset.choose_from_datasets([pairs, extra], tf.data.Dataset.from_tensor_slices(order))
    return pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()


def steps_per_epoch(cache_dir: Path, batch_size: int, extra: int = 0) -> int:
    """Batches per epoch: the training split (and `extra` examples) once over."""
    return max(1, math.ceil((cache.read_info(cache_dir)["counts"]["train"] + extra) / batch_size))


def batches(cache_dir: Path, train: tf.data.Dataset, target: str, batch_size: int, start_epoch: int = 0,
            extra: int = 0, distribution: str = "none", mixup: MixUp | None = None):
    """(training batches, un-augmented validation batches, steps per epoch); `batch_size` is the global batch.

    A run resumed at `start_epoch` skips the examples the finished epochs drew from the endless stream, so
    it sees exactly the batches (order and augmentations) an uninterrupted run sees from there on. `mixup`
    mixes each global batch (before multi_worker splits it) and makes every target one-hot.
    """
    val = cache.load_split(cache_dir, "val").map(lambda ex: (ex["image"], ex[target]))
    steps = steps_per_epoch(cache_dir, batch_size, extra)
    train = train.skip(start_epoch * steps * batch_size) if start_epoch else train
    train, val = train.batch(batch_size), val.batch(batch_size)
    if mixup is not None:
        train, val = mixup.training(train, first_batch=start_epoch * steps), mixup.validation(val)
    train, val = train.prefetch(AUTOTUNE), val.prefetch(AUTOTUNE)
    if distribution == "multi_worker":
        train, val = distribute.shard_by_data(train), distribute.shard_by_data(val)
    return train, val, steps


def global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch of params.yaml times the replicas that train in sync."""
    return batch_size * strategy.num_replicas_in_sync


def backup_for(backup_dir: Path | None, train: TrainConfig) -> Backup | None:
    """The epoch checkpoints in `backup_dir` (None: none); none under multi_worker, whose workers must start alike."""
    if train.distribution == "multi_worker":
        print("train.distribution: multi_worker: no resume checkpoints; a killed run starts again from epoch 1",
              flush=True)
        return None
    return Backup(backup_dir) if backup_dir else None


def fit_phases(model: keras.Model, make_inputs, cfg, compile_phase, encoder, callbacks, backup: Backup | None):
    """Fit `cfg.epochs` epochs, in two phases when `cfg.fine_tune.epochs` > 0; returns the per-epoch history.

    `make_inputs(start_epoch)` gives (train, val, steps) from that epoch of the stream on; `compile_phase(fine_tuning)`
    compiles the model for a phase; `encoder()` is the sub-model whose top blocks phase two unfreezes. A resumed run
    goes on in the phase its checkpoint was written in, so it ends with the model of an uninterrupted run.
    """
    start = backup.start_epoch if backup else 0
    split = cfg.epochs - cfg.fine_tune.epochs  # 0: phase two only (a classifier head fitted before training)
    histories = []
    if split and start <= split:  # phase one; when start == split, only the reload of its last checkpoint
        compile_phase(False)
        if backup:
            backup.delete_checkpoint = split == cfg.epochs  # phase two goes on from phase one's checkpoints
        histories.append(_fit_phase(model, make_inputs(start), split, callbacks, backup))
    if split < cfg.epochs:
        unfreeze_from_block(encoder(), cfg.fine_tune.from_block)
        compile_phase(True)
        model._initial_epoch = None  # noqa: SLF001 - phase one's resume left it set; phase two starts at `split`
        if backup:
            backup.delete_checkpoint = True
            if start <= split:
                backup.forget()  # the model in memory is where phase two starts
        histories.append(_fit_phase(model, make_inputs(max(start, split)), cfg.epochs, callbacks, backup, split))
    if backup:
        return backup.history()
    firsts = (1, split + 1) if split else (1,)  # the first epoch of each phase that ran
    frames = [history_frame(h, first_epoch=e) for h, e in zip(histories, firsts)]
    return pd.concat(frames, ignore_index=True)


def _fit_phase(model, inputs, epochs: int, callbacks, backup: Backup | None, initial_epoch: int = 0):
    train, val, steps = inputs
    callbacks = [*callbacks, *([backup] if backup else [])]
    # The stream is shuffled and endless: Keras must neither reshuffle nor stop it.
    return model.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                     callbacks=callbacks, verbose=2, shuffle=False)


def segmentation_inputs(cache_dir: Path, params: Params, start_epoch: int = 0, batch_size: int | None = None):
    """(train, val, steps_per_epoch): (image, mask[, pixel weights]) batches of `batch_size` (default
    segmentation.batch_size), training split augmented."""
    from visionflow.augment import augment_dataset
    from visionflow.models.segmentation import pixel_weights

    cfg = params.segmentation
    train = training_stream(cache_dir, "mask", cfg.shuffle_buffer, params.seed)
    # After repeat(): every epoch draws new augmentation seeds.
    train = augment_dataset(train, params.augment.segmentation, params.seed, kind="segmentation")
    if cfg.border_weight != 1.0:
        train = train.map(lambda x, y: (x, y, pixel_weights(y, cfg.border_weight)), num_parallel_calls=AUTOTUNE)
    return batches(cache_dir, train, "mask", batch_size or cfg.batch_size, start_epoch,
                   distribution=params.train.distribution)


def train_segmentation(cache_dir: Path, params: Params, callbacks: Sequence[keras.callbacks.Callback] = (),
                       backup_dir: Path | None = None):
    """Build, compile and fit the U-Net; returns (model, history DataFrame).

    With `backup_dir`, every epoch is checkpointed there and a killed run resumes from its last epoch.
    `params.train` picks the strategy, the precision and XLA.
    """
    from visionflow.models.segmentation import build_unet, compile_segmentation

    strategy = distribute.make_strategy(params.train)
    seed_everything(params.seed, deterministic=not params.train.jit_compile)
    cfg = params.segmentation
    backup = backup_for(backup_dir, params.train)
    batch = global_batch(cfg.batch_size, strategy)
    steps = steps_per_epoch(cache_dir, batch)
    with distribute.precision(params.train), strategy.scope():
        model = distribute.synchronize_batchnorm(build_unet(cfg, num_classes=len(cache.MASK_CLASSES)), params.train)
        history = fit_phases(model, lambda start: segmentation_inputs(cache_dir, params, start, batch), cfg,
                             lambda fine_tuning: compile_segmentation(model, cfg, steps, fine_tuning,
                                                                      jit_compile=params.train.jit_compile),
                             lambda: model.get_layer("encoder"), callbacks, backup)
    return model, history


def history_frame(history: keras.callbacks.History, first_epoch: int = 1) -> pd.DataFrame:
    """Keras History -> one row per epoch (epoch, loss, accuracy, val_loss, val_accuracy, ...)."""
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(first_epoch, first_epoch + len(frame)))
    return frame


def save_outputs(model: keras.Model, history: pd.DataFrame, model_path: Path, history_path: Path) -> Path:
    """What a training stage writes, each file whole or not at all: the model (byte-reproducible), the per-epoch
    CSV for `dvc plots`, and its curves beside it as PNG (returned)."""
    from visionflow.files import write_text
    from visionflow.models.saving import save_model
    from visionflow.viz import save_history

    save_model(model, model_path)
    write_text(history.to_csv(index=False), history_path)
    return save_history(history, Path(history_path).with_suffix(".png"))
