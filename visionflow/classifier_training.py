"""Classifier training: the flowers training split, and detection windows of it when classifier.windows asks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import keras
import numpy as np
import tensorflow as tf

from visionflow import cache, distribute
from visionflow.config import ConfigError, Params
from visionflow.training import (backup_for, batches, fit_phases, global_batch, seed_everything, steps_per_epoch,
                                 training_stream)

if TYPE_CHECKING:
    from visionflow.detection.training_set import TrainingWindows


def window_examples(cache_dir: Path, params: Params) -> TrainingWindows | None:
    """classifier.windows: detection windows cut from canvases of the training split only (never val or test),
    seeded by params.yaml `seed` (visionflow.detection.training_set); None when there are no canvases."""
    from visionflow.detection.training_set import training_windows

    cfg = params.classifier
    if not cfg.windows.canvases:
        return None
    train = list(cache.load_split(cache_dir, "train").as_numpy_iterator())
    names = cache.read_info(cache_dir)["class_names"]
    found = training_windows(np.stack([ex["image"] for ex in train]), np.array([ex["label"] for ex in train]),
                             names, params.detection, cfg.windows, cfg.image_size, params.seed)
    if cfg.windows.has_background and not found.counts["background"] + found.counts["partial"]:
        raise ConfigError("classifier.windows: no canvas had a background window; lower detection.max_objects or "
                          "detection.max_object_scale, or set classifier.windows.background and partial to 0")
    print(f"training windows from {cfg.windows.canvases} canvases of the training split: "
          + ", ".join(f"{n} {kind}" for kind, n in found.counts.items()), flush=True)
    return found


def window_pairs(windows: TrainingWindows) -> tf.data.Dataset:
    """(image float32, label) pairs of the training windows."""
    images = tf.constant(windows.images)  # float16: cast per example, not the whole array at once
    return tf.data.Dataset.from_tensor_slices((images, windows.labels)).map(lambda x, y: (tf.cast(x, tf.float32), y))


def probe_standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, scale) for the probe: the standard deviation, floored at 1e-3 of the mean one. A channel
    that barely varies (a dead ReLU of a random backbone) would otherwise fold into the layer as a huge weight."""
    std = features.std(axis=0)
    return features.mean(axis=0), np.maximum(std, 1e-3 * max(float(std.mean()), 1e-12))


def fit_linear_probe(model: keras.Model, cache_dir: Path, params: Params, windows: TrainingWindows | None,
                     setting: str = "classifier.head_init: linear_probe") -> None:
    """classifier.head_init: linear_probe. Fit the head's last layer as a multinomial logistic regression with L2
    penalty 1/classifier.probe_c (scikit-learn, L-BFGS, to convergence) of the backbone's pooled features of the
    un-augmented training split (and `windows`), then write it into the layer: the first half of LP-FT (Kumar et al.,
    "Fine-Tuning can Distort Pretrained Features", ICLR 2022). The features are standardised per channel for the
    fit; the scaling is folded into the layer's kernel and bias, so the model keeps its architecture.

    classifier.head_refit calls it again after training, on the trained backbone; `setting` names the caller in
    its messages.
    """
    from sklearn.linear_model import LogisticRegression

    from visionflow.models.classifier import split_classifier

    backbone, head = split_classifier(model)
    pooled = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    images = cache.load_split(cache_dir, "train").map(lambda ex: (ex["image"], ex["label"]))
    if windows is not None:
        images = images.concatenate(window_pairs(windows))
    features, labels = [], []
    for x, y in images.batch(params.classifier.batch_size):
        features.append(np.asarray(pooled(x, training=False), np.float64))
        labels.append(y.numpy())
    features, labels = np.concatenate(features), np.concatenate(labels)
    dense = head.layers[-1]
    kernel, bias = dense.get_weights()
    if len(np.unique(labels)) != kernel.shape[1]:
        raise ConfigError(f"{setting}: the training split has {len(np.unique(labels))} of the "
                          f"head's {kernel.shape[1]} classes; every class needs training images")
    mean, scale = probe_standardisation(features)
    standardised = (features - mean) / scale
    probe = LogisticRegression(C=params.classifier.probe_c, max_iter=10_000).fit(standardised, labels)
    # logits = coef . (x - mean) / scale + intercept = (coef / scale) . x + (intercept - coef . mean / scale)
    weights = probe.coef_ / scale  # (classes, channels)
    dense.set_weights([weights.T.astype(kernel.dtype), (probe.intercept_ - weights @ mean).astype(bias.dtype)])
    accuracy = float((probe.predict(standardised) == labels).mean())
    print(f"{setting} fitted on {len(labels)} training examples in {probe.n_iter_[0]} "
          f"L-BFGS iterations (training accuracy {accuracy:.3f})", flush=True)


