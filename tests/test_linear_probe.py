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

    from visionflow.classifier_training import fit_linear_probe, probe_standardisation
    from visionflow.models.classifier import build_classifier, split_classifier

    _, params = _probe_params(small_params)
    model = build_classifier(params.classifier, num_classes=5)
    features, labels = _pooled_training_features(model, flowers_cache)
    before = model.get_layer("head").layers[-1].get_weights()
    fit_linear_probe(model, flowers_cache, params, None)

    mean, scale = probe_standardisation(features)
    standardised = (features - mean) / scale
    expected = LogisticRegression(C=1.0, max_iter=10_000).fit(standardised, labels)
    _, head = split_classifier(model)
    dense = head.layers[-1]
    logits = features @ dense.get_weights()[0].astype(np.float64) + dense.get_weights()[1]
    np.testing.assert_allclose(logits, expected.decision_function(standardised), rtol=1e-3, atol=1e-3)
    assert not np.allclose(before[0], dense.get_weights()[0])
    # The whole model (backbone, pooling, dropout off, Dense) agrees with the regression on every training image.
    from visionflow import cache

    images = np.stack([ex["image"] for ex in cache.load_split(flowers_cache, "train").as_numpy_iterator()])
    np.testing.assert_array_equal(np.asarray(model(images, training=False)).argmax(-1),
                                  expected.predict(standardised))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stronger_penalty_gives_a_smaller_head(flowers_cache, small_params, seed):
    """On one backbone, only the penalty differs. The norm is taken on the standardised features' scale (the
    regression's own coefficients): a random backbone's pooled features are tiny, so its folded weights are huge."""
    import keras

    from visionflow.classifier_training import fit_linear_probe, probe_standardisation
    from visionflow.models.classifier import build_classifier

    keras.utils.set_random_seed(seed)
    model = build_classifier(_probe_params(small_params)[1].classifier, num_classes=5)
    _, scale = probe_standardisation(_pooled_training_features(model, flowers_cache)[0])
    norms = []
    for c in (0.01, 100.0):
        fit_linear_probe(model, flowers_cache, _probe_params(small_params, probe_c=c)[1], None)
        kernel = model.get_layer("head").layers[-1].get_weights()[0].astype(np.float64)
        norms.append(np.linalg.norm(kernel * scale[:, None]))
    assert norms[0] < norms[1] / 2, norms  # 1e4 times the penalty: at least half the coefficients


def test_the_standardisation_floors_channels_that_barely_vary():
    from visionflow.classifier_training import probe_standardisation

    features = np.stack([np.linspace(0, 1, 10), np.full(10, 3.0), 3.0 + 1e-9 * np.arange(10)], axis=1)
    mean, scale = probe_standardisation(features)
    np.testing.assert_allclose(mean, features.mean(axis=0))
    assert scale[0] == pytest.approx(features[:, 0].std()) and scale[1] == scale[2] == pytest.approx(1e-3 * scale.mean(), rel=1e-2)


def test_every_epoch_can_fine_tune_from_the_probe(flowers_cache, small_params, capsys):
    """fine_tune.epochs == epochs: no phase one; the run starts from the probe and trains the top blocks."""
    from visionflow.classifier_training import train_classifier

    _, params = _probe_params(small_params)
    model, history = train_classifier(flowers_cache, params)
    assert list(history["epoch"]) == [1, 2]
    assert "linear_probe fitted on 20 training examples" in capsys.readouterr().out


