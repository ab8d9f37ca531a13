"""Losses the config can ask for beyond plain cross-entropy; registered so saved models load in safe mode.

Both take integer labels, as the caches hold them, and logits, as the models output them.
"""

from __future__ import annotations

import keras
from keras import ops

# Added to both sides of each class's Dice ratio: a class absent from truth and prediction scores 1.
DICE_SMOOTHING = 1.0


@keras.saving.register_keras_serializable(package="visionflow")
class SmoothedSparseCrossEntropy(keras.losses.Loss):
    """Categorical cross-entropy against one-hot targets smoothed by `label_smoothing` (Keras' own sparse loss
    has no smoothing): y_true (B,) or (B, 1) integer ids, y_pred (B, K) logits -> (B,)."""

    def __init__(self, label_smoothing: float, num_classes: int, name: str = "smoothed_sparse_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)

    def call(self, y_true, y_pred):
        labels = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), self.num_classes)  # (B, K)
        return keras.losses.categorical_crossentropy(labels, y_pred, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="visionflow")
class CrossEntropyDice(keras.losses.Loss):
    """Per-pixel sparse cross-entropy plus `dice_weight` x (1 - soft Dice of the image, mean over classes).

    y_true (B, S, S[, 1]) class ids, y_pred (B, S, S, K) logits -> (B, S, S). The Dice term is one number per
    image added to each of its pixels, so per-pixel sample weights (segmentation.border_weight) scale it by the
    image's mean weight. Dice weighs every class equally whatever its area, which is what lifts the thin border
    class that pixel-averaged cross-entropy underweights.
    """

    def __init__(self, dice_weight: float, num_classes: int, name: str = "cross_entropy_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight, self.num_classes = float(dice_weight), int(num_classes)

    def call(self, y_true, y_pred):
        ids = ops.cast(y_true, "int32")
        if len(ids.shape) == len(y_pred.shape):
            ids = ops.squeeze(ids, -1)  # (B, S, S)
        ce = keras.losses.sparse_categorical_crossentropy(ids, y_pred, from_logits=True)  # (B, S, S)
        probs = ops.softmax(y_pred, axis=-1)  # (B, S, S, K)
        truth = ops.one_hot(ids, self.num_classes)  # (B, S, S, K)
        inter = ops.sum(probs * truth, axis=(1, 2))  # (B, K)
        total = ops.sum(probs, axis=(1, 2)) + ops.sum(truth, axis=(1, 2))  # (B, K)
        dice = ops.mean((2.0 * inter + DICE_SMOOTHING) / (total + DICE_SMOOTHING), axis=-1)  # (B,)
        return ce + self.dice_weight * (1.0 - dice)[:, None, None]

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "num_classes": self.num_classes}
