"""classifier.head_init: linear_probe: the head starts as a converged logistic regression (LP-FT)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_tiny_cache
from tests.test_checkpoints import _Crash, _CrashAt
from visionflow.checkpoints import backup_dir
from visionflow.config import parse_params, to_dict


@pytest.fixture(scope="module")
def flowers_cache(tmp_path_factory):
    return write_tiny_cache(tmp_path_factory.mktemp("probe") / "cache", "label", (20, 5, 5))


def _probe_params(small_params, epochs=2, fine_tune_epochs=2, **classifier):
    raw = to_dict(small_params)
    raw["classifier"].update(image_size=32, epochs=epochs, batch_size=8, backbone="mobilenet_v2",
                             encoder={"weights": None, "alpha": 0.35, "trainable": False},
                             **{"head_init": "linear_probe", "probe_c": 1.0, **classifier}, windows={**raw["classifier"]["windows"], "canvases": 0},
                             fine_tune={"epochs": fine_tune_epochs, "from_block": 15, "learning_rate": 0.001})
    return raw, parse_params(raw, source="test")


def _pooled_training_features(model, cache_dir):
    import keras

    from visionflow import cache
    from visionflow.models.classifier import split_classifier

    backbone, _ = split_classifier(model)
    pooled = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    train = list(cache.load_split(cache_dir, "train").as_numpy_iterator())
    images = np.stack([ex["image"] for ex in train])
    return np.asarray(pooled(images, training=False), np.float64), np.array([ex["label"] for ex in train])


def test_the_probe_head_gives_the_logits_of_the_fitted_regression(flowers_cache, small_params):
    """The head's Dense layer, written from the standardised regression, scores every training image as
    scikit-learn's fitted model does (the standardisation is folded into its weights)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from visionflow.classifier_training import fit_linear_probe
    from visionflow.models.classifier import build_classifier, split_classifier

    _, params = _probe_params(small_params)
    model = build_classifier(params.classifier, num_classes=5)
    features, labels = _pooled_training_features(model, flowers_cache)
    before = model.get_layer("head").layers[-1].get_weights()
    fit_linear_probe(model, flowers_cache, params, None)

    scaler = StandardScaler().fit(features)
    expected = LogisticRegression(C=1.0, max_iter=10_000).fit(scaler.transform(features), labels)
    _, head = split_classifier(model)
    dense = head.layers[-1]
    logits = features @ dense.get_weights()[0].astype(np.float64) + dense.get_weights()[1]
    np.testing.assert_allclose(logits, expected.decision_function(scaler.transform(features)), rtol=1e-3, atol=1e-3)
    assert not np.allclose(before[0], dense.get_weights()[0])
    # The whole model (backbone, pooling, dropout off, Dense) agrees with the regression on every training image.
    from visionflow import cache

    images = np.stack([ex["image"] for ex in cache.load_split(flowers_cache, "train").as_numpy_iterator()])
    np.testing.assert_array_equal(np.asarray(model(images, training=False)).argmax(-1),
                                  expected.predict(scaler.transform(features)))


def test_a_stronger_penalty_gives_a_smaller_head(flowers_cache, small_params):
    from visionflow.classifier_training import fit_linear_probe
    from visionflow.models.classifier import build_classifier

    norms = []
    for c in (0.01, 100.0):
        _, params = _probe_params(small_params, probe_c=c)
        model = build_classifier(params.classifier, num_classes=5)
        fit_linear_probe(model, flowers_cache, params, None)
        norms.append(np.linalg.norm(model.get_layer("head").layers[-1].get_weights()[0]))
    assert norms[0] < norms[1] / 5, norms


def test_every_epoch_can_fine_tune_from_the_probe(flowers_cache, small_params, capsys):
    """fine_tune.epochs == epochs: no phase one; the run starts from the probe and trains the top blocks."""
    from visionflow.classifier_training import train_classifier

    _, params = _probe_params(small_params)
    model, history = train_classifier(flowers_cache, params)
    assert list(history["epoch"]) == [1, 2]
    assert "linear_probe fitted on 20 training examples" in capsys.readouterr().out


@pytest.mark.parametrize("fine_tune_epochs", [2, 1])  # phase two only; a phase one of 1 epoch, then phase two
def test_a_crashed_probe_run_resumes_to_the_uninterrupted_model(flowers_cache, small_params, tmp_path,
                                                                fine_tune_epochs):
    from visionflow.classifier_training import train_classifier

    raw, params = _probe_params(small_params, fine_tune_epochs=fine_tune_epochs)
    reference, ref_history = train_classifier(flowers_cache, params)
    folder = backup_dir("train_classifier", raw, [flowers_cache], root=tmp_path / "ckpt")
    with pytest.raises(_Crash):
        train_classifier(flowers_cache, params, callbacks=[_CrashAt(1)], backup_dir=folder)
    resumed, history = train_classifier(flowers_cache, params, backup_dir=folder)
    for a, b in zip(reference.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert history.round(6).equals(ref_history.round(6)) and list(history["epoch"]) == [1, 2]
