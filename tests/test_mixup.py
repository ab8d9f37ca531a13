"""classifier.mixup_alpha / cutmix_alpha: training batches are mixed with their reverse (blended or with a box pasted
in), targets mixed alike and one-hot."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_tiny_cache
from visionflow.config import ConfigError, parse_params, to_dict


@pytest.fixture(scope="module")
def flowers_cache(tmp_path_factory):
    return write_tiny_cache(tmp_path_factory.mktemp("mixup") / "cache", "label", (20, 5, 5))


def _params(small_params, **classifier):
    raw = to_dict(small_params)
    raw["classifier"].update(image_size=32, epochs=2, batch_size=8, filters=[4, 8], dense_units=8,
                             windows={**raw["classifier"]["windows"], "canvases": 0}, **classifier)
    return parse_params(raw, source="test")


def _batch(n=6, classes=3, size=4):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(n, size, size, 3)).astype("float32")
    return images, np.arange(n) % classes


def test_each_example_is_a_convex_mix_with_its_mirror_in_the_batch_and_so_is_its_target():
    import tensorflow as tf

    from visionflow.augment.mixup import MixUp

    images, labels = _batch()
    mixed, targets = (np.asarray(t) for t in MixUp(0.4, 3, seed=7).mix(tf.constant(5), images, labels))
    lam = targets[np.arange(6), labels]  # labels differ from their mirror's: 0 1 2 0 1 2 vs 2 1 0 2 1 0 ...
    lam = np.where(labels == labels[::-1], np.nan, lam)
    for i in np.flatnonzero(~np.isnan(lam)):
        np.testing.assert_allclose(mixed[i], lam[i] * images[i] + (1 - lam[i]) * images[::-1][i], atol=1e-6)
        assert targets[i, labels[::-1][i]] == pytest.approx(1 - lam[i], abs=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert targets.shape == (6, 3) and ((targets >= 0) & (targets <= 1)).all()
    assert len({round(float(v), 4) for v in lam[~np.isnan(lam)]}) > 1  # one proportion per example, not per batch


def test_the_proportions_follow_beta_and_depend_only_on_seed_and_batch_index():
    from visionflow.augment.mixup import MixUp

    mix = MixUp(0.2, 5, seed=3)
    lam = np.asarray(mix.weights(11, 20000))
    # Beta(0.2, 0.2): mean 1/2, variance a^2 / ((2a)^2 (2a + 1)) = 1 / (4 * 1.4); U-shaped, mostly near 0 or 1.
    assert lam.mean() == pytest.approx(0.5, abs=0.02)
    assert lam.var() == pytest.approx(1 / 5.6, rel=0.05)
    assert ((lam < 0.1) | (lam > 0.9)).mean() > 0.5
    np.testing.assert_array_equal(lam, np.asarray(mix.weights(11, 20000)))
    assert not np.array_equal(lam, np.asarray(mix.weights(12, 20000)))
    assert not np.array_equal(lam, np.asarray(MixUp(0.2, 5, seed=4).weights(11, 20000)))


def test_cutmix_pastes_one_box_of_the_mirror_and_mixes_the_targets_by_its_pixels():
    import tensorflow as tf

    from visionflow.augment.mixup import CutMix

    images, labels = _batch(n=8, size=16)
    mixed, targets = (np.asarray(t) for t in CutMix(1.0, 3, seed=7).mix(tf.constant(5), images, labels))
    mirror = images[::-1]
    areas = []
    for i in range(8):
        pasted = np.all(mixed[i] == mirror[i], axis=-1) & ~np.all(images[i] == mirror[i], axis=-1)
        assert np.all((mixed[i] == images[i]).all(axis=-1) | pasted)  # every pixel is x_i's or its mirror's
        rows, cols = np.flatnonzero(pasted.any(axis=1)), np.flatnonzero(pasted.any(axis=0))
        if len(rows):  # the pasted pixels fill one rectangle
            assert pasted[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and pasted.sum() == len(rows) * len(cols)
        share = pasted.mean()
        areas.append(share)
        if labels[i] != labels[::-1][i]:
            assert targets[i, labels[i]] == pytest.approx(1 - share, abs=1e-6)
            assert targets[i, labels[::-1][i]] == pytest.approx(share, abs=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert len({round(a, 4) for a in areas}) > 1 and max(areas) > 0  # one box per example, and boxes are pasted


def test_cutmix_boxes_cover_one_minus_lambda_on_average_and_depend_only_on_seed_and_batch_index():
    from visionflow.augment.mixup import CutMix

    mix = CutMix(1.0, 5, seed=3)
    boxes = np.asarray(mix.boxes(11, 64, 48, 4000))
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= [64, 48]) & (boxes[:, :2] <= boxes[:, 2:])).all()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (64 * 48)
    # Beta(1, 1): the unclipped area 1 - lam averages 1/2; clipping at the edges only removes some of it.
    assert 0.25 < area.mean() < 0.5
    np.testing.assert_array_equal(boxes, np.asarray(mix.boxes(11, 64, 48, 4000)))
    assert not np.array_equal(boxes, np.asarray(mix.boxes(12, 64, 48, 4000)))
    assert not np.array_equal(boxes, np.asarray(CutMix(1.0, 5, seed=4).boxes(11, 64, 48, 4000)))


@pytest.mark.parametrize("kind", ["MixUp", "CutMix"])
def test_a_resumed_stream_mixes_its_batches_as_the_uninterrupted_one_does(kind):
    import tensorflow as tf

    from visionflow.augment import mixup

    images, labels = _batch(n=24)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(6)
    mix = getattr(mixup, kind)(1.0, 3, seed=0)
    whole = list(mix.training(ds).as_numpy_iterator())
    resumed = list(mix.training(ds.skip(2), first_batch=2).as_numpy_iterator())
    for (a_x, a_y), (b_x, b_y) in zip(whole[2:], resumed, strict=True):
        np.testing.assert_array_equal(a_x, b_x)
        np.testing.assert_array_equal(a_y, b_y)
    val = list(mix.validation(ds).as_numpy_iterator())
    np.testing.assert_array_equal(val[0][0], images[:6])  # validation is not mixed, only one-hot
    np.testing.assert_array_equal(val[0][1], np.eye(3)[labels[:6]])


@pytest.mark.parametrize("alphas", [{"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}])
def test_training_with_mixed_batches_feeds_mixed_one_hot_targets_and_learns(flowers_cache, small_params, alphas):
    from visionflow.classifier_training import classifier_inputs, train_classifier

    params = _params(small_params, **alphas)
    train, val, _ = classifier_inputs(flowers_cache, params)
    images, targets = next(iter(train))
    assert targets.shape == (8, 5) and np.allclose(np.asarray(targets).sum(axis=1), 1.0)
    assert (np.asarray(targets).max(axis=1) < 1).any()  # some targets are mixtures
    assert next(iter(val))[1].shape[-1] == 5
    model, history = train_classifier(flowers_cache, params)
    assert history["loss"].notna().all() and history["accuracy"].between(0, 1).all()
    # "accuracy" is categorical on one-hot targets: the last epoch's val_accuracy is the model's own on val
    from visionflow import cache

    val_split = list(cache.load_split(flowers_cache, "val").as_numpy_iterator())
    logits = model.predict(np.stack([ex["image"] for ex in val_split]), verbose=0)
    right = (logits.argmax(axis=1) == np.array([ex["label"] for ex in val_split])).mean()
    assert history["val_accuracy"].iloc[-1] == pytest.approx(right, abs=1e-6)


def test_without_mixup_the_targets_stay_class_ids(flowers_cache, small_params):
    from visionflow.classifier_training import classifier_inputs

    train, val, _ = classifier_inputs(flowers_cache, _params(small_params, mixup_alpha=0.0))
    assert next(iter(train))[1].shape == (8,) and next(iter(val))[1].shape[1:] == ()


def test_a_negative_alpha_is_refused_by_name(small_params):
    with pytest.raises(ConfigError, match="classifier.mixup_alpha"):
        _params(small_params, mixup_alpha=-0.1)


def test_mixup_and_cutmix_together_are_refused_by_name(small_params):
    with pytest.raises(ConfigError, match="mixup_alpha 0.2 and cutmix_alpha 1: .*set one of them to 0"):
        _params(small_params, mixup_alpha=0.2, cutmix_alpha=1.0)
