"""augment_dataset and offline_copies: seeded per example, reproducible, different where they should be."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visionflow.augment.pipeline import augment_dataset, offline_copies

N = 6
CLASSIFIER_OPS = ({"op": "random_flip", "mode": "horizontal"}, {"op": "random_rotation", "factor": 0.1},
                  {"op": "brightness", "max_delta": 0.2})
SEGMENTATION_OPS = ({"op": "flip", "mode": "horizontal"}, {"op": "zoom", "factor": 0.2},
                    {"op": "gaussian_noise", "stddev": 0.05})


def _classifier_ds() -> tf.data.Dataset:
    images = tf.random.stateless_uniform([N, 16, 16, 3], seed=[1, 2])
    return tf.data.Dataset.from_tensor_slices((images, tf.range(N)))


def _segmentation_ds() -> tf.data.Dataset:
    images = tf.random.stateless_uniform([N, 16, 16, 3], seed=[1, 2])
    masks = tf.random.stateless_uniform([N, 16, 16, 1], seed=[1, 3], maxval=3, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices((images, tf.cast(masks, tf.uint8)))


def _arrays(ds: tf.data.Dataset) -> list[np.ndarray]:
    return [np.stack(part) for part in zip(*[(a.numpy(), b.numpy()) for a, b in ds])]


def test_classifier_augmentation_is_reproducible_and_keeps_labels():
    images, labels = _arrays(augment_dataset(_classifier_ds(), CLASSIFIER_OPS, seed=42, kind="classifier"))
    again, _ = _arrays(augment_dataset(_classifier_ds(), CLASSIFIER_OPS, seed=42, kind="classifier"))
    other, _ = _arrays(augment_dataset(_classifier_ds(), CLASSIFIER_OPS, seed=43, kind="classifier"))
    original, original_labels = _arrays(_classifier_ds())
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, original_labels)
    assert images.shape == original.shape and images.dtype == np.float32
    assert not np.allclose(images, other)
    assert not np.any([np.allclose(a, o) for a, o in zip(images, original)]), "an example was not augmented"


def test_segmentation_augmentation_is_reproducible_and_keeps_mask_classes():
    images, masks = _arrays(augment_dataset(_segmentation_ds(), SEGMENTATION_OPS, seed=42, kind="segmentation"))
    again_images, again_masks = _arrays(augment_dataset(_segmentation_ds(), SEGMENTATION_OPS, seed=42,
                                                        kind="segmentation"))
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(masks, again_masks)
    assert masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1, 2}
    assert not np.array_equal(masks, _arrays(_segmentation_ds())[1]), "no mask moved"


def test_repeat_before_augmenting_gives_each_epoch_new_augmentations():
    ds = augment_dataset(_classifier_ds().repeat(2), CLASSIFIER_OPS, seed=42, kind="classifier")
    images, _ = _arrays(ds)
    assert not np.allclose(images[:N], images[N:])
    # A finite dataset seen twice repeats its augmentations (what offline copies rely on).
    finite = augment_dataset(_classifier_ds(), CLASSIFIER_OPS, seed=42, kind="classifier")
    np.testing.assert_array_equal(_arrays(finite)[0], _arrays(finite)[0])
    np.testing.assert_array_equal(images[:N], _arrays(finite)[0])


@pytest.mark.parametrize("kind", ["classifier", "segmentation"])
def test_offline_copies(kind):
    ds = _classifier_ds() if kind == "classifier" else _segmentation_ds()
    ops = CLASSIFIER_OPS if kind == "classifier" else SEGMENTATION_OPS
    copies = offline_copies(ds, ops, seed=7, copies=3, kind=kind)
    images, targets = _arrays(copies)
    assert len(images) == 3 * N
    np.testing.assert_array_equal(images, _arrays(offline_copies(ds, ops, seed=7, copies=3, kind=kind))[0])
    if kind == "classifier":
        np.testing.assert_array_equal(targets, np.tile(np.arange(N), 3))
    else:
        assert not np.array_equal(targets[:N], targets[N:2 * N]), "the copies' masks did not move"
    first, second, third = images[:N], images[N:2 * N], images[2 * N:]
    assert not np.allclose(first, second) and not np.allclose(second, third) and not np.allclose(first, third)
    online, _ = _arrays(augment_dataset(ds, ops, seed=7, kind=kind))
    assert not np.allclose(first, online), "copy 0 repeats the online augmentation"
    other_seed, _ = _arrays(offline_copies(ds, ops, seed=8, copies=1, kind=kind))
    assert not np.allclose(first, other_seed)


def test_bad_inputs_are_refused_with_what_to_do():
    ds = _classifier_ds()
    with pytest.raises(ValueError, match=r"offline_copies: copies=0 must be >= 1"):
        offline_copies(ds, CLASSIFIER_OPS, seed=0, copies=0, kind="classifier")
    with pytest.raises(ValueError, match=r"the dataset is infinite; pass the finite split"):
        offline_copies(ds.repeat(), CLASSIFIER_OPS, seed=0, copies=1, kind="classifier")
    with pytest.raises(ValueError, match=r"expected a dataset of \(image, target\) pairs"):
        augment_dataset(ds.map(lambda x, y: x), CLASSIFIER_OPS, seed=0, kind="classifier")
    with pytest.raises(ValueError, match=r"kind='detection' unknown"):
        augment_dataset(ds, CLASSIFIER_OPS, seed=0, kind="detection")
    with pytest.raises(ValueError, match=r"\[0\] random_flip: not allowed for segmentation"):
        augment_dataset(_segmentation_ds(), CLASSIFIER_OPS, seed=0, kind="segmentation")


def test_real_flowers_with_the_shipped_classifier_ops(flowers_sample, small_params):
    paths = sorted(flowers_sample.glob("*/*.jpg"))[:4]
    photos = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR),
                                  np.float32) / 255.0 for p in paths])  # (4, 32, 32, 3)
    ds = tf.data.Dataset.from_tensor_slices((photos, tf.range(4)))
    ops = small_params.augment.classifier
    first, labels = _arrays(augment_dataset(ds, ops, seed=small_params.seed, kind="classifier"))
    second, _ = _arrays(augment_dataset(ds, ops, seed=small_params.seed, kind="classifier"))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(labels, np.arange(4))
    assert first.shape == photos.shape and first.min() >= 0.0 and first.max() <= 1.0
    assert all(not np.allclose(a, p) for a, p in zip(first, photos))


@pytest.mark.parametrize("placement", ["dataset", "model"])
def test_augmented_examples_show_what_training_sees(placement):
    from types import SimpleNamespace

    import keras

    from visionflow.augment import augmented_examples, build_model_augmentation

    ops = ({"op": "random_flip" if placement == "model" else "flip", "mode": "horizontal"},)
    augment = SimpleNamespace(placement=placement, classifier=ops)
    images = np.tile(np.linspace(0, 1, 8, dtype=np.float32)[None, :, None], (8, 1, 3))[None].repeat(6, axis=0)
    pairs = tf.data.Dataset.from_tensor_slices((images, np.arange(6)))
    model = None
    if placement == "model":
        inputs = keras.Input((8, 8, 3))
        model = keras.Model(inputs, build_model_augmentation(ops, seed=3)(inputs))
    seen = augmented_examples(pairs, augment, 3, model, 4)
    assert seen.shape == (4, 8, 8, 3)
    flipped = [bool(np.allclose(s, images[0][:, ::-1])) for s in seen]
    assert all(f or np.allclose(s, images[0]) for f, s in zip(flipped, seen))  # each is the image or its mirror
    assert any(flipped)  # the augmentation ran
    if placement == "dataset":  # seeded: the same figure on every run
        np.testing.assert_array_equal(seen, augmented_examples(pairs, augment, 3, model, 4))
