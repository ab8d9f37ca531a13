"""Flowers classifier built as backbone + head, so detection can run the backbone once per image."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras
from keras import layers

from visionflow.config import ClassifierConfig
from visionflow.models.losses import SmoothedSparseCrossEntropy
from visionflow.models.optimizers import LayerDecayAdam
from visionflow.models.weights import mobilenet_v2, set_batchnorm_momentum

_PROBE_SIDE = 1024  # symbolic input side used to read a backbone's stride (no computation runs)
BACKGROUND = "background"  # the extra last output of a classifier that learnt classifier.windows
# The head's output layer, named so that the saved model itself says whether its last output is background.
LOGITS, LOGITS_WITH_BACKGROUND = "logits", "logits_with_background"


def _small_cnn_backbone(cfg: ClassifierConfig) -> keras.Model:
    inputs = keras.Input((None, None, 3), name="image")
    # Inputs are already in [0, 1], the range the reference's Rescaling(1/255) produced: identity, kept
    # so that every backbone owns its input scaling.
    x = layers.Rescaling(1.0, name="rescaling")(inputs)
    for filters in cfg.filters:
        # Conv block: (B, H, W, .) -> (B, H/2, W/2, filters)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    return keras.Model(inputs, x, name="backbone")


def _mobilenet_backbone(cfg: ClassifierConfig) -> keras.Model:
    size = cfg.image_size
    param = "classifier.encoder"
    if cfg.encoder.weights is None:
        base = mobilenet_v2((None, None, 3), cfg.encoder, param, name="mobilenet_v2")
    else:
        # Keras picks the ImageNet file by input size (96..224); load the one matching S, then move the
        # weights into a size-agnostic copy (same layers, so the same weight list).
        fixed = mobilenet_v2((size, size, 3), cfg.encoder, param)
        base = mobilenet_v2((None, None, 3), dataclasses.replace(cfg.encoder, weights=None), param, "mobilenet_v2")
        base.set_weights(fixed.get_weights())
    base.trainable = cfg.encoder.trainable
    set_batchnorm_momentum(base, cfg.batchnorm_momentum)
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)  # MobileNetV2 expects [-1, 1]
    x = base(x)  # (B, H/32, W/32, C)
    return keras.Model(inputs, x, name="backbone")


def build_backbone(cfg: ClassifierConfig) -> keras.Model:
    """Fully convolutional feature extractor named "backbone": (B, H, W, 3) in [0, 1] -> (B, H/s, W/s, C)."""
    if cfg.backbone == "small_cnn":
        return _small_cnn_backbone(cfg)
    return _mobilenet_backbone(cfg)


def build_head(cfg: ClassifierConfig, feature_shape: tuple[int, int, int], num_classes: int,
               background: bool = False) -> keras.Model:
    """Head named "head": the backbone's feature map of one SxS image -> num_classes logits (+ background's)."""
    features = keras.Input(feature_shape, name="features")
    if cfg.backbone == "small_cnn":
        x = layers.Flatten()(features)  # (B, h*w*C)
        x = layers.Dense(cfg.dense_units, activation="relu")(x)
    else:
        x = layers.GlobalAveragePooling2D()(features)  # (B, C)
    x = layers.Dropout(cfg.dropout)(x)
    logits = layers.Dense(num_classes + int(background), name=LOGITS_WITH_BACKGROUND if background else LOGITS,
                          dtype="float32")(x)  # float32 logits under mixed precision
    return keras.Model(features, logits, name="head")


def build_classifier(
    cfg: ClassifierConfig, num_classes: int, augmentation: keras.layers.Layer | None = None, background: bool = False
) -> keras.Model:
    """Classifier named "classifier": (S, S, 3) in [0, 1] -> [augmentation] -> backbone -> head -> logits.

    With `background`, one logit more than `num_classes`: the last one is the class "background" (no object).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes: got {num_classes}; a classifier needs at least 2 classes")
    size = cfg.image_size
    if cfg.backbone == "small_cnn" and size < 2 ** len(cfg.filters):
        raise ValueError(
            f"classifier.image_size: {size} is too small for {len(cfg.filters)} pooling steps "
            f"(classifier.filters={list(cfg.filters)}); raise it to at least {2 ** len(cfg.filters)} "
            "or use fewer filters"
        )
    backbone = build_backbone(cfg)
    feature_shape = tuple(backbone.compute_output_shape((None, size, size, 3))[1:])  # (S/s, S/s, C)
    head = build_head(cfg, feature_shape, num_classes, background)
    inputs = keras.Input((size, size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    logits = head(backbone(x))  # (B, S/s, S/s, C) -> (B, num_classes)
    return keras.Model(inputs, logits, name="classifier")


def beside_pretrained(model: keras.Model, pretrained: keras.Model, cfg: ClassifierConfig) -> keras.Model:
    """classifier.head_refit_pretrained: `model` (a build_classifier classifier, trained) with a new backbone that
    runs its trained one and `pretrained` (build_backbone's encoder as loaded, before any training), frozen, side by
    side: their feature maps concatenated on channels, (B, H/32, W/32, 2C). The new head is build_head's for that
    map, its Dense untrained (head_refit fits it); the rest of the graph (the augmentation) is kept, and the
    result still splits into "backbone" and "head" (split_classifier), so evaluation and detection use it as is."""
    trained, head = split_classifier(model)
    trained.name, pretrained.name = "trained_backbone", "pretrained_backbone"
    pretrained.trainable = False
    image = keras.Input((None, None, 3), name="image")
    both = layers.Concatenate(name="trained_and_pretrained")([trained(image), pretrained(image)])
    backbone = keras.Model(image, both, name="backbone")
    size = cfg.image_size
    background = has_background(model)
    new_head = build_head(cfg, tuple(backbone.compute_output_shape((None, size, size, 3))[1:]),
                          head.output_shape[-1] - int(background), background)
    x = inputs = keras.Input(model.input_shape[1:], name="image")
    for layer in model.layers[1:]:  # input -> [augmentation] -> backbone -> head (build_classifier's chain)
        x = (backbone if layer is trained else new_head if layer is head else layer)(x)
    return keras.Model(inputs, x, name=model.name)


def layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The model's top-level layers by name (a missing one is `None` through .get, where get_layer raises)."""
    return {layer.name: layer for layer in model.layers}


def split_classifier(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The (backbone, head) sub-models of a classifier, sharing its weights."""
    names = layers_by_name(model)
    parts = tuple(names.get(name) for name in ("backbone", "head"))
    if not all(isinstance(part, keras.Model) for part in parts):
        raise ValueError(
            f"model {model.name!r} has no sub-models named 'backbone' and 'head' (it has "
            f"{sorted(names)}); detection.classifier needs a classifier built by "
            "visionflow.models.build_classifier (the classifier stage's output)"
        )
    return parts  # type: ignore[return-value]


def has_background(model: keras.Model) -> bool:
    """Whether the classifier's last output is the class "background" (built with `background=True`)."""
    head = layers_by_name(model).get("head")
    return isinstance(head, keras.Model) and any(layer.name == LOGITS_WITH_BACKGROUND for layer in head.layers)


def output_names(model: keras.Model, class_names: Sequence[str]) -> list[str]:
    """The name of each of the classifier's outputs: `class_names`, then "background" when it has that output."""
    names = [*class_names, *([BACKGROUND] if has_background(model) else [])]
    outputs = model.output_shape[-1]
    if outputs != len(names):
        raise ValueError(
            f"model {model.name!r} has {outputs} outputs for {len(names)} classes ({', '.join(names)}); pass the "
            "classifier trained on this dataset (the classifier stage's output)"
        )
    return names


def feature_stride(backbone: keras.Model) -> int:
    """How many input pixels one feature-map cell of `backbone` spans (8 for small_cnn 16/32/64, 32 for MobileNetV2)."""
    out = backbone.compute_output_shape((None, _PROBE_SIDE, _PROBE_SIDE, 3))
    if out[1] is None or out[1] < 1 or _PROBE_SIDE % out[1]:
        raise ValueError(
            f"backbone {backbone.name!r}: no fixed stride ({_PROBE_SIDE}px input gives a {out[1]}-cell map)"
        )
    return _PROBE_SIDE // out[1]


def compile_classifier(model: keras.Model, cfg: ClassifierConfig, fine_tuning: bool = False,
                       steps_per_epoch: int | None = None, jit_compile: bool = False) -> None:
    """Adam, or SGD with Nesterov momentum (classifier.optimizer), at a constant or cosine-decayed rate (averaging
    the weights when classifier.weight_ema > 0; lower rates down the backbone when classifier.layer_decay < 1) +
    sparse cross-entropy on logits (smoothed when classifier.label_smoothing > 0; on one-hot targets when MixUp or
    CutMix mixes the batches) + accuracy;
    `fine_tuning`: phase two's learning rate (classifier.fine_tune). A cosine schedule spans the phase and needs
    `steps_per_epoch`; `jit_compile`: XLA."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if cfg.mixes_batches:  # one-hot, mixed targets (classifier_training.classifier_inputs)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing)
    elif cfg.label_smoothing > 0:
        loss = SmoothedSparseCrossEntropy(cfg.label_smoothing, num_classes=model.output_shape[-1])
    rate = cfg.fine_tune.learning_rate if fine_tuning else cfg.learning_rate
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = rate
    if cfg.lr_schedule == "cosine":
        if not steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch: got {steps_per_epoch}; classifier.lr_schedule: cosine needs the "
                             "batches per epoch (at least one) to decay over")
        epochs = cfg.fine_tune.epochs if fine_tuning else cfg.epochs - cfg.fine_tune.epochs
        # Decays to 0 by the last step of the phase's last epoch (Keras' default floor, alpha=0).
        learning_rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=epochs * steps_per_epoch)
    # classifier.weight_ema: Keras keeps the moving average beside each trainable weight and writes it into the
    # weights when fit ends (Optimizer.finalize_variable_values); each phase's fit averages its own steps.
    ema = {"use_ema": True, "ema_momentum": cfg.weight_ema} if cfg.weight_ema else {}
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=True, **ema)
    elif cfg.layer_decay < 1:  # classifier.layer_decay: lower rates down the backbone
        optimizer = LayerDecayAdam(cfg.layer_decay, learning_rate=learning_rate, **ema)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, **ema)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit_compile)
