"""classifier.optimizer: sgd trains the classifier with SGD and Nesterov momentum (classifier.momentum)."""

from __future__ import annotations

import numpy as np

from visionflow.config import shipped_params


def _classifier(optimizer: str, momentum: float = 0.9):
    from visionflow.models.classifier import build_classifier, compile_classifier

    params = shipped_params({"classifier": {"backbone": "mobilenet_v2", "image_size": 32, "encoder": {"alpha": 0.35},
                                            "lr_schedule": "constant", "learning_rate": 1e-2, "dropout": 0.0,
                                            "optimizer": optimizer, "momentum": momentum}})
    model = build_classifier(params.classifier, num_classes=3)
    compile_classifier(model, params.classifier)
    return model


def test_the_shipped_optimizer_is_adam():
    import keras

    assert shipped_params().classifier.optimizer == "adam"
    assert type(_classifier("adam").optimizer) is keras.optimizers.Adam


def test_a_first_nesterov_step_is_one_plus_momentum_times_the_plain_gradient_step():
    """From zero velocity, Nesterov's first step is -(1 + momentum) x rate x gradient, so from the same weights and
    batch each weight moves 1.9 times as far at momentum 0.9 as at momentum 0 (plain SGD, -rate x gradient); Keras'
    SGD without Nesterov would move it exactly as far."""
    import keras

    rng = np.random.default_rng(0)
    images, labels = rng.random((8, 32, 32, 3), dtype=np.float32), rng.integers(0, 3, 8)
    nesterov, plain = _classifier("sgd", momentum=0.9), _classifier("sgd", momentum=0.0)
    assert isinstance(nesterov.optimizer, keras.optimizers.SGD) and nesterov.optimizer.nesterov
    assert nesterov.optimizer.momentum == 0.9
    plain.set_weights(nesterov.get_weights())
    before = [np.asarray(v) for v in nesterov.trainable_variables]
    for model in (nesterov, plain):
        model.train_on_batch(images, labels)
    moved = 0
    for old, a, b in zip(before, nesterov.trainable_variables, plain.trainable_variables, strict=True):
        step, plain_step = np.asarray(a) - old, np.asarray(b) - old
        np.testing.assert_allclose(step, 1.9 * plain_step, rtol=0.01, atol=5e-7, err_msg=a.path)  # float32 ulps near 1
        moved += np.abs(plain_step).max() > 1e-6
    assert moved > len(before) // 2  # most weights had a gradient: the comparison is not between zeros


def test_the_saved_classifier_reloads_with_its_optimizer(tmp_path):
    import keras

    from visionflow.models.saving import save_model

    model = _classifier("sgd", momentum=0.8)
    model.train_on_batch(np.zeros((2, 32, 32, 3), np.float32), np.array([0, 1]))
    save_model(model, tmp_path / "classifier.keras")
    loaded = keras.models.load_model(tmp_path / "classifier.keras")
    assert isinstance(loaded.optimizer, keras.optimizers.SGD)
    assert (loaded.optimizer.momentum, loaded.optimizer.nesterov) == (0.8, True)
