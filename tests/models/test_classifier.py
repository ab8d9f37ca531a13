"""Classifier: backbone + head split, any-size backbone, ImageNet weights, save/load, compile."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from visionflow.models.classifier import build_classifier, compile_classifier, feature_stride, split_classifier

NUM_CLASSES = 5


def _cfg(small_params, **changes):
    cfg = small_params.classifier  # image_size 64, small_cnn 16/32/64
    encoder = changes.pop("encoder", {})
    return dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, **encoder), **changes)


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


@pytest.mark.parametrize(("backbone", "stride"), [("small_cnn", 8), ("mobilenet_v2", 32)])
def test_split_classifier_reproduces_the_model_and_the_backbone_takes_any_size(small_params, backbone, stride):
    keras.utils.set_random_seed(0)
    cfg = _cfg(small_params, backbone=backbone)
    size = cfg.image_size
    model = build_classifier(cfg, NUM_CLASSES)
    x = _images(2, size)
    logits = model(x, training=False)
    assert model.name == "classifier"
    assert tuple(logits.shape) == (2, NUM_CLASSES)

    backbone_model, head = split_classifier(model)
    assert backbone_model is model.get_layer("backbone") and head is model.get_layer("head")
    assert feature_stride(backbone_model) == stride
    assert tuple(head.input.shape[1:3]) == (size // stride, size // stride)
    np.testing.assert_allclose(head(backbone_model(x), training=False), logits, rtol=1e-5, atol=1e-5)

    # Fully convolutional: a 2S x 2S image gives a feature map twice as large on each side.
    big = backbone_model(_images(1, 2 * size, seed=1), training=False)
    assert tuple(big.shape[1:3]) == (2 * size // stride, 2 * size // stride)


def test_small_cnn_follows_the_config(small_params):
    cfg = _cfg(small_params, filters=(8, 12), dense_units=24, dropout=0.4)
    backbone, head = split_classifier(build_classifier(cfg, 3))
    convs = [layer.filters for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [8, 12]
    assert feature_stride(backbone) == 4
    assert [layer.units for layer in head.layers if isinstance(layer, keras.layers.Dense)] == [24, 3]
    assert [layer.rate for layer in head.layers if isinstance(layer, keras.layers.Dropout)] == [0.4]


def test_too_many_poolings_for_the_image_size_is_a_clear_error(small_params):
    cfg = _cfg(small_params, image_size=32, filters=(4, 4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match=r"classifier.image_size: 32 is too small for 6 pooling steps.*at least 64"):
        build_classifier(cfg, NUM_CLASSES)


def test_frozen_mobilenet_backbone_trains_only_the_head(small_params):
    cfg = _cfg(small_params, backbone="mobilenet_v2", encoder={"trainable": False})
    model = build_classifier(cfg, NUM_CLASSES)
    backbone, head = split_classifier(model)
    assert backbone.trainable_weights == []
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in head.trainable_weights}
    assert head.trainable_weights


def test_imagenet_mobilenet_backbone_has_real_weights_at_any_size(small_params, imagenet_weights):
    cfg = _cfg(small_params, backbone="mobilenet_v2", image_size=96, encoder={"weights": "imagenet"})
    backbone, _ = split_classifier(build_classifier(cfg, NUM_CLASSES))
    reference = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights="imagenet", alpha=cfg.encoder.alpha
    )
    base = backbone.get_layer("mobilenet_v2")
    for ours, theirs in zip(base.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # Same features as the reference on an SxS image (after the same [-1, 1] scaling) ...
    x = _images(1, 96)
    np.testing.assert_allclose(backbone(x), reference(2 * x - 1), rtol=1e-4, atol=1e-4)
    # ... and the backbone still takes a larger image.
    assert tuple(backbone(_images(1, 192)).shape) == (1, 6, 6, reference.output.shape[-1])


def test_save_load_round_trip_keeps_predictions_and_split(small_params, tmp_path):
    keras.utils.set_random_seed(0)
    cfg = _cfg(small_params, image_size=32)
    augmentation = keras.layers.RandomFlip("horizontal", seed=3, name="augment")
    model = build_classifier(cfg, NUM_CLASSES, augmentation=augmentation)
    assert model.get_layer("augment") is augmentation
    x = _images(3, 32)
    path = tmp_path / "classifier.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    expected = model(x, training=False)
    np.testing.assert_allclose(loaded(x, training=False), expected, rtol=1e-5, atol=1e-6)
    backbone, head = split_classifier(loaded)
    np.testing.assert_allclose(head(backbone(x)), expected, rtol=1e-5, atol=1e-6)
    assert feature_stride(backbone) == 8


def test_split_rejects_a_model_without_backbone_and_head():
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ValueError, match="'plain' has no sub-models named 'backbone' and 'head'.*build_classifier"):
        split_classifier(plain)


def test_compile_classifier_trains(small_params):
    keras.utils.set_random_seed(0)
    cfg = _cfg(small_params, image_size=32, learning_rate=0.01, lr_schedule="constant")
    model = build_classifier(cfg, NUM_CLASSES)
    compile_classifier(model, cfg)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss.get_config()["from_logits"] is True
    x, y = _images(8, 32), np.arange(8) % NUM_CLASSES
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_cosine_schedule_decays_to_zero_over_the_phase(small_params):
    cfg = _cfg(small_params, image_size=32, learning_rate=0.01, lr_schedule="cosine", epochs=3)
    model = build_classifier(cfg, NUM_CLASSES)
    with pytest.raises(ValueError, match="classifier.lr_schedule: cosine needs the batches per epoch"):
        compile_classifier(model, cfg)
    compile_classifier(model, cfg, steps_per_epoch=4)
    schedule = model.optimizer._learning_rate  # noqa: SLF001 - the schedule object Keras keeps
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay) and schedule.decay_steps == 12
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(6)) == pytest.approx(0.005, abs=1e-6)  # halfway through 3 epochs x 4 steps
    assert float(schedule(12)) == pytest.approx(0.0, abs=1e-7)


def test_saved_model_files_are_byte_reproducible_and_load(tmp_path):
    # Same seed and config in two fresh processes (as two pipeline runs) -> the same bytes: no save time,
    # no per-process object ids. (Within one long process Keras' layer-name counters differ, so two fresh
    # processes are the comparison that matters.)
    import hashlib
    import subprocess
    import sys

    script = (
        "import keras, sys; from visionflow.config import shipped_params; "
        "from visionflow.models.classifier import build_classifier; from visionflow.models.saving import save_model; "
        "keras.utils.set_random_seed(0); "
        "cfg = shipped_params({'classifier': {'image_size': 32}}).classifier; "
        "save_model(build_classifier(cfg, num_classes=5), sys.argv[1])"
    )
    for name in ("a.keras", "b.keras"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True, capture_output=True)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.keras", "b.keras")]
    assert digest[0] == digest[1]
    a, b = (keras.models.load_model(tmp_path / n, safe_mode=True) for n in ("a.keras", "b.keras"))
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    assert split_classifier(a)[0].name == "backbone"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras"]  # no temp files left
