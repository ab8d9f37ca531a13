"""placement=model: Keras augmentation layers, the custom RandomInvert, saving in Keras safe mode."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionflow.augment.layers import RandomInvert, build_model_augmentation, keras_layers
from visionflow.augment.spec import OPS

RANDOM_OPS = [
    {"op": "random_flip", "mode": "horizontal_and_vertical"},
    {"op": "random_rotation", "factor": 0.2},
    {"op": "random_zoom", "factor": 0.2, "fill_mode": "constant"},
    {"op": "random_translation", "height_factor": 0.1, "width_factor": 0.1},
    {"op": "random_contrast", "factor": 0.3},
    {"op": "random_brightness", "factor": 0.2},
    {"op": "random_invert", "probability": 0.5},
]


def _images(n: int = 4, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(n, size, size, 3)).astype("float32")  # (B, H, W, 3)


def test_every_keras_layer_op_builds_its_layer():
    examples = {"resizing": {"height": 8, "width": 8}, "rescaling": {"scale": 2.0, "offset": -1.0},
                "random_crop": {"height": 8, "width": 8}}
    examples.update({op["op"]: {k: v for k, v in op.items() if k != "op"} for op in RANDOM_OPS})
    assert set(examples) == {name for name, spec in OPS.items() if spec.keras_layer}
    for name, args in examples.items():
        built = keras_layers({"op": name, **args}, seed=1)
        assert built and all(isinstance(layer, keras.layers.Layer) for layer in built), name
        out = keras.ops.convert_to_numpy(keras.Sequential(built)(_images(), training=True))
        assert out.shape[0] == 4 and out.shape[-1] == 3, name


def test_random_crop_gives_its_size_in_training_and_at_inference():
    augmentation = build_model_augmentation([{"op": "random_crop", "height": 8, "width": 12}], seed=2)
    images = _images()
    trained = keras.ops.convert_to_numpy(augmentation(images, training=True))
    inferred = keras.ops.convert_to_numpy(augmentation(images, training=False))
    assert trained.shape == inferred.shape == (4, 8, 12, 3)
    np.testing.assert_array_equal(inferred, images[:, 4:12, 2:14])  # the centre window


def test_augmentation_is_identity_at_inference_and_random_in_training():
    augmentation = build_model_augmentation(RANDOM_OPS, seed=3)
    assert augmentation.name == "augmentation"
    images = _images()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augmentation(images, training=False)), images)
    trained = keras.ops.convert_to_numpy(augmentation(images, training=True))
    assert trained.shape == images.shape
    assert not np.allclose(trained, images)
    assert trained.min() >= 0.0 and trained.max() <= 1.0 + 1e-6


def test_the_seed_comes_from_the_caller():
    images = _images()

    def run(seed: int) -> np.ndarray:
        return keras.ops.convert_to_numpy(build_model_augmentation(RANDOM_OPS, seed=seed)(images, training=True))

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.allclose(run(5), run(6))


def test_random_invert_inverts_each_image_with_its_probability():
    images = _images(n=64, size=4)
    always = keras.ops.convert_to_numpy(RandomInvert(1.0, seed=0)(images, training=True))
    np.testing.assert_allclose(always, 1.0 - images)
    some = keras.ops.convert_to_numpy(RandomInvert(0.5, seed=0)(images, training=True))
    inverted = np.array([np.allclose(s, 1.0 - x) for s, x in zip(some, images)])
    kept = np.array([np.array_equal(s, x) for s, x in zip(some, images)])
    assert np.all(inverted ^ kept), "an image was partly inverted"
    assert 16 < inverted.sum() < 48
    single = keras.ops.convert_to_numpy(RandomInvert(1.0, seed=0)(images[0], training=True))
    np.testing.assert_allclose(single, 1.0 - images[0])
    with pytest.raises(ValueError, match=r"probability=1.5 must be in \[0, 1\]"):
        RandomInvert(1.5)


def test_model_with_augmentation_round_trips_in_safe_mode(tmp_path):
    ops = [{"op": "resizing", "height": 24, "width": 24}, *RANDOM_OPS, {"op": "random_crop", "height": 16,
                                                                          "width": 16},
           {"op": "rescaling", "scale": 2.0, "offset": -1.0}]
    inputs = keras.Input((32, 32, 3))
    x = build_model_augmentation(ops, seed=11)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.models.load_model(path, safe_mode=True)
    images = _images(size=32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    def inverts(m: keras.Model) -> list[RandomInvert]:
        return [layer for layer in m.get_layer("augmentation").layers if isinstance(layer, RandomInvert)]

    assert len(inverts(loaded)) == 1 and inverts(loaded)[0].probability == 0.5
    assert inverts(loaded)[0].seed == inverts(model)[0].seed is not None
    augmentation = loaded.get_layer("augmentation")
    assert not np.allclose(keras.ops.convert_to_numpy(augmentation(images, training=True)),
                           keras.ops.convert_to_numpy(augmentation(images, training=False)))
    assert keras.saving.get_registered_name(RandomInvert) == "visionflow>RandomInvert"


def test_placement_model_refuses_stateless_ops():
    with pytest.raises(ValueError, match=r"\[1\] gaussian_blur: not allowed for classifier with placement=model"):
        build_model_augmentation([{"op": "random_flip"}, {"op": "gaussian_blur", "max_sigma": 1.0}], seed=0)


def test_augmentation_trains_inside_fit():
    inputs = keras.Input((16, 16, 3))
    augmentation = build_model_augmentation([*RANDOM_OPS, {"op": "random_crop", "height": 12, "width": 12}], seed=4)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(augmentation(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(_images(n=8), np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, w) for b, w in zip(before, model.get_weights()))  # it learnt through the block
    images = _images(n=8)
    center = images[:, 2:14, 2:14]  # inference: no random op, the crop is a centre crop
    np.testing.assert_allclose(augmentation(images, training=False), center, atol=1e-6)
    assert not np.allclose(augmentation(images, training=True), center)  # training: the images change
