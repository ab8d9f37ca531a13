"""Stateless image ops: each is `(image, seed, **args) -> image` with an explicit shape-(2,) int seed.

Images are float32 (H, W, C) in [0, 1]. The same seed gives the same result eagerly and inside tf.data.
Spatial ops are split into "sample the parameters from the seed" and "apply them", so `joint.py` can
move a segmentation mask with exactly the parameters used for its image.
"""

from __future__ import annotations

import math

import tensorflow as tf

_TURN = 2.0 * math.pi


def _draws(seed: tf.Tensor, n: int) -> tf.Tensor:
    """n independent seeds (n, 2) from one, for ops that need several random numbers."""
    return tf.random.experimental.stateless_split(seed, num=n)


def _bernoulli(seed: tf.Tensor, probability: float) -> tf.Tensor:
    """A scalar bool that is True with the given probability."""
    return tf.random.stateless_uniform([], seed=seed) < probability


def _size(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.shape(image)
    return shape[0], shape[1]


# --- Exact pixel moves: channel-agnostic, so joint.py runs them on an image stacked with its mask. ---

def flip(image: tf.Tensor, seed: tf.Tensor, *, mode: str) -> tf.Tensor:
    """Flip left-right and/or up-down, each with probability 1/2."""
    horizontal_seed, vertical_seed = tf.unstack(_draws(seed, 2))
    if mode in ("horizontal", "horizontal_and_vertical"):
        image = tf.image.stateless_random_flip_left_right(image, horizontal_seed)
    if mode in ("vertical", "horizontal_and_vertical"):
        image = tf.image.stateless_random_flip_up_down(image, vertical_seed)
    return image


def rot90(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Rotate by k * 90 degrees, k uniform in {0, 1, 2, 3}."""
    k = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=4, dtype=tf.int32)
    return tf.image.rot90(image, k)


def central_crop_window(image: tf.Tensor, *, fraction: float) -> tf.Tensor:
    """The central fraction x fraction window (smaller than the input)."""
    return tf.image.central_crop(image, fraction)


def crop_window(image: tf.Tensor, seed: tf.Tensor, *, fraction: float) -> tf.Tensor:
    """A fraction x fraction window at a uniformly random position (smaller than the input)."""
    height, width = _size(image)
    window = tf.stack([_scaled(height, fraction), _scaled(width, fraction), tf.shape(image)[2]])
    return tf.image.stateless_random_crop(image, window, seed)


def _scaled(side: tf.Tensor, fraction: float) -> tf.Tensor:
    return tf.maximum(1, tf.cast(tf.round(tf.cast(side, tf.float32) * fraction), tf.int32))


# --- Crops resized back to the input size, and the size ops of the Keras twins. ---------------------

def resize_to(image: tf.Tensor, like: tf.Tensor, method: str) -> tf.Tensor:
    """Resize `image` (H, W, C) or a batch (B, H, W, C) back to the height and width of `like`, keeping its dtype."""
    resized = tf.image.resize(image, tf.shape(like)[-3:-1], method=method)
    shape = image.shape[:-3].concatenate(like.shape[-3:-1]).concatenate(image.shape[-1:])
    return tf.ensure_shape(tf.cast(resized, image.dtype), shape)


def central_crop(image: tf.Tensor, seed: tf.Tensor, *, fraction: float) -> tf.Tensor:
    """tf.image.central_crop, resized back to the input size (a fixed zoom-in); an image or a batch of them."""
    del seed  # deterministic; takes a seed to share the signature of the random ops
    return resize_to(central_crop_window(image, fraction=fraction), image, "bilinear")


def crop(image: tf.Tensor, seed: tf.Tensor, *, fraction: float) -> tf.Tensor:
    """A random fraction x fraction crop, resized back to the input size."""
    return resize_to(crop_window(image, seed, fraction=fraction), image, "bilinear")


def random_crop(image: tf.Tensor, seed: tf.Tensor, *, height: int, width: int) -> tf.Tensor:
    """A random height x width crop (the size changes), as keras.layers.RandomCrop in training."""
    out = tf.image.stateless_random_crop(image, tf.stack([height, width, tf.shape(image)[2]]), seed)
    return tf.ensure_shape(out, [height, width, image.shape[-1]])


def resize(image: tf.Tensor, seed: tf.Tensor, *, height: int, width: int, interpolation: str) -> tf.Tensor:
    """Resize to height x width, as keras.layers.Resizing."""
    del seed  # deterministic; takes a seed to share the signature of the random ops
    return tf.image.resize(image, (height, width), method=interpolation)


def rescale(image: tf.Tensor, seed: tf.Tensor, *, scale: float, offset: float) -> tf.Tensor:
    """x * scale + offset, as keras.layers.Rescaling."""
    del seed  # deterministic; takes a seed to share the signature of the random ops
    return image * scale + offset


# --- Affine warps: a transform sampled from the seed, then applied with any interpolation. ----------

def rotation_transform(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, *, factor: float) -> tf.Tensor:
    """(8,) projective transform: rotation about the centre by a uniform angle in +-factor turns."""
    angle = tf.random.stateless_uniform([], seed=seed, minval=-factor * _TURN, maxval=factor * _TURN)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = _centre(width), _centre(height)
    # Maps output pixel (x, y) to the input point it is read from.
    return tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])


def zoom_transform(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, *, factor: float) -> tf.Tensor:
    """(8,) transform: scale about the centre; z uniform in [1 - factor, 1 + factor], z > 1 zooms out."""
    z = tf.random.stateless_uniform([], seed=seed, minval=1.0 - factor, maxval=1.0 + factor)
    cx, cy = _centre(width), _centre(height)
    return tf.stack([z, 0.0, cx * (1.0 - z), 0.0, z, cy * (1.0 - z), 0.0, 0.0])


def translation_transform(
    seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, *, height_factor: float, width_factor: float
) -> tf.Tensor:
    """(8,) transform: shift by up to height_factor * H rows and width_factor * W columns."""
    unit = tf.random.stateless_uniform([2], seed=seed, minval=-1.0, maxval=1.0)
    dy = unit[0] * height_factor * tf.cast(height, tf.float32)
    dx = unit[1] * width_factor * tf.cast(width, tf.float32)
    return tf.stack([1.0, 0.0, -dx, 0.0, 1.0, -dy, 0.0, 0.0])


def _centre(side: tf.Tensor) -> tf.Tensor:
    return (tf.cast(side, tf.float32) - 1.0) / 2.0


def warp(image: tf.Tensor, transform: tf.Tensor, *, interpolation: str, fill_mode: str,
         fill_value: float) -> tf.Tensor:
    """Apply an (8,) projective transform to an (H, W, C) tensor of any numeric dtype; size kept."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],  # (1, H, W, C)
        transforms=tf.cast(transform, tf.float32)[tf.newaxis],  # (1, 8)
        output_shape=tf.shape(image)[:2],
        fill_value=tf.cast(fill_value, tf.float32),
        interpolation=interpolation.upper(),
        fill_mode=fill_mode.upper(),
    )
    return tf.ensure_shape(out[0], image.shape)  # (H, W, C)


_TRANSFORMS = {"rotate": rotation_transform, "zoom": zoom_transform, "translate": translation_transform}


def affine_transform(name: str, seed: tf.Tensor, image: tf.Tensor, **magnitudes) -> tf.Tensor:
    """The (8,) transform of affine op `name` (rotate, zoom, translate) for this image and seed."""
    height, width = _size(image)
    return _TRANSFORMS[name](seed, height, width, **magnitudes)


def rotate(image: tf.Tensor, seed: tf.Tensor, *, factor: float, fill_mode: str, fill_value: float,
           interpolation: str) -> tf.Tensor:
    """Rotate about the centre by a uniform angle in [-factor, factor] turns."""
    t = affine_transform("rotate", seed, image, factor=factor)
    return warp(image, t, interpolation=interpolation, fill_mode=fill_mode, fill_value=fill_value)


def zoom(image: tf.Tensor, seed: tf.Tensor, *, factor: float, fill_mode: str, fill_value: float,
         interpolation: str) -> tf.Tensor:
    """Zoom about the centre by a uniform step in [1 - factor, 1 + factor] (> 1 zooms out)."""
    t = affine_transform("zoom", seed, image, factor=factor)
    return warp(image, t, interpolation=interpolation, fill_mode=fill_mode, fill_value=fill_value)


def translate(image: tf.Tensor, seed: tf.Tensor, *, height_factor: float, width_factor: float, fill_mode: str,
              fill_value: float, interpolation: str) -> tf.Tensor:
    """Shift by up to height_factor * H rows and width_factor * W columns."""
    t = affine_transform("translate", seed, image, height_factor=height_factor, width_factor=width_factor)
    return warp(image, t, interpolation=interpolation, fill_mode=fill_mode, fill_value=fill_value)


# --- Pixel-level ops: the image only. ---------------------------------------------------------------

def brightness(image: tf.Tensor, seed: tf.Tensor, *, max_delta: float) -> tf.Tensor:
    """Add a uniform delta in [-max_delta, max_delta], clipped to [0, 1]."""
    return tf.clip_by_value(tf.image.stateless_random_brightness(image, max_delta, seed), 0.0, 1.0)


def contrast(image: tf.Tensor, seed: tf.Tensor, *, lower: float, upper: float) -> tf.Tensor:
    """Scale each channel's deviation from its mean by a uniform factor in [lower, upper], clipped."""
    return tf.clip_by_value(tf.image.stateless_random_contrast(image, lower, upper, seed), 0.0, 1.0)


def saturation(image: tf.Tensor, seed: tf.Tensor, *, lower: float, upper: float) -> tf.Tensor:
    """Scale saturation by a uniform factor in [lower, upper] (RGB images)."""
    return tf.image.stateless_random_saturation(image, lower, upper, seed)


def hue(image: tf.Tensor, seed: tf.Tensor, *, max_delta: float) -> tf.Tensor:
    """Shift hue by a uniform delta in [-max_delta, max_delta] (RGB images)."""
    return tf.image.stateless_random_hue(image, max_delta, seed)


def grayscale(image: tf.Tensor, seed: tf.Tensor, *, probability: float) -> tf.Tensor:
    """With the given probability, replace the RGB image by its luminance (still 3 channels)."""
    gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
    return tf.where(_bernoulli(seed, probability), gray, image)


def invert(image: tf.Tensor, seed: tf.Tensor, *, probability: float) -> tf.Tensor:
    """With the given probability, x -> 1 - x."""
    return tf.where(_bernoulli(seed, probability), 1.0 - image, image)


def jpeg_quality(image: tf.Tensor, seed: tf.Tensor, *, min_quality: int, max_quality: int) -> tf.Tensor:
    """Re-encode as JPEG with a uniform quality in [min_quality, max_quality)."""
    out = tf.image.stateless_random_jpeg_quality(image, min_quality, max_quality, seed)
    return tf.ensure_shape(out, image.shape)  # the JPEG round trip forgets the static shape


def gaussian_noise(image: tf.Tensor, seed: tf.Tensor, *, stddev: float) -> tf.Tensor:
    """Add N(0, stddev^2) noise per pixel and channel, clipped to [0, 1]."""
    noise = tf.random.stateless_normal(tf.shape(image), seed=seed, stddev=stddev, dtype=image.dtype)
    return tf.clip_by_value(image + noise, 0.0, 1.0)


def gaussian_blur(image: tf.Tensor, seed: tf.Tensor, *, max_sigma: float) -> tf.Tensor:
    """Blur with a Gaussian of sigma uniform in [0, max_sigma] pixels (sigma 0 leaves the image)."""
    sigma = tf.random.stateless_uniform([], seed=seed, minval=0.0, maxval=max_sigma)
    radius = math.ceil(3.0 * max_sigma)  # +-3 sigma holds 99.7% of the kernel's mass
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    # A tiny floor keeps sigma = 0 a delta kernel instead of 0/0.
    kernel = tf.exp(-0.5 * tf.square(x / tf.maximum(sigma, 1e-3)))
    kernel /= tf.reduce_sum(kernel)
    channels = image.shape[-1]  # depthwise_conv2d needs a static channel count
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])  # (k, 1, C, 1)
    cols = tf.reshape(rows, [1, -1, channels, 1])  # (1, k, C, 1)

    def blur(x4: tf.Tensor) -> tf.Tensor:
        x4 = tf.nn.depthwise_conv2d(x4, rows, [1, 1, 1, 1], "SAME")
        return tf.nn.depthwise_conv2d(x4, cols, [1, 1, 1, 1], "SAME")

    # Dividing by the blurred ones image renormalises the kernel where it hangs over the border,
    # so edges do not darken and any image size works (no reflect-padding limits).
    blurred = blur(image[tf.newaxis])  # (1, H, W, C)
    weight = blur(tf.ones_like(image[tf.newaxis]))
    return tf.ensure_shape((blurred / weight)[0], image.shape)
