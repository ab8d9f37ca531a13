"""classifier.weight_ema: the saved classifier holds the moving average of its weights over the training steps."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_tiny_cache
from visionflow.config import parse_params, to_dict


@pytest.fixture(scope="module")
def flowers_cache(tmp_path_factory):
    return write_tiny_cache(tmp_path_factory.mktemp("ema") / "cache", "label", (20, 5, 5))


def _params(small_params, weight_ema: float):
    raw = to_dict(small_params)
    raw["classifier"].update(image_size=32, epochs=2, batch_size=8, filters=[4, 8], dense_units=8,
                             weight_ema=weight_ema, windows={**raw["classifier"]["windows"], "canvases": 0})
    return parse_params(raw, source="test")


class _StepWeights:
    """Records the trainable weights after every optimizer step (before fit's end writes the average in)."""

    def __new__(cls, store: list):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                store.append([np.asarray(v) for v in self.model.trainable_variables])

        return Callback()


@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_the_saved_weights_are_the_moving_average_of_every_step(flowers_cache, small_params, momentum):
    from visionflow.classifier_training import train_classifier

    steps: list = []
    model, _ = train_classifier(flowers_cache, _params(small_params, momentum), callbacks=[_StepWeights(steps)])
    assert len(steps) == 2 * 3  # 2 epochs of ceil(20 / 8) batches
    expected = steps[0]  # Keras' average starts at the first step's weights
    for weights in steps[1:]:
        expected = [momentum * a + (1 - momentum) * w for a, w in zip(expected, weights)]
    for var, want, last in zip(model.trainable_variables, expected, steps[-1], strict=True):
        np.testing.assert_allclose(np.asarray(var), want, rtol=1e-5, atol=1e-6, err_msg=var.path)
    moved = max(float(np.abs(np.asarray(v) - last).max()) for v, last in zip(model.trainable_variables, steps[-1]))
    assert moved > 1e-4  # the model is the average, not the last step's weights


def test_without_weight_ema_the_saved_weights_are_the_last_steps(flowers_cache, small_params):
    from visionflow.classifier_training import train_classifier

    steps: list = []
    model, _ = train_classifier(flowers_cache, _params(small_params, 0.0), callbacks=[_StepWeights(steps)])
    for var, last in zip(model.trainable_variables, steps[-1], strict=True):
        np.testing.assert_array_equal(np.asarray(var), last, err_msg=var.path)
