"""The background class: its training windows (training split only), and detection that says "nothing here"."""

from __future__ import annotations

import dataclasses
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionflow import cache
from visionflow.config import WindowsConfig
from visionflow.detection import STRATEGIES, build_canvases, run_detection, strategy_scores, training_windows
from visionflow.evaluation import class_predictions
from visionflow.models.classifier import BACKGROUND, build_classifier, has_background, output_names

NAMES = ("a", "b", "c")


def _split(colour, n: int = 6, size: int = 32) -> np.ndarray:
    """n images of one colour with a little noise: (n, size, size, 3)."""
    rng = np.random.default_rng(0)
    return np.clip(np.asarray(colour, np.float32) + 0.05 * rng.standard_normal((n, size, size, 3)), 0, 1).astype(
        np.float32)


WINDOWS = WindowsConfig(canvases=6, objects=2, background=2, partial=2, object_iou=0.6, partial_iou=0.4)


def test_training_windows_are_labelled_by_their_overlap_with_the_objects(small_params):
    # Twelve flat-coloured source images, one colour each, so a window's pixels say which objects it shows.
    cfg, size = small_params.detection, small_params.classifier.image_size  # 128-px canvas, 64-px windows, x2
    colours = np.array([(r, g, b) for r in (0.05, 0.95) for g in (0.05, 0.5, 0.95) for b in (0.05, 0.95)], np.float32)
    images = np.repeat(colours[:, None, None], 32, axis=1).repeat(32, axis=2)  # (12, 32, 32, 3)
    labels = np.arange(12) % 3
    found = training_windows(images, labels, NAMES, cfg, WINDOWS, size, seed=3)
    assert found.images.shape == (36, 64, 64, 3) and found.images.dtype == np.float16
    assert found.counts == {"objects": 12, "background": 12, "partial": 12} and found.background_label == 3
    assert np.bincount(found.labels, minlength=4)[3] == 24
    for window, label in zip(found.images.astype(np.float32), found.labels):
        shown = np.array([(np.abs(window - c).max(axis=-1) < 0.02).mean() for c in colours])  # share of each image
        if label == 3:  # nothing, or a part: IoU <= 0.4 with a 26-38 px object lets it fill < 3/4 of a 32-px window
            assert shown.max() < 0.75
        else:  # IoU >= 0.6: the object's box fills >= 60% of the window, less what a later object covers of it
            assert shown.max() > 0.4 and labels[shown.argmax()] == label
    again = training_windows(images, labels, NAMES, cfg, WINDOWS, size, seed=3)
    np.testing.assert_array_equal(found.images, again.images)
    np.testing.assert_array_equal(found.labels, again.labels)
    other = training_windows(images, labels, NAMES, cfg, WINDOWS, size, seed=4)
    assert not np.array_equal(found.images, other.images)


def test_training_canvases_are_not_the_evaluation_canvases(small_params, monkeypatch):
    import visionflow.detection.training_set as module

    cfg, size = small_params.detection, small_params.classifier.image_size
    images, labels = np.random.default_rng(0).random((9, 32, 32, 3), dtype=np.float32), np.arange(9) % 3
    built = []
    real = module.build_canvases
    monkeypatch.setattr(module, "build_canvases", lambda *a, **kw: built.append(real(*a, **kw)) or built[-1])
    training_windows(images, labels, NAMES, cfg, WINDOWS, size, seed=5)
    evaluation = build_canvases(images, labels, dataclasses.replace(cfg, num_images=WINDOWS.canvases), seed=5,
                                class_names=NAMES)  # what evaluate_detection builds with the same seed
    (training,) = built
    for a, b, x, y in zip(training.ground_truth, evaluation.ground_truth, training.images, evaluation.images):
        assert not np.array_equal(a.boxes, b.boxes) and not np.array_equal(x, y)  # other layouts, other pixels


def test_window_examples_come_from_the_training_split_only(small_params, tmp_path):
    from visionflow.classifier_training import window_examples

    def split(colour):
        images = _split(colour, n=9, size=64)
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": np.arange(9, dtype=np.int64) % 3})

    splits = {"train": split((0.8, 0.2, 0.1)), "val": split((0.1, 0.8, 0.1)), "test": split((0.1, 0.2, 0.8))}
    folder = tmp_path / "cache"
    cache.write_cache(splits, folder, {"class_names": list(NAMES), "image_size": 64}, num_shards=1)
    params = dataclasses.replace(small_params, classifier=dataclasses.replace(small_params.classifier, windows=WINDOWS))
    found = window_examples(folder, params)
    objects = found.images[found.labels < 3].astype(np.float32)
    assert objects[..., 0].mean() > 0.5 > objects[..., 2].mean()  # red objects of the training split, not blue
    shutil.rmtree(folder / "test")  # the test and val splits cannot be read any more: nothing changes
    shutil.rmtree(folder / "val")
    np.testing.assert_array_equal(window_examples(folder, params).images, found.images)
    off = dataclasses.replace(small_params, classifier=dataclasses.replace(
        small_params.classifier, windows=dataclasses.replace(WINDOWS, canvases=0)))
    assert window_examples(folder, off) is None


