"""classifier.layer_decay: each MobileNetV2 stage trains at learning_rate x layer_decay ** its depth below the head."""

from __future__ import annotations

import numpy as np
import pytest

from visionflow.config import shipped_params
from visionflow.models.optimizers import STEM_DEPTH, LayerDecayAdam, mobilenet_v2_depth


def test_depth_counts_the_stages_from_the_head_down():
    assert mobilenet_v2_depth("logits/kernel") == 0
    assert mobilenet_v2_depth("Conv_1/kernel") == mobilenet_v2_depth("Conv_1_bn/gamma") == 1
    assert mobilenet_v2_depth("block_16_project/kernel") == 2
    assert mobilenet_v2_depth("block_1_expand_BN/beta") == 17
    assert mobilenet_v2_depth("expanded_conv_depthwise/depthwise_kernel") == 18
    assert mobilenet_v2_depth("Conv1/kernel") == mobilenet_v2_depth("bn_Conv1/gamma") == STEM_DEPTH


def _classifier(layer_decay: float, learning_rate: float):
    from visionflow.models.classifier import build_classifier, compile_classifier

    params = shipped_params({"classifier": {"backbone": "mobilenet_v2", "image_size": 32, "encoder": {"alpha": 0.35},
                                            "lr_schedule": "constant", "learning_rate": learning_rate, "dropout": 0.0,
                                            "layer_decay": layer_decay}})
    model = build_classifier(params.classifier, num_classes=3)
    compile_classifier(model, params.classifier)
    return model


def test_a_step_moves_each_stage_by_layer_decay_to_its_depth_times_adams_step():
    """Adam's step is linear in its rate, so from the same weights and batch, each weight moves layer_decay ** depth
    times as far as with Keras' own Adam: the head as far, the stem 0.8 ** 19 (about 1/70) as far."""
    rng = np.random.default_rng(0)
    images, labels = rng.random((8, 32, 32, 3), dtype=np.float32), rng.integers(0, 3, 8)
    plain, decayed = _classifier(1.0, learning_rate=1e-2), _classifier(0.8, learning_rate=1e-2)
    assert not isinstance(plain.optimizer, LayerDecayAdam) and isinstance(decayed.optimizer, LayerDecayAdam)
    decayed.set_weights(plain.get_weights())
    before = [np.asarray(v) for v in plain.trainable_variables]
    for model in (plain, decayed):
        model.train_on_batch(images, labels)
    depths = set()
    for old, a, b in zip(before, plain.trainable_variables, decayed.trainable_variables, strict=True):
        depth = mobilenet_v2_depth(a.path)
        depths.add(depth)
        step, decayed_step = np.asarray(a) - old, np.asarray(b) - old
        assert np.abs(step).max() > 1e-5, a.path  # Adam moved it (by up to the rate, 1e-2)
        np.testing.assert_allclose(decayed_step, 0.8 ** depth * step, rtol=0.01, atol=1e-6, err_msg=a.path)
    assert depths == set(range(STEM_DEPTH + 1))  # every stage of MobileNetV2 and the head was checked


def test_the_saved_classifier_reloads_with_its_optimizer(tmp_path):
    import keras

    from visionflow.models.saving import save_model

    model = _classifier(0.7, learning_rate=1e-3)
    model.train_on_batch(np.zeros((2, 32, 32, 3), np.float32), np.array([0, 1]))  # the optimizer's state exists
    save_model(model, tmp_path / "classifier.keras")
    loaded = keras.models.load_model(tmp_path / "classifier.keras")  # compiled: the optimizer's config round-trips
    assert isinstance(loaded.optimizer, LayerDecayAdam)
    assert loaded.optimizer.layer_decay == 0.7
