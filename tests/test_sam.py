"""classifier.sam_rho: sharpness-aware minimisation steps along the gradient taken at the perturbed weights."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_tiny_cache
from visionflow.config import ConfigError, parse_params, shipped_params, to_dict

RHO = 0.5


def _sgd_classifier(**overrides):
    """A small CNN classifier with plain SGD at 0.1 (no momentum), and its SAM trainer sharing its weights."""
    from visionflow.models.classifier import build_classifier, compile_classifier
    from visionflow.models.sam import SharpnessAware

    params = shipped_params({"classifier": {"image_size": 32, "dropout": 0.0, "learning_rate": 0.1,
                                            "optimizer": "sgd", "momentum": 0.0, "lr_schedule": "constant"}})
    model = build_classifier(params.classifier, num_classes=3, **overrides)
    trainer = SharpnessAware(model.inputs, model.outputs, rho=RHO, name=model.name)
    compile_classifier(trainer, params.classifier)
    return model, trainer


def test_a_step_descends_along_the_gradient_at_the_perturbed_weights():
    """One SGD step at rate 0.1 moves w by -0.1 x grad(w + rho g / ||g||), g = grad(w): computed here by hand."""
    import keras
    import tensorflow as tf

    model, trainer = _sgd_classifier()
    rng = np.random.default_rng(0)
    images, labels = rng.random((4, 32, 32, 3), dtype=np.float32), np.array([0, 1, 2, 1])
    start = [np.asarray(v) for v in model.trainable_variables]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def gradient(weights):
        for var, w in zip(model.trainable_variables, weights):
            var.assign(w)
        with tf.GradientTape() as tape:
            value = loss(labels, model(images, training=True))
        return [np.asarray(g) for g in tape.gradient(value, model.trainable_variables)]

    plain = gradient(start)
    norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in plain))
    sharp = gradient([w + RHO * g / norm for w, g in zip(start, plain)])
    for var, w in zip(model.trainable_variables, start):
        var.assign(w)
    trainer.train_on_batch(images, labels)
    far = 0
    for var, w, g, g0 in zip(model.trainable_variables, start, sharp, plain, strict=True):
        np.testing.assert_allclose(np.asarray(var), w - 0.1 * g, rtol=0, atol=1e-6, err_msg=var.path)
        far += np.abs(np.asarray(var) - (w - 0.1 * g0)).max() > 1e-3  # not plain SGD's step
    assert far == len(start)


def test_both_passes_of_a_step_see_one_augmented_batch(monkeypatch):
    from visionflow.augment import build_model_augmentation

    ops = shipped_params().augment.classifier
    model, trainer = _sgd_classifier(augmentation=build_model_augmentation(ops, seed=0))
    trainer.run_eagerly = True  # count the calls of a real step, not of a trace
    calls = {"augmentation": 0, "backbone": 0}
    for name in calls:
        layer, call = model.get_layer(name), model.get_layer(name).call

        def counted(*args, _name=name, _call=call, **kwargs):
            calls[_name] += 1
            return _call(*args, **kwargs)

        monkeypatch.setattr(layer, "call", counted)
    trainer.train_on_batch(np.zeros((2, 32, 32, 3), np.float32), np.array([0, 1]))
    assert calls == {"augmentation": 1, "backbone": 2}


@pytest.fixture(scope="module")
def flowers_cache(tmp_path_factory):
    return write_tiny_cache(tmp_path_factory.mktemp("sam") / "cache", "label", (20, 5, 5))


def _params(small_params, sam_rho: float):
    raw = to_dict(small_params)
    raw["classifier"].update(image_size=32, epochs=2, batch_size=8, filters=[4, 8], dense_units=8, sam_rho=sam_rho,
                             windows={**raw["classifier"]["windows"], "canvases": 0})
    raw["augment"]["placement"] = "model"
    return parse_params(raw, source="test")


def test_train_classifier_with_sam_returns_the_plain_classifier_trained_otherwise(flowers_cache, small_params,
                                                                                   tmp_path):
    from visionflow.classifier_training import train_classifier

    sam, history = train_classifier(flowers_cache, _params(small_params, 0.05), backup_dir=tmp_path / "backup")
    plain, _ = train_classifier(flowers_cache, _params(small_params, 0.0))
    assert type(sam) is type(plain)  # the saved model is the classifier, not SAM's trainer
    assert sam.name == "classifier" and len(history) == 2
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(sam.trainable_variables, plain.trainable_variables, strict=True))
    assert moved > 1e-4  # same seed and data: SAM's steps differ from plain ones


def test_sam_on_several_devices_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="classifier.sam_rho: 0.05 trains on one device"):
        shipped_params({"classifier": {"sam_rho": 0.05}, "train": {"distribution": "mirrored"}})


def test_a_step_whose_scaled_gradient_overflows_leaves_the_weights_as_they_were():
    """Under mixed precision, Keras' LossScaleOptimizer skips a step whose scaled gradient is not finite; SAM must not
    have moved the weights by that gradient first (inf x 0 would leave NaN in them)."""
    import keras

    model, trainer = _sgd_classifier()
    trainer.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0**127),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = [np.asarray(v) for v in model.trainable_variables]
    bright = 1e4 * np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)  # gradients far above 1
    trainer.train_on_batch(bright, np.array([0, 1, 2, 1]))
    assert float(trainer.optimizer.dynamic_scale) == 2.0**126  # the step overflowed: skipped, and the scale halved
    for var, w in zip(model.trainable_variables, start, strict=True):
        np.testing.assert_array_equal(np.asarray(var), w, err_msg=var.path)