def _biased_classifier(small_params, probabilities) -> keras.Model:
    """A small_cnn with background whose every window scores `probabilities` (classes a, b, c, background)."""
    keras.utils.set_random_seed(0)
    model = build_classifier(small_params.classifier, num_classes=len(NAMES), background=True)
    logits = model.get_layer("head").layers[-1]
    kernel, _ = logits.get_weights()
    logits.set_weights([np.zeros_like(kernel), np.log(np.asarray(probabilities, np.float32))])
    return model


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_windows_whose_best_class_is_background_give_no_box(small_params, strategy):
    cfg = dataclasses.replace(small_params.detection, score_threshold=0.3)
    size = small_params.classifier.image_size
    canvas = np.full((1, 128, 128, 3), 0.45, np.float32)  # pure background, every window alike
    # "a" scores 0.4, above the threshold, but background scores 0.5: no box anywhere.
    model = _biased_classifier(small_params, (0.4, 0.05, 0.05, 0.5))
    assert has_background(model) and output_names(model, NAMES) == [*NAMES, BACKGROUND]
    scores = strategy_scores(model, canvas, cfg, size, strategies=(strategy,))[strategy]
    np.testing.assert_allclose(scores[0], np.tile([0.4, 0.05, 0.05, 0.5], (49, 1)), atol=1e-5)
    detections, _ = run_detection(model, canvas, cfg, size, strategy=strategy, progress=False)
    assert len(detections[0]) == 0
    # The same windows with "a" above background: boxes of "a", scored with its probability, never background.
    model = _biased_classifier(small_params, (0.5, 0.05, 0.05, 0.4))
    detections, _ = run_detection(model, canvas, dataclasses.replace(cfg, score_threshold=0.0, nms_iou=1.0), size,
                                  strategy=strategy, progress=False)
    assert len(detections[0]) == 49 * 3  # every window, every object class: none for background
    assert set(detections[0].classes.tolist()) == {0, 1, 2}
    # Two scores only, up to float rounding: the windows are alike, but summation order differs between CPUs.
    np.testing.assert_allclose(np.unique(np.round(detections[0].scores, 4)), [0.05, 0.5], atol=1e-5)


def test_a_model_without_background_has_no_background_output(small_params):
    model = build_classifier(small_params.classifier, num_classes=len(NAMES))
    assert not has_background(model) and output_names(model, NAMES) == list(NAMES)
    with pytest.raises(ValueError, match=r"3 outputs for 4 classes \(a, b, c, d\)"):
        output_names(model, (*NAMES, "d"))


def test_class_predictions_never_name_background():
    probs = np.array([[0.1, 0.2, 0.1, 0.6], [0.5, 0.2, 0.1, 0.2], [0.3, 0.05, 0.05, 0.6]])
    pred, background = class_predictions(probs, 3)
    np.testing.assert_array_equal(pred, [1, 0, 0])  # the best flower, whatever background scored
    np.testing.assert_array_equal(background, [True, False, True])
    pred, background = class_predictions(probs[:, :3], 3)  # a model without background
    np.testing.assert_array_equal(pred, [1, 0, 0])
    assert not background.any()
    with pytest.raises(ValueError, match=r"expected \(N, 2\) or \(N, 3\)"):
        class_predictions(probs, 2)


@pytest.mark.slow
def test_a_trained_background_class_removes_the_boxes_on_empty_canvases(small_params):
    """Trained for real: stripes of three orientations, plus training windows of canvases of them."""
    from tests.detection.test_end_to_end import _stripes
    from visionflow.detection.canvas import background, colour_stats, noise_cells
    from visionflow.models import compile_classifier

    cfg = dataclasses.replace(small_params.classifier, image_size=32, filters=(8, 16), dense_units=32, dropout=0.0,
                              epochs=4, batch_size=32, lr_schedule="constant")
    det = dataclasses.replace(small_params.detection, num_images=6, canvas_size=64, upscale=1.0, stride=8,
                              min_objects=1, max_objects=2, min_object_scale=0.45, max_object_scale=0.55)
    rng = np.random.default_rng(0)
    train_x, train_y = _stripes(rng, 300, 32)
    test_x, test_y = _stripes(rng, 30, 32)
    names = ("horizontal", "vertical", "diagonal")
    found = training_windows(train_x, train_y, names, det, dataclasses.replace(WINDOWS, canvases=150), 32, seed=0)
    keras.utils.set_random_seed(0)
    model = build_classifier(cfg, num_classes=3, background=True)
    compile_classifier(model, cfg)
    model.fit(np.concatenate([train_x, found.images.astype(np.float32)]), np.concatenate([train_y, found.labels]),
              epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0)
    canvases = build_canvases(test_x, test_y, det, seed=1, class_names=names)
    # Canvases as the evaluation draws them, with no object on them: the test split's colours, another seed.
    mean, spread = colour_stats(test_x)
    draw = np.random.default_rng(2)
    nothing = np.stack([background(draw, 64, mean, spread, noise_cells(det)) for _ in range(6)])
    for strategy in STRATEGIES:
        found_boxes, _ = run_detection(model, canvases.images, det, 32, strategy=strategy, progress=False)
        assert sum(len(d) for d in found_boxes) >= len(canvases), strategy  # objects still found
        assert all(set(d.classes.tolist()) <= {0, 1, 2} for d in found_boxes), strategy
        empty_found, _ = run_detection(model, nothing, det, 32, strategy=strategy, progress=False)
        assert sum(len(d) for d in empty_found) == 0, strategy
