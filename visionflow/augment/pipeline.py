"""Stateless augmentation of tf.data pipelines (placement=dataset, segmentation, offline copies).

Seeds: every example gets a shape-(2,) seed `(element index, stream)`; the pipeline seed is folded into
it, and it is split into one seed per op (`stateless_split`). Results are therefore a pure function of
(seed, index, stream), the same eagerly, in tf.data, with any parallelism and on any run.

Epochs: the index counts the elements of the dataset handed in. Apply `augment_dataset` AFTER
`repeat()` (as the TensorFlow segmentation tutorial maps `Augment()` after `repeat()`): the counter
then keeps running across epochs and every epoch sees fresh augmentations. On a finite dataset, every
pass sees the same augmentations, which is what `offline_copies` wants.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import tensorflow as tf

from visionflow.augment import image_ops, joint
from visionflow.augment.spec import OPS, resolve, validate_ops

if TYPE_CHECKING:
    from visionflow.config import AugmentConfig

ImageFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

# Every stateless op of the registry is the image_ops function of its name, taking its arguments.
_IMAGE_OPS: dict[str, Callable[..., tf.Tensor]] = {
    name: getattr(image_ops, name) for name, spec in OPS.items() if not spec.keras_layer
}


# Keras-layer ops in placement=dataset: the stateless op with the same transform (and argument names).
_TWINS = {"random_flip": image_ops.flip, "random_rotation": image_ops.rotate, "random_zoom": image_ops.zoom,
          "random_translation": image_ops.translate, "random_crop": image_ops.random_crop,
          "random_invert": image_ops.invert, "resizing": image_ops.resize, "rescaling": image_ops.rescale}


def image_op(op: Mapping[str, Any]) -> ImageFn:
    """`(image, seed) -> image` for one validated op; Keras-layer ops run as their stateless twins."""
    name, a = op["op"], resolve(op)
    if name in _IMAGE_OPS:
        return functools.partial(_IMAGE_OPS[name], **a)
    if name in _TWINS:
        return functools.partial(_TWINS[name], **a)
    if name == "random_contrast":  # keras.layers.RandomContrast(f) draws its factor from [1 - f, 1 + f]
        return functools.partial(image_ops.contrast, lower=1.0 - a["factor"], upper=1.0 + a["factor"])
    if name == "random_brightness":  # RandomBrightness(f, value_range=(0, 1)) adds a delta from [-f, f]
        return functools.partial(image_ops.brightness, max_delta=a["factor"])
    raise ValueError(f"{name}: no stateless implementation (known: {', '.join([*_IMAGE_OPS, *_TWINS])})")


def joint_op(op: Mapping[str, Any]) -> joint.JointFn:
    """`(image, mask, seed) -> (image, mask)` for one validated segmentation op."""
    name, a = op["op"], resolve(op)
    if OPS[name].spatial:
        return functools.partial(joint.SPATIAL[name], **a)
    return functools.partial(_image_only, _IMAGE_OPS[name], **a)


def _image_only(pixel: Callable[..., tf.Tensor], image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, **args):
    """A pixel-level op in a segmentation list: the image changes, the mask does not."""
    return pixel(image, seed, **args), mask


def _op_seeds(example_seed: tf.Tensor, seed: int, n: int) -> tf.Tensor:
    """(n, 2) per-op seeds from one example seed and the pipeline seed."""
    key = tf.random.experimental.stateless_fold_in(tf.cast(example_seed, tf.int64), seed)
    return tf.random.experimental.stateless_split(key, num=n)


def _per_example(fn: Callable, example_seed: tf.Tensor, *tensors: tf.Tensor, out_dtypes):
    """Apply a per-example fn to a (B, ...) batch, example j seeded with fold_in(example_seed, j)."""
    if tensors[0].shape.rank == 3:
        return fn(*tensors, example_seed)
    if tensors[0].shape.rank != 4:
        raise ValueError(f"augmentation: expected an image (H, W, C) or a batch (B, H, W, C), "
                         f"got shape {tensors[0].shape}")
    index = tf.range(tf.shape(tensors[0])[0], dtype=tf.int64)

    def one(args):
        *xs, j = args
        return fn(*xs, tf.random.experimental.stateless_fold_in(tf.cast(example_seed, tf.int64), j))

    return tf.map_fn(one, (*tensors, index), fn_output_signature=out_dtypes)


def build_dataset_augmentation(ops: Sequence[Mapping[str, Any]], seed: int
                               ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """Classifier ops as a stateless `(image, label, example_seed (2,)) -> image` for Dataset.map."""
    validate_ops(ops, "classifier", placement="dataset")
    fns = [image_op(op) for op in ops]

    def one(image: tf.Tensor, example_seed: tf.Tensor) -> tf.Tensor:
        if not fns:
            return image
        seeds = _op_seeds(example_seed, seed, len(fns))
        for i, fn in enumerate(fns):
            image = fn(image, seeds[i])
        return image

    def augment(image: tf.Tensor, label: tf.Tensor, example_seed: tf.Tensor) -> tf.Tensor:
        del label  # in the signature so label-aware ops can be added; none reads it yet
        return _per_example(one, example_seed, image, out_dtypes=image.dtype)

    return augment


def build_joint_augmentation(ops: Sequence[Mapping[str, Any]], seed: int) -> joint.JointFn:
    """Segmentation ops as a stateless `(image, mask, example_seed (2,)) -> (image, mask)`."""
    validate_ops(ops, "segmentation")
    fns = [joint_op(op) for op in ops]

    def one(image: tf.Tensor, mask: tf.Tensor, example_seed: tf.Tensor):
        if not fns:
            return image, mask
        seeds = _op_seeds(example_seed, seed, len(fns))
        for i, fn in enumerate(fns):
            image, mask = fn(image, mask, seeds[i])
        return image, mask

    def augment(image: tf.Tensor, mask: tf.Tensor, example_seed: tf.Tensor):
        if mask.shape.rank != image.shape.rank or mask.shape[-1] != 1:
            raise ValueError(f"segmentation augmentation: the mask must be (H, W, 1) or (B, H, W, 1) like "
                             f"its image {image.shape}, got {mask.shape} (add a channel axis)")
        return _per_example(one, example_seed, image, mask, out_dtypes=(image.dtype, mask.dtype))

    return augment


def _augment(ds: tf.data.Dataset, ops: Sequence[Mapping[str, Any]], seed: int, kind: str,
             stream: int) -> tf.data.Dataset:
    spec = ds.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(f"augment_dataset: expected a dataset of (image, target) pairs, got elements {spec}")
    if kind == "classifier":
        fn = build_dataset_augmentation(ops, seed)

        @tf.autograph.experimental.do_not_convert  # plain TF ops, no Python control flow on tensors
        def apply(index, element):
            image, label = element
            return fn(image, label, tf.stack([index, stream])), label
    elif kind == "segmentation":
        fn = build_joint_augmentation(ops, seed)

        @tf.autograph.experimental.do_not_convert
        def apply(index, element):
            image, mask = element
            return fn(image, mask, tf.stack([index, stream]))
    else:
        raise ValueError(f"augment_dataset: kind={kind!r} unknown (expected classifier or segmentation)")
    return ds.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def augment_dataset(ds: tf.data.Dataset, ops: Sequence[Mapping[str, Any]], seed: int, *,
                    kind: Literal["classifier", "segmentation"]) -> tf.data.Dataset:
    """Augment (image, label) or (image, mask) pairs, example i seeded by (seed, i); see module doc on epochs."""
    return _augment(ds, ops, seed, kind, stream=0)


def offline_copies(ds: tf.data.Dataset, ops: Sequence[Mapping[str, Any]], seed: int, copies: int, *,
                   kind: Literal["classifier", "segmentation"]) -> tf.data.Dataset:
    """`copies` augmented copies of a finite split, concatenated; copy k seeded by (seed, k, index)."""
    if copies < 1:
        raise ValueError(f"augment.offline_copies: copies={copies} must be >= 1 (0 means: do not call this)")
    if ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("offline_copies: the dataset is infinite; pass the finite split (no repeat())")
    # Stream 0 is augment_dataset's: copies use 1..copies so none repeats the online augmentation.
    return functools.reduce(tf.data.Dataset.concatenate,
                            [_augment(ds, ops, seed, kind, stream=k + 1) for k in range(copies)])


def augmented_examples(pairs: tf.data.Dataset, augment: AugmentConfig, seed: int, model: Any, n: int):
    """What the classifier actually sees: the first n (image, label) training pairs after augment.classifier,
    applied where augment.placement puts it (the dataset's seeded ops, or the model's layers in training mode);
    a numpy (n, S, S, 3) array for the augmented-examples figure."""
    import numpy as np

    pairs = pairs.take(n)
    if augment.placement == "dataset":
        seen = augment_dataset(pairs, augment.classifier, seed, kind="classifier")
        return np.stack([x for x, _ in seen.as_numpy_iterator()])
    from visionflow.augment.layers import model_augmentation

    batch = np.stack([x for x, _ in pairs.as_numpy_iterator()])
    return np.asarray(model_augmentation(model)(batch, training=True))
