"""Stateless image ops: same seed, same result eagerly and inside tf.data; another seed, another result."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from visionflow.augment import image_ops
from visionflow.augment.pipeline import build_dataset_augmentation, build_joint_augmentation, image_op
from visionflow.augment.spec import OPS, validate_ops

SEED = tf.constant([3, 14], tf.int64)
OTHER = tf.constant([3, 15], tf.int64)

# One example mapping per op; (random, keeps_size).
CASES = {
    "flip": ({"mode": "horizontal_and_vertical"}, True, True),
    "rot90": ({}, True, True),
    "rotate": ({"factor": 0.2}, True, True),
    "zoom": ({"factor": 0.3}, True, True),
    "translate": ({"height_factor": 0.2, "width_factor": 0.3}, True, True),
    "central_crop": ({"fraction": 0.5}, False, True),
    "crop": ({"fraction": 0.5}, True, True),
    "brightness": ({"max_delta": 0.3}, True, True),
    "contrast": ({"lower": 0.5, "upper": 1.5}, True, True),
    "saturation": ({"lower": 0.3, "upper": 1.7}, True, True),
    "hue": ({"max_delta": 0.3}, True, True),
    "grayscale": ({"probability": 0.5}, True, True),
    "invert": ({"probability": 0.5}, True, True),
    "jpeg_quality": ({"min_quality": 10, "max_quality": 90}, True, True),
    "gaussian_noise": ({"stddev": 0.1}, True, True),
    "gaussian_blur": ({"max_sigma": 2.0}, True, True),
    # Keras-layer ops run as their stateless twins with placement=dataset.
    "random_flip": ({"mode": "horizontal"}, True, True),
    "random_rotation": ({"factor": 0.2, "fill_mode": "constant", "interpolation": "nearest"}, True, True),
    "random_zoom": ({"factor": 0.3}, True, True),
    "random_translation": ({"height_factor": 0.2, "width_factor": 0.2}, True, True),
    "random_crop": ({"height": 8, "width": 12}, True, False),
    "random_contrast": ({"factor": 0.5}, True, True),
    "random_brightness": ({"factor": 0.3}, True, True),
    "random_invert": ({"probability": 0.5}, True, True),
    "resizing": ({"height": 8, "width": 24}, False, False),
    "rescaling": ({"scale": 2.0, "offset": -1.0}, False, True),
}


def _image(size: int = 16) -> tf.Tensor:
    return tf.random.stateless_uniform([size, size, 3], seed=[0, 1])  # (H, W, 3) in [0, 1]


def _in_dataset(fn, image, seed):
    return tf.data.Dataset.from_tensors((image, seed)).map(fn).get_single_element()


def test_every_classifier_op_has_a_case():
    assert set(CASES) == {name for name, op in OPS.items() if "classifier" in op.kinds}


@pytest.mark.parametrize("name", sorted(CASES))
def test_eager_equals_tf_data_and_seed_matters(name):
    args, is_random, keeps_size = CASES[name]
    op = {"op": name, **args}
    validate_ops([op], "classifier", placement="dataset")
    fn = image_op(op)
    image = _image()
    eager = fn(image, SEED).numpy()
    np.testing.assert_array_equal(eager, fn(image, SEED).numpy())
    np.testing.assert_array_equal(eager, _in_dataset(fn, image, SEED).numpy())
    if is_random:
        # Some draws are coin flips, so look for a difference over a few seeds.
        others = [fn(image, tf.constant([3, s], tf.int64)).numpy() for s in range(15, 19)]
        assert any(not np.array_equal(eager, o) for o in others), f"{name} ignores its seed"
    if keeps_size:
        assert eager.shape == image.shape
    if name != "rescaling":
        assert eager.dtype == np.float32 and eager.min() >= 0.0 and eager.max() <= 1.0 + 1e-6


def test_flip_and_rot90_only_move_pixels():
    image = _image()
    outcomes = set()
    for s in range(8):
        out = image_ops.flip(image, tf.constant([s, 0], tf.int64), mode="horizontal").numpy()
        matches = [np.array_equal(out, image.numpy()), np.array_equal(out, image.numpy()[:, ::-1])]
        assert any(matches)
        outcomes.add(matches.index(True))
        rotated = image_ops.rot90(image, tf.constant([s, 0], tf.int64)).numpy()
        assert any(np.array_equal(rotated, np.rot90(image.numpy(), k)) for k in range(4))
    assert outcomes == {0, 1}, "flip never (or always) flipped over 8 seeds"


def test_rotate_and_zoom_keep_the_centre_pixel():
    image = _image(17)
    for fn in (image_ops.rotate, image_ops.zoom):
        out = fn(image, SEED, factor=0.3, fill_mode="constant", fill_value=0.0, interpolation="nearest")
        np.testing.assert_array_equal(out[8, 8], image[8, 8])
        assert not np.array_equal(out, image)


def test_central_crop_of_a_batch_is_each_image_cropped():
    """Test-time crops (visionflow.inference) zoom a whole batch at once: the same as image by image."""
    batch = tf.stack([_image(), tf.reverse(_image(), [0])])
    out = image_ops.central_crop(batch, None, fraction=0.5)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    for image, cropped in zip(batch, out):
        np.testing.assert_allclose(cropped, image_ops.central_crop(image, None, fraction=0.5), atol=1e-6)
    np.testing.assert_allclose(out[0], tf.image.resize(batch[0, 4:12, 4:12], [16, 16]), atol=1e-6)


def test_translate_is_an_integer_shift_with_nearest_interpolation():
    image = _image().numpy()
    out = image_ops.translate(tf.constant(image), SEED, height_factor=0.25, width_factor=0.25,
                              fill_mode="constant", fill_value=0.0, interpolation="nearest").numpy()
    shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
              if np.array_equal(out[max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)],
                                image[max(-dy, 0):16 + min(-dy, 0), max(-dx, 0):16 + min(-dx, 0)])]
    assert len(shifts) == 1 and shifts[0] != (0, 0)


def test_pixel_ops_do_what_they_say():
    image = _image()
    inverted = image_ops.invert(image, SEED, probability=1.0)
    np.testing.assert_allclose(inverted, 1.0 - image.numpy())
    np.testing.assert_array_equal(image_ops.invert(image, SEED, probability=0.0), image)
    gray = image_ops.grayscale(image, SEED, probability=1.0).numpy()
    np.testing.assert_allclose(gray[..., 0], gray[..., 2])
    mid = tf.fill([16, 16, 3], 0.5)
    delta = (image_ops.brightness(mid, SEED, max_delta=0.2) - mid).numpy()
    assert np.ptp(delta) < 1e-6 and 0 < abs(delta.flat[0]) <= 0.2
    noise = (image_ops.gaussian_noise(mid, SEED, stddev=0.05) - mid).numpy()
    assert 0.04 < noise.std() < 0.06
    central = image_ops.central_crop(image, SEED, fraction=0.5)
    np.testing.assert_allclose(central, tf.image.resize(image[4:12, 4:12], (16, 16)), atol=1e-6)


def test_gaussian_blur_smooths_and_keeps_flat_images_flat():
    noisy = _image(32)
    blurred = image_ops.gaussian_blur(noisy, SEED, max_sigma=3.0)
    assert float(tf.math.reduce_std(blurred)) < 0.8 * float(tf.math.reduce_std(noisy))
    flat = tf.fill([12, 12, 3], 0.3)
    np.testing.assert_allclose(image_ops.gaussian_blur(flat, SEED, max_sigma=3.0), flat, atol=1e-6)


def test_dataset_augmentation_composes_ops_and_seeds_each_example_in_a_batch():
    ops = [{"op": "random_flip", "mode": "horizontal"}, {"op": "random_rotation", "factor": 0.1},
           {"op": "hue", "max_delta": 0.1}]
    fn = build_dataset_augmentation(ops, seed=7)
    batch = tf.stack([_image()] * 4)  # (4, H, W, 3), identical examples
    label = tf.zeros([4], tf.int32)
    eager = fn(batch, label, SEED).numpy()
    graph = tf.data.Dataset.from_tensors((batch, label, SEED)).map(fn).get_single_element().numpy()
    np.testing.assert_array_equal(eager, graph)
    assert eager.shape == (4, 16, 16, 3)
    assert not np.array_equal(eager[0], eager[1]), "examples of a batch share their augmentation"
    single = fn(batch[0], label[0], SEED).numpy()
    assert not np.array_equal(single, batch[0].numpy())
    other_pipeline = build_dataset_augmentation(ops, seed=8)(batch[0], label[0], SEED).numpy()
    assert not np.array_equal(single, other_pipeline), "the pipeline seed is ignored"


def test_dataset_augmentation_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match=r"\[0\] random_flip: not allowed for segmentation"):
        build_joint_augmentation([{"op": "random_flip"}], seed=0)
    fn = build_dataset_augmentation([{"op": "flip"}], seed=0)
    with pytest.raises(ValueError, match=r"expected an image \(H, W, C\) or a batch"):
        fn(tf.zeros([16, 16]), tf.constant(0), SEED)
