"""The optional losses (Dice term, label smoothing) and test-time flip averaging."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from visionflow.inference import load_model, predict_probabilities
from visionflow.models.classifier import build_classifier, compile_classifier
from visionflow.models.losses import CrossEntropyDice, SmoothedSparseCrossEntropy
from visionflow.models.segmentation import build_unet, compile_segmentation


def _confident(ids: np.ndarray, k: int = 3, scale: float = 8.0) -> np.ndarray:
    return (np.eye(k)[ids] * 2 - 1).astype("float32") * scale  # logits strongly for `ids`


def test_dice_term_off_is_pixel_cross_entropy_and_on_punishes_a_missed_thin_class_more():
    rng = np.random.default_rng(0)
    truth = np.zeros((2, 16, 16), np.int32)
    truth[:, 8:] = 1
    truth[:, 7:9] = 2  # a thin "border" band of 32 pixels between two large regions
    logits = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    plain = keras.losses.sparse_categorical_crossentropy(truth, logits, from_logits=True).numpy()
    np.testing.assert_allclose(CrossEntropyDice(0.0, 3).call(truth, logits).numpy(), plain, rtol=1e-5)
    np.testing.assert_allclose(CrossEntropyDice(1.0, 3).call(truth[..., None], logits).numpy().shape, (2, 16, 16))

    missed_border, missed_bulk = truth.copy(), truth.copy()
    missed_border[truth == 2] = 1  # the same 64 pixels wrong either way
    missed_bulk[:, 0:2, :] = 1
    loss = CrossEntropyDice(1.0, 3)
    border_cost = float(np.mean(loss(truth, _confident(missed_border))))
    bulk_cost = float(np.mean(loss(truth, _confident(missed_bulk))))
    plain_border = float(np.mean(CrossEntropyDice(0.0, 3)(truth, _confident(missed_border))))
    plain_bulk = float(np.mean(CrossEntropyDice(0.0, 3)(truth, _confident(missed_bulk))))
    assert plain_border == pytest.approx(plain_bulk, rel=1e-4)  # cross-entropy alone counts pixels
    assert border_cost > bulk_cost + 0.2  # Dice: losing a whole class costs a third of the term
    assert float(np.mean(loss(truth, _confident(truth)))) < 1e-2


def test_label_smoothing_matches_smoothed_one_hot_cross_entropy():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], "float32")
    labels = np.array([0, 2])
    off = SmoothedSparseCrossEntropy(0.0, 3)(labels, logits).numpy()
    assert off == pytest.approx(float(np.mean(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))), rel=1e-5)
    targets = np.eye(3)[labels] * 0.9 + 0.1 / 3
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert SmoothedSparseCrossEntropy(0.1, 3)(labels[:, None], logits).numpy() == pytest.approx(
        float(np.mean(-(targets * log_p).sum(-1))), rel=1e-5)


def test_models_compiled_with_the_optional_losses_save_and_load(tmp_path, small_params):
    seg = dataclasses.replace(small_params.segmentation, dice_weight=0.5)
    unet = build_unet(seg)
    compile_segmentation(unet, seg, steps_per_epoch=1)
    assert isinstance(unet.loss, CrossEntropyDice) and unet.loss.dice_weight == 0.5
    cls = dataclasses.replace(small_params.classifier, label_smoothing=0.1)
    classifier = build_classifier(cls, num_classes=5)
    compile_classifier(classifier, cls, steps_per_epoch=1)
    for model, name in ((unet, "seg.keras"), (classifier, "cls.keras")):
        model.save(tmp_path / name)
        reloaded = keras.models.load_model(tmp_path / name, safe_mode=True)  # compiled: the loss deserialises
        assert type(reloaded.loss) is type(model.loss)
        x = np.random.default_rng(1).random((1, *model.input_shape[1:]), "float32")
        np.testing.assert_allclose(load_model(tmp_path / name).predict(x, verbose=0), model.predict(x, verbose=0),
                                   atol=1e-5)


def test_test_time_flip_makes_predictions_mirror_symmetric():
    x = np.random.default_rng(2).random((2, 8, 8, 3), "float32")
    mirror = x[:, :, ::-1]
    inputs = keras.Input((8, 8, 3))
    per_pixel = keras.Model(inputs, keras.layers.Conv2D(3, (1, 3), padding="same",
                                                        kernel_initializer=keras.initializers.GlorotUniform(3))(inputs))
    plain = predict_probabilities(per_pixel, x)
    assert not np.allclose(predict_probabilities(per_pixel, mirror)[:, :, ::-1], plain, atol=1e-3)  # not symmetric
    averaged = predict_probabilities(per_pixel, x, flip=True)
    np.testing.assert_allclose(predict_probabilities(per_pixel, mirror, flip=True)[:, :, ::-1], averaged, atol=1e-6)
    np.testing.assert_allclose(averaged.sum(-1), 1.0, atol=1e-5)

    flat = keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(4))(keras.layers.Flatten()(inputs))
    classifier = keras.Model(inputs, flat)
    assert not np.allclose(predict_probabilities(classifier, mirror), predict_probabilities(classifier, x), atol=1e-3)
    np.testing.assert_allclose(predict_probabilities(classifier, mirror, flip=True),
                               predict_probabilities(classifier, x, flip=True), atol=1e-6)