def interpolate_weights(model: keras.Model, start: list[np.ndarray], alpha: float) -> None:
    """classifier.wise_alpha: WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022). Every
    floating-point weight of `model`, batchnorm statistics included, becomes (1 - alpha) x its `start` value + alpha
    x its current one; integer state (random-layer seeds) keeps its current value."""
    model.set_weights([(1 - alpha) * s + alpha * w if np.issubdtype(w.dtype, np.floating) else w
                       for s, w in zip(start, model.get_weights(), strict=True)])
    print(f"classifier.wise_alpha: weights set to {1 - alpha:g} x the probe start + {alpha:g} x the trained ones",
          flush=True)


def classifier_inputs(cache_dir: Path, params: Params, start_epoch: int = 0, windows: TrainingWindows | None = None,
                      batch_size: int | None = None):
    """(train, val, steps_per_epoch) batches of (image, label) of `batch_size` (default classifier.batch_size);
    augmentation in the dataset when placed there; with classifier.mixup_alpha or cutmix_alpha > 0, mixed training
    batches and one-hot labels (augment.mixup).

    `windows` (window_examples) join the training split, dealt in among its examples.
    """
    from visionflow.augment import augment_dataset
    from visionflow.augment.mixup import CutMix, MixUp

    cfg = params.classifier
    extra = None if windows is None else window_pairs(windows)
    train = training_stream(cache_dir, "label", cfg.shuffle_buffer, params.seed, extra)
    if params.augment.placement == "dataset":
        train = augment_dataset(train, params.augment.classifier, params.seed, kind="classifier")
    mixup = None
    if cfg.mixes_batches:
        classes = len(cache.read_info(cache_dir)["class_names"]) + int(cfg.windows.has_background)  # the outputs
        kind, alpha = (MixUp, cfg.mixup_alpha) if cfg.mixup_alpha > 0 else (CutMix, cfg.cutmix_alpha)
        mixup = kind(alpha, classes, params.seed)
    return batches(cache_dir, train, "label", batch_size or cfg.batch_size, start_epoch,
                   0 if extra is None else len(windows.labels), params.train.distribution, mixup)


def train_classifier(cache_dir: Path, params: Params, callbacks: Sequence[keras.callbacks.Callback] = (),
                     backup_dir: Path | None = None):
    """Build, compile and fit the classifier; returns (model, history DataFrame).

    With `backup_dir`, every epoch is checkpointed there and a killed run resumes from its last epoch. With
    background windows (classifier.windows) the model has one output more, "background" (models.classifier).
    """
    from visionflow.augment import build_model_augmentation
    from visionflow.models.classifier import beside_pretrained, build_backbone, build_classifier, compile_classifier
    from visionflow.models.sam import SharpnessAware

    strategy = distribute.make_strategy(params.train)
    seed_everything(params.seed, deterministic=not params.train.jit_compile)
    backup = backup_for(backup_dir, params.train)
    cfg = params.classifier
    batch = global_batch(cfg.batch_size, strategy)
    with distribute.precision(params.train), strategy.scope():
        augmentation = None
        if params.augment.placement == "model":
            augmentation = build_model_augmentation(params.augment.classifier, params.seed)
        classes = cache.read_info(cache_dir)["class_names"]
        windows = window_examples(cache_dir, params)
        model = distribute.synchronize_batchnorm(
            build_classifier(cfg, num_classes=len(classes), augmentation=augmentation,
                             background=cfg.windows.has_background), params.train)
        start = None  # the probe start's weights, which classifier.wise_alpha interpolates from
        if cfg.head_init == "linear_probe" and (cfg.wise_alpha < 1 or not (backup and backup.start_epoch)):
            fit_linear_probe(model, cache_dir, params, windows)  # a resumed run reloads it, unless WiSE-FT needs it
            if cfg.wise_alpha < 1:
                start = model.get_weights()
        steps = steps_per_epoch(cache_dir, batch, 0 if windows is None else len(windows.labels))
        # classifier.sam_rho: the same graph and weights, trained with SAM's step; the classifier is what is saved.
        trainer = model
        if cfg.sam_rho:
            trainer = SharpnessAware(model.inputs, model.outputs, rho=cfg.sam_rho, name=model.name)
        history = fit_phases(trainer, lambda start: classifier_inputs(cache_dir, params, start, windows, batch), cfg,
                             lambda fine_tuning: compile_classifier(trainer, cfg, fine_tuning, steps,
                                                                    jit_compile=params.train.jit_compile),
                             lambda: model.get_layer("backbone").get_layer("mobilenet_v2"), callbacks, backup)
        if start is not None:
            interpolate_weights(model, start, cfg.wise_alpha)
        if cfg.head_refit_pretrained:  # the encoder as loaded, beside the trained one (models.classifier)
            model = beside_pretrained(model, build_backbone(cfg), cfg)
        if cfg.head_refit:  # after the last epoch, so a resumed run refits as an uninterrupted one
            fit_linear_probe(model, cache_dir, params, windows, "classifier.head_refit")
    return model, history
