"""U-Net for pet trimaps: the TensorFlow segmentation tutorial's MobileNetV2 encoder + pix2pix decoder."""

from __future__ import annotations

import tensorflow as tf
import keras
from keras import layers

from visionflow.config import SegmentationConfig
from visionflow.classes import BORDER
from visionflow.models.losses import CrossEntropyDice
from visionflow.models.weights import mobilenet_v2, set_batchnorm_momentum

# Encoder activations the decoder concatenates, at strides 2, 4, 8, 16 and 32 (the reference's choice).
SKIP_LAYERS = (
    "block_1_expand_relu",  # S/2
    "block_3_expand_relu",  # S/4
    "block_6_expand_relu",  # S/8
    "block_13_expand_relu",  # S/16
    "block_16_project",  # S/32
)


def upsample(
    filters: int, size: int, init_std: float, dropout: float = 0.0, name: str | None = None
) -> keras.Sequential:
    """pix2pix upsample block: stride-2 Conv2DTranspose (N(0, init_std) weights) -> BatchNorm -> (Dropout) -> ReLU."""
    block = [
        layers.Conv2DTranspose(
            filters,
            size,
            strides=2,
            padding="same",
            kernel_initializer=keras.initializers.RandomNormal(0.0, init_std),
            use_bias=False,
        ),
        layers.BatchNormalization(),
    ]
    if dropout > 0:
        block.append(layers.Dropout(dropout))
    block.append(layers.ReLU())
    return keras.Sequential(block, name=name)


def build_encoder(cfg: SegmentationConfig) -> keras.Model:
    """MobileNetV2 as a sub-model named "encoder" whose outputs are the five skips, S/2 .. S/32."""
    size = cfg.image_size
    base = mobilenet_v2((size, size, 3), cfg.encoder, param="segmentation.encoder")
    outputs = [base.get_layer(name).output for name in SKIP_LAYERS]
    encoder = keras.Model(base.input, outputs, name="encoder")
    encoder.trainable = cfg.encoder.trainable
    return encoder


def build_unet(cfg: SegmentationConfig, num_classes: int = 3) -> keras.Model:
    """U-Net mapping (S, S, 3) images in [0, 1] to (S, S, num_classes) logits."""
    if num_classes < 2:
        raise ValueError(f"num_classes: got {num_classes}; a segmentation model needs at least 2 classes")
    size = cfg.image_size
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)  # MobileNetV2 expects [-1, 1]
    skips = build_encoder(cfg)(x)  # (B, S/2 .. S/32, ., C_i)
    x = skips[-1]  # (B, S/32, S/32, C)
    # pix2pix decoder (segmentation.decoder_*): one upsampling block per skip from S/32 back to S/2.
    for i, (filters, skip) in enumerate(zip(cfg.decoder_filters, reversed(skips[:-1]), strict=True)):
        # Double the resolution, then join the encoder's features at that resolution.
        x = upsample(filters, cfg.decoder_kernel_size, cfg.decoder_init_std, cfg.decoder_dropout,
                     name=f"upsample_{i}")(x)
        x = layers.Concatenate(name=f"skip_{i}")([x, skip])
    # Last stride-2 step back to full size: (B, S/2, S/2, .) -> (B, S, S, num_classes)
    logits = layers.Conv2DTranspose(num_classes, cfg.decoder_kernel_size, strides=2, padding="same", name="logits",
                                    dtype="float32")(x)  # float32 logits under mixed precision
    model = keras.Model(inputs, logits, name="unet")
    set_batchnorm_momentum(model, cfg.batchnorm_momentum)
    return model


def compile_segmentation(model: keras.Model, cfg: SegmentationConfig, steps_per_epoch: int,
                         fine_tuning: bool = False, jit_compile: bool = False) -> None:
    """Adam (constant or cosine-decayed rate) + sparse cross-entropy on logits (+ a Dice term when
    segmentation.dice_weight > 0) + accuracy. A two-phase run (segmentation.fine_tune) compiles once per phase:
    the schedule spans the phase, `fine_tuning` selects phase two's learning rate; `jit_compile`: XLA."""
    if steps_per_epoch < 1:
        raise ValueError(
            f"steps_per_epoch: got {steps_per_epoch}; the training split must give at least one batch "
            "(lower segmentation.batch_size or add data)"
        )
    rate = cfg.fine_tune.learning_rate if fine_tuning else cfg.learning_rate
    epochs = cfg.fine_tune.epochs if fine_tuning else cfg.epochs - cfg.fine_tune.epochs
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = rate
    if cfg.lr_schedule == "cosine":
        # Decays to 0 by the last step of the phase's last epoch (Keras' default floor, alpha=0).
        learning_rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=epochs * steps_per_epoch)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if cfg.dice_weight > 0:
        loss = CrossEntropyDice(cfg.dice_weight, num_classes=model.output_shape[-1])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"],
                  jit_compile=jit_compile)


def pixel_weights(mask: tf.Tensor, border_weight: float) -> tf.Tensor:
    """Per-pixel sample weights, same shape as `mask`: `border_weight` on the border class, 1 elsewhere."""
    if not border_weight > 0:
        raise ValueError(f"segmentation.border_weight: got {border_weight}; it must be a positive loss weight")
    mask = tf.convert_to_tensor(mask)
    is_border = tf.equal(tf.cast(mask, tf.int32), BORDER)
    return tf.where(is_border, tf.constant(border_weight, tf.float32), tf.constant(1.0, tf.float32))
