"""detection.classifier: imagenet — species grouping, pet boxes from trimaps, the offline error, the split."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

from visionflow.config import shipped_params
from visionflow.detection import build_canvases, strategy_scores
from visionflow.detection.imagenet import (
    SPECIES,
    build_imagenet_classifier,
    group_species,
    split_imagenet_top,
)
from visionflow.models import WeightsUnavailableError


def test_species_grouping_sums_dog_and_cat_classes():
    probs = np.zeros((7, 1000), np.float32)
    for row, cls in enumerate([151, 268, 281, 285, 150, 269, 286]):
        probs[row, cls] = 1.0
    np.testing.assert_array_equal(
        group_species(probs).numpy(), [[0, 1], [0, 1], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0]]
    )
    rng = np.random.default_rng(0)
    mixed = rng.dirichlet(np.ones(1000), size=3).astype(np.float32)
    got = group_species(mixed).numpy()
    np.testing.assert_allclose(got[:, SPECIES.index("cat")], mixed[:, 281:286].sum(1), rtol=1e-5)
    np.testing.assert_allclose(got[:, SPECIES.index("dog")], mixed[:, 151:269].sum(1), rtol=1e-5)


def test_missing_top_weights_give_a_clear_error(monkeypatch):
    asked = []

    def offline_fetch(fname, origin, **kwargs):
        asked.append(fname)
        # What keras.utils.get_file raises when it cannot download (no network, no cached file).
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline_fetch)
    with pytest.raises(WeightsUnavailableError) as info:
        build_imagenet_classifier(alpha=0.35)
    message = str(info.value)
    assert asked == ["mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224.h5"]  # the WITH-top file
    assert "detection.classifier" in message and "detection.classifier: pipeline" in message
    assert "$KERAS_HOME/models" in message and asked[0] in message
    assert isinstance(info.value, ValueError)


def test_split_reproduces_the_whole_imagenet_model(imagenet_weights):
    # The top weights are not cached offline: give a top model the cached ImageNet trunk and a seeded random
    # prediction layer, so features and scores are not flat.
    keras.utils.set_random_seed(0)
    top = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=True, weights=None, alpha=0.35)
    trunk = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights="imagenet", alpha=0.35)
    for layer in trunk.layers:
        if layer.weights:
            top.get_layer(layer.name).set_weights(layer.get_weights())
    kernel, bias = top.get_layer("predictions").get_weights()
    top.get_layer("predictions").set_weights([np.random.default_rng(0).normal(0, 0.2, kernel.shape), bias])
    classifier = split_imagenet_top(top, alpha=0.35)
    assert (classifier.image_size, classifier.feature_stride, classifier.cells) == (224, 32, 7)

    images = np.random.default_rng(1).random((2, 224, 224, 3)).astype(np.float32)
    whole = classifier.model(images).numpy()  # (2, 1000) softmax
    np.testing.assert_allclose(classifier.head(classifier.backbone(images)).numpy(), whole, atol=1e-6)
    np.testing.assert_allclose(whole, top(images * 2 - 1).numpy(), atol=1e-6)  # [0, 1] in, [-1, 1] for Keras

    # 256 px: 2x2 windows of 224
    cfg = dataclasses.replace(shipped_params().detection, canvas_size=128, upscale=2.0, stride=32)
    # (crops runs `model`, checked against backbone + head above)
    scores = strategy_scores(classifier, images[:1, :128, :128], cfg, 224, strategies=("feature_crops", "dense"))
    assert scores["dense"].shape == (1, 4, 2)
    np.testing.assert_allclose(scores["dense"], scores["feature_crops"], atol=1e-5)
    assert (scores["dense"] >= 0).all() and (scores["dense"].sum(-1) <= 1 + 1e-5).all()  # species probabilities
    assert np.ptp(scores["dense"][0], axis=0).max() > 1e-4  # windows see different things


def test_pet_canvases_take_boxes_from_the_pet_masks():
    # The stage feeds the pets cache: masks mark pet + border pixels, labels are species.
    rng = np.random.default_rng(0)
    images = rng.random((6, 48, 48, 3), dtype=np.float32)
    masks = np.zeros((6, 48, 48), bool)
    masks[:, 12:36, 8:40] = True  # the pet fills a 24 x 32 box inside its square
    cfg = dataclasses.replace(shipped_params().detection, num_images=3, canvas_size=128, min_objects=1, max_objects=2)
    canvases = build_canvases(images, np.array([0, 1] * 3), cfg, seed=0, class_names=SPECIES, masks=masks)
    for gt in canvases.ground_truth:
        heights, widths = gt.boxes[:, 2] - gt.boxes[:, 0], gt.boxes[:, 3] - gt.boxes[:, 1]
        assert (heights > 0).all() and (widths > heights).all()  # the mask's box, not the whole square
        assert gt.boxes.max() <= 128
