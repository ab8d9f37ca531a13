"""Joint spatial transforms for segmentation: image and mask moved with the SAME parameters.

Image: float32 (H, W, C) in [0, 1]. Mask: integer (H, W, 1) class ids (uint8 {0, 1, 2} for the pet
trimaps). Each op is `(image, mask, seed, **args) -> (image, mask)`.

* Exact pixel moves (flip, rot90, crops) run once on the image and mask stacked along channels, so
  they cannot diverge; crops are resized back to the input size (image bilinear, mask nearest).
* Affine warps (rotate, zoom, translate) sample one transform from the seed and apply it twice:
  the image with the op's interpolation, the mask with nearest neighbour, so it keeps its class ids.

Fill policy for areas brought in from outside the image: the mask follows the image's `fill_mode`.
With reflect / wrap / nearest, the mask is reflected / wrapped / extended exactly like the image, so
the labels stay true to the pixels that were brought in. With `constant`, the image gets
`fill_value` and the mask gets BORDER_CLASS, the trimap's "border / unclassified" class: the model is
taught nothing about the pet or background from pixels that were invented.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from visionflow.augment import image_ops
from visionflow.classes import BORDER

BORDER_CLASS = BORDER  # what the mask gets where the image gets fill_value

JointFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def _stacked(move: Callable[[tf.Tensor], tf.Tensor], image: tf.Tensor, mask: tf.Tensor):
    """Run an exact pixel move once on image and mask stacked along channels."""
    stack = tf.concat([image, tf.cast(mask, image.dtype)], axis=-1)  # (H, W, C + 1)
    moved = move(stack)
    # Class ids are small integers, exact in float32, so the round trip is lossless.
    return moved[..., :-1], tf.cast(tf.round(moved[..., -1:]), mask.dtype)


def flip(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, *, mode: str):
    """Random flip of image and mask together."""
    return _stacked(lambda x: image_ops.flip(x, seed, mode=mode), image, mask)


def rot90(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor):
    """Rotate image and mask together by a random multiple of 90 degrees."""
    return _stacked(lambda x: image_ops.rot90(x, seed), image, mask)


def _resized_back(window_image: tf.Tensor, window_mask: tf.Tensor, image: tf.Tensor, mask: tf.Tensor):
    return (image_ops.resize_to(window_image, image, "bilinear"),
            image_ops.resize_to(window_mask, mask, "nearest"))


def central_crop(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, *, fraction: float):
    """Central crop of image and mask, resized back to the input size."""
    del seed  # deterministic; takes a seed to share the signature of the random ops
    window_image, window_mask = _stacked(lambda x: image_ops.central_crop_window(x, fraction=fraction),
                                         image, mask)
    return _resized_back(window_image, window_mask, image, mask)


def crop(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, *, fraction: float):
    """The same random crop of image and mask, resized back to the input size."""
    window_image, window_mask = _stacked(lambda x: image_ops.crop_window(x, seed, fraction=fraction),
                                         image, mask)
    return _resized_back(window_image, window_mask, image, mask)


def _affine(name: str):
    def op(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, *, fill_mode: str, fill_value: float,
           interpolation: str, **magnitudes):
        transform = image_ops.affine_transform(name, seed, image, **magnitudes)  # one draw, used twice
        image = image_ops.warp(image, transform, interpolation=interpolation, fill_mode=fill_mode,
                               fill_value=fill_value)
        mask = image_ops.warp(mask, transform, interpolation="nearest", fill_mode=fill_mode,
                              fill_value=BORDER_CLASS)
        return image, mask

    op.__name__ = name
    op.__doc__ = f"Joint {name}: one transform, image with `interpolation`, mask nearest-neighbour."
    return op


rotate = _affine("rotate")
zoom = _affine("zoom")
translate = _affine("translate")

SPATIAL: dict[str, Callable[..., tuple[tf.Tensor, tf.Tensor]]] = {
    "flip": flip, "rot90": rot90, "central_crop": central_crop, "crop": crop,
    "rotate": rotate, "zoom": zoom, "translate": translate,
}