# phase two only; a phase one of 1 epoch, then phase two; WiSE-FT, whose probe start a resumed run fits again
@pytest.mark.parametrize("fine_tune_epochs, wise_alpha", [(2, 1.0), (1, 1.0), (2, 0.25)])
def test_a_crashed_probe_run_resumes_to_the_uninterrupted_model(flowers_cache, small_params, tmp_path,
                                                                fine_tune_epochs, wise_alpha):
    from visionflow.classifier_training import train_classifier

    raw, params = _probe_params(small_params, fine_tune_epochs=fine_tune_epochs, wise_alpha=wise_alpha)
    reference, ref_history = train_classifier(flowers_cache, params)
    folder = backup_dir("train_classifier", raw, [flowers_cache], root=tmp_path / "ckpt")
    with pytest.raises(_Crash):
        train_classifier(flowers_cache, params, callbacks=[_CrashAt(1)], backup_dir=folder)
    resumed, history = train_classifier(flowers_cache, params, backup_dir=folder)
    for a, b in zip(reference.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert history.round(6).equals(ref_history.round(6)) and list(history["epoch"]) == [1, 2]


def test_head_refit_fits_the_head_again_on_the_trained_backbone(flowers_cache, small_params, capsys):
    """classifier.head_refit: the run trains as without it; then only the head's Dense layer changes, to the
    regression fitted on the trained backbone's features (what fit_linear_probe gives on the trained model)."""
    from visionflow.classifier_training import fit_linear_probe, train_classifier

    _, plain = _probe_params(small_params)
    _, refit = _probe_params(small_params, head_refit=True)
    expected, _ = train_classifier(flowers_cache, plain)
    capsys.readouterr()
    trained_dense = [np.asarray(w).copy() for w in expected.get_layer("head").layers[-1].weights]
    fit_linear_probe(expected, flowers_cache, plain, None)
    model, history = train_classifier(flowers_cache, refit)
    assert list(history["epoch"]) == [1, 2]
    assert "classifier.head_refit fitted on 20 training examples" in capsys.readouterr().out
    for a, b in zip(expected.weights, model.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    refitted = model.get_layer("head").layers[-1].weights
    assert not np.allclose(trained_dense[0], np.asarray(refitted[0]))  # the refit moved the trained head


def test_wise_alpha_interpolates_between_the_probe_start_and_the_trained_weights(flowers_cache, small_params, capsys):
    """classifier.wise_alpha: the run trains as without it; then every float weight (batchnorm statistics too)
    is (1 - alpha) x its value at the probe start + alpha x its trained value."""
    import keras

    from visionflow.classifier_training import train_classifier

    class StartWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = self.model.get_weights()  # the probe start: fine_tune.epochs == epochs, one fit

    start = StartWeights()
    _, plain = _probe_params(small_params)
    trained, _ = train_classifier(flowers_cache, plain, callbacks=[start])
    capsys.readouterr()
    model, history = train_classifier(flowers_cache, _probe_params(small_params, wise_alpha=0.25)[1])
    assert list(history["epoch"]) == [1, 2]
    assert "weights set to 0.75 x the probe start + 0.25 x the trained ones" in capsys.readouterr().out
    moved = 0
    for s, t, w in zip(start.weights, trained.get_weights(), model.get_weights(), strict=True):
        expected = 0.75 * s + 0.25 * t if np.issubdtype(t.dtype, np.floating) else t
        np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-6)
        moved += not np.allclose(s, t)
    assert moved  # training moved some weights (the fine-tuned blocks, the head): the check above is not trivial


def test_head_refit_pretrained_refits_on_the_trained_and_a_frozen_pretrained_encoder(flowers_cache, small_params,
                                                                                      imagenet_weights, tmp_path):
    """classifier.head_refit_pretrained: the run trains as without it; the saved backbone then runs the trained
    encoder and an untouched copy of the ImageNet one side by side, and the head is the regression fitted on both
    pooled feature vectors, concatenated. The model saves, loads and scores at several test scales."""
    from sklearn.linear_model import LogisticRegression

    from visionflow.classifier_training import probe_standardisation, train_classifier
    from visionflow.config import parse_params
    from visionflow.inference import load_model, predict_probabilities
    from visionflow.models.classifier import build_backbone, split_classifier
    from visionflow.models.saving import save_model

    def imagenet(pretrained):
        raw, _ = _probe_params(small_params, head_refit=True)
        raw["classifier"].update(head_refit_pretrained=pretrained)
        raw["classifier"]["encoder"]["weights"] = "imagenet"
        return parse_params(raw, source="test")

    plain, both = imagenet(False), imagenet(True)
    expected, _ = train_classifier(flowers_cache, plain)
    model, history = train_classifier(flowers_cache, both)
    assert list(history["epoch"]) == [1, 2]
    trained_features, labels = _pooled_training_features(expected, flowers_cache)
    features, _ = _pooled_training_features(model, flowers_cache)
    channels = trained_features.shape[1]
    assert features.shape[1] == 2 * channels
    np.testing.assert_allclose(features[:, :channels], trained_features, rtol=1e-5, atol=1e-5)  # training as before
    backbone, head = split_classifier(model)
    pretrained = backbone.get_layer("pretrained_backbone")
    assert not pretrained.trainable
    fresh = build_backbone(both.classifier)
    for a, b in zip(fresh.weights, pretrained.weights, strict=True):  # the encoder as loaded, moving statistics too
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=b.path)
    trained = backbone.get_layer("trained_backbone")
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(fresh.weights, trained.weights))

    mean, scale = probe_standardisation(features)
    regression = LogisticRegression(C=1.0, max_iter=10_000).fit((features - mean) / scale, labels)
    kernel, bias = (w.astype(np.float64) for w in head.layers[-1].get_weights())
    np.testing.assert_allclose(features @ kernel + bias, regression.decision_function((features - mean) / scale),
                               rtol=1e-3, atol=1e-3)

    save_model(model, tmp_path / "classifier.keras")
    loaded = load_model(tmp_path / "classifier.keras")
    images = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(predict_probabilities(loaded, images, True, scales=(1.0, 2.0)),
                               predict_probabilities(model, images, True, scales=(1.0, 2.0)), rtol=1e-5, atol=1e-6)
