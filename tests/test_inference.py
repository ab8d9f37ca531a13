"""The one batched-inference loop: batches from files or a cache, confusion and class probabilities."""

from __future__ import annotations

import keras
import numpy as np

from visionflow.inference import batched, classify_batches, segmentation_confusion


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
