"""The reference: TensorFlow's "Image segmentation" tutorial, its input pipeline and U-Net as published.

Source: https://www.tensorflow.org/tutorials/images/segmentation (tensorflow/docs,
site/en/tutorials/images/segmentation.ipynb) and the `upsample` block it imports from
tensorflow_examples.models.pix2pix (tensorflow/examples, tensorflow_examples/models/pix2pix/pix2pix.py),
which is not on PyPI. The code is the tutorial's; only its constants became arguments (image size,
batch size, encoder weights), so the benchmark can run both U-Nets at the same size and batch size.
The benchmark (bench/unet.py) times it against visionflow's own pipeline and model.
"""

from __future__ import annotations

import tensorflow as tf

# The tutorial's constants.
IMAGE_SIZE = 128
BATCH_SIZE = 64
BUFFER_SIZE = 1000
OUTPUT_CLASSES = 3
LAYER_NAMES = [
    "block_1_expand_relu",  # 64x64
    "block_3_expand_relu",  # 32x32
    "block_6_expand_relu",  # 16x16
    "block_13_expand_relu",  # 8x8
    "block_16_project",  # 4x4
]


def normalize(input_image, input_mask):
    input_image = tf.cast(input_image, tf.float32) / 255.0
    input_mask -= 1
    return input_image, input_mask


def load_image(datapoint, size: int = IMAGE_SIZE):
    input_image = tf.image.resize(datapoint["image"], (size, size))
    input_mask = tf.image.resize(
        datapoint["segmentation_mask"],
        (size, size),
        method=tf.image.ResizeMethod.NEAREST_NEIGHBOR,
    )
    input_image, input_mask = normalize(input_image, input_mask)
    return input_image, input_mask


class Augment(tf.keras.layers.Layer):
    def __init__(self, seed=42):
        super().__init__()
        # both use the same seed, so they'll make the same random changes.
        self.augment_inputs = tf.keras.layers.RandomFlip(mode="horizontal", seed=seed)
        self.augment_labels = tf.keras.layers.RandomFlip(mode="horizontal", seed=seed)

    def call(self, inputs, labels):
        inputs = self.augment_inputs(inputs)
        labels = self.augment_labels(labels)
        return inputs, labels


def train_batches(train_split: tf.data.Dataset, size: int = IMAGE_SIZE, batch_size: int = BATCH_SIZE):
    """`dataset['train']` of tfds.load('oxford_iiit_pet:4.*.*') -> the tutorial's endless training batches."""
    train_images = train_split.map(lambda datapoint: load_image(datapoint, size), num_parallel_calls=tf.data.AUTOTUNE)
    return (
        train_images
        .cache()
        .shuffle(BUFFER_SIZE)
        .batch(batch_size)
        .repeat()
        .map(Augment())
        .prefetch(buffer_size=tf.data.AUTOTUNE))


def upsample(filters, size, norm_type="batchnorm", apply_dropout=False):
    """pix2pix.upsample: Conv2DTranspose => Batchnorm => Dropout => Relu."""
    initializer = tf.random_normal_initializer(0.0, 0.02)

    result = tf.keras.Sequential()
    result.add(
        tf.keras.layers.Conv2DTranspose(filters, size, strides=2,
                                        padding="same",
                                        kernel_initializer=initializer,
                                        use_bias=False))

    if norm_type.lower() == "batchnorm":
        result.add(tf.keras.layers.BatchNormalization())
    else:  # pix2pix's InstanceNormalization, unused by the tutorial
        raise ValueError(f"norm_type: {norm_type!r}; the tutorial uses 'batchnorm'")

    if apply_dropout:
        result.add(tf.keras.layers.Dropout(0.5))

    result.add(tf.keras.layers.ReLU())

    return result


def unet_model(output_channels: int = OUTPUT_CLASSES, size: int = IMAGE_SIZE, weights: str | None = "imagenet"):
    """The tutorial's U-Net: frozen MobileNetV2 (alpha 1.0) down stack, pix2pix up stack, logits out."""
    base_model = tf.keras.applications.MobileNetV2(input_shape=[size, size, 3], include_top=False, weights=weights)

    # Use the activations of these layers
    base_model_outputs = [base_model.get_layer(name).output for name in LAYER_NAMES]

    # Create the feature extraction model
    down_stack = tf.keras.Model(inputs=base_model.input, outputs=base_model_outputs)

    down_stack.trainable = False

    up_stack = [
        upsample(512, 3),  # 4x4 -> 8x8
        upsample(256, 3),  # 8x8 -> 16x16
        upsample(128, 3),  # 16x16 -> 32x32
        upsample(64, 3),   # 32x32 -> 64x64
    ]

    inputs = tf.keras.layers.Input(shape=[size, size, 3])

    # Downsampling through the model
    skips = down_stack(inputs)
    x = skips[-1]
    skips = reversed(skips[:-1])

    # Upsampling and establishing the skip connections
    for up, skip in zip(up_stack, skips):
        x = up(x)
        concat = tf.keras.layers.Concatenate()
        x = concat([x, skip])

    # This is the last layer of the model
    last = tf.keras.layers.Conv2DTranspose(
        filters=output_channels, kernel_size=3, strides=2,
        padding="same")  # 64x64 -> 128x128

    x = last(x)

    return tf.keras.Model(inputs=inputs, outputs=x)


def compile_model(model):
    """The tutorial's model.compile."""
    model.compile(optimizer="adam",
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model
