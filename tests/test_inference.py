"""The one batched-inference loop: batches from files or a cache, confusion and class probabilities."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionflow.inference import batched, classify_batches, predict_probabilities, segmentation_confusion


def _pixelwise(num_classes: int) -> keras.Model:
    # Logits = the image's first channels: predictions are known in advance.
    inputs = keras.Input((4, 4, 3))
    return keras.Model(inputs, keras.layers.Lambda(lambda x: x[..., :num_classes] * 10.0)(inputs))


def test_batched_stacks_pairs_and_keeps_the_remainder():
    examples = [(np.full((2, 2, 3), i, np.float32), np.int64(i)) for i in range(5)]
    batches = list(batched(iter(examples), 2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    assert batches[2][0].shape == (1, 2, 2, 3) and list(batches[1][1]) == [2, 3]


def test_segmentation_confusion_counts_every_pixel():
    images = np.zeros((3, 4, 4, 3), np.float32)
    images[..., 1] = 1.0  # every pixel predicts class 1
    masks = np.ones((3, 4, 4, 1), np.int64)
    masks[0, :2] = 0  # 8 pixels of class 0, predicted 1
    confusion, kept = segmentation_confusion(_pixelwise(3), batched(zip(images, masks), 2), 3, keep=2)
    assert confusion.sum() == 48 and confusion[0, 1] == 8 and confusion[1, 1] == 40
    assert len(kept) == 2 and kept[0][2].shape == (4, 4) and (kept[0][2] == 1).all()


def test_classify_batches_keeps_only_the_images_asked_for():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    images = np.zeros((5, 4, 4, 3), np.float32)
    images[:, :, :, 2] = 1.0
    kept, truth, probs = classify_batches(model, batched(zip(images, np.arange(5)), 2), keep=3)
    assert kept.shape == (3, 4, 4, 3) and list(truth) == [0, 1, 2, 3, 4]
    assert probs.shape == (5, 3) and (probs.argmax(axis=1) == 2).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert classify_batches(model, iter([]))[1].shape == (0,)


def test_classifier_crops_average_the_softmax_of_each_central_crop():
    # Centre 4x4 red, the ring around it blue: the whole image pools mostly blue, its central half only red.
    images = np.zeros((2, 8, 8, 3), np.float32)
    images[:, :, :, 2] = 1.0
    images[:, 2:6, 2:6] = (1.0, 0.0, 0.0)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: 10.0 * x)(keras.layers.GlobalAveragePooling2D()(inputs)))

    def softmax(logits):
        e = np.exp(logits - logits.max())
        return e / e.sum()

    whole, centre = softmax(10 * np.array([0.25, 0.0, 0.75])), softmax(10 * np.array([1.0, 0.0, 0.0]))
    _, _, plain = classify_batches(model, batched(zip(images, np.arange(2)), 2))
    np.testing.assert_allclose(plain, [whole, whole], atol=1e-5)
    _, _, averaged = classify_batches(model, batched(zip(images, np.arange(2)), 2), crops=(1.0, 0.5))
    np.testing.assert_allclose(averaged, [(whole + centre) / 2] * 2, atol=1e-5)
    assert (averaged.argmax(axis=1) == 0).all() and (plain.argmax(axis=1) == 2).all()


def test_classifier_crops_refuse_a_per_pixel_model():
    with pytest.raises(ValueError, match=r"crops \[1.0, 0.875\], scales \[1.0\]: test-time crops and scales average"):
        predict_probabilities(_pixelwise(3), np.zeros((1, 4, 4, 3), np.float32), crops=(1.0, 0.875))


def _border_counting_classifier(size: int) -> keras.Model:
    # Backbone: a 3x3 all-ones convolution with zero padding, so on an all-ones image a pixel scores 27 inside,
    # 18 on an edge and 12 in a corner: the pooled score rises with the side. Head: pooling, then logits
    # (0.1 x the pooled score, 0). Built as build_classifier's models are: sub-models "backbone" and "head".
    image = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones")
    backbone = keras.Model(image, conv(image), name="backbone")
    features = keras.Input((size, size, 1))
    dense = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[0.1, 0.0]]))
    head = keras.Model(features, dense(keras.layers.Dropout(0.5)(keras.layers.GlobalAveragePooling2D()(features))),
                       name="head")
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, head(backbone(inputs)), name="classifier")


def _pooled_border_score(side: int) -> float:
    inner = side - 2
    return (27 * inner**2 + 18 * 4 * inner + 12 * 4) / side**2


def test_classifier_scales_average_the_softmax_of_each_scaled_image():
    def p0(side):  # softmax of (0.1 x pooled score, 0), first class
        return 1 / (1 + np.exp(-0.1 * _pooled_border_score(side)))

    images = np.ones((2, 8, 8, 3), np.float32)
    model = _border_counting_classifier(8)
    plain = predict_probabilities(model, images, flip=True)
    np.testing.assert_allclose(plain[:, 0], p0(8), rtol=1e-5)
    # scale 4: 8 x 4 = 32 px; scale 8: 64 px (sides are multiples of 16)
    averaged = predict_probabilities(model, images, flip=True, scales=(1.0, 4.0, 8.0))
    np.testing.assert_allclose(averaged[:, 0], (p0(8) + p0(32) + p0(64)) / 3, rtol=1e-5)
    _, _, batches = classify_batches(model, batched(zip(images, np.arange(2)), 2), scales=(4.0,))
    np.testing.assert_allclose(batches[:, 0], p0(32), rtol=1e-5)


def test_classifier_scales_refuse_a_head_that_flattens():
    image = keras.Input((None, None, 3))
    backbone = keras.Model(image, keras.layers.Identity()(image), name="backbone")
    features = keras.Input((8, 8, 3))
    head = keras.Model(features, keras.layers.Dense(2)(keras.layers.Flatten()(features)), name="head")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, head(backbone(inputs)))
    with pytest.raises(ValueError, match=r"scales \[1.0, 4.0\]: the head of model .* flattens a feature map"):
        predict_probabilities(model, np.zeros((1, 8, 8, 3), np.float32), scales=(1.0, 4.0))
