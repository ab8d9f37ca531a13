"""Sharpness-aware minimisation (classifier.sam_rho): each step descends along the gradient taken at the worst
nearby weights (to first order), not at the weights themselves.

SAM (Foret et al., "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021) moves the
weights w by e = rho * g / ||g|| (g: the batch's gradient at w, ||.||: the global L2 norm over every trainable
weight), takes the batch's gradient again at w + e, moves the weights back to w and hands that second gradient
to the optimizer. It costs a second forward and backward pass per step. Neither Keras nor TensorFlow ships it, so
it is this training step; the optimizer (Adam, SGD, their schedules and averaging) is left as it is.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from visionflow.augment.layers import MODEL_LAYER
from visionflow.models.classifier import layers_by_name, split_classifier


class SharpnessAware(keras.Model):
    """The classifier's own graph (built as `SharpnessAware(classifier.inputs, classifier.outputs, rho=...)`, so it
    shares every weight with the classifier) with SAM's training step. Prediction and evaluation are the
    classifier's; it is never saved (the classifier is). Both passes of a step see the same augmented batch: the
    augmentation block (placement: model) runs once, then the backbone and head twice (dropout draws again).
    BatchNorm's moving statistics are updated by both passes."""

    def __init__(self, *args, rho: float, **kwargs):
        super().__init__(*args, **kwargs)
        if not rho > 0:
            raise ValueError(f"rho: got {rho}; SAM's neighbourhood radius must be above 0")
        self.rho = rho
        self._backbone, self._head = split_classifier(self)
        self._augmentation = layers_by_name(self).get(MODEL_LAYER)  # None with placement: dataset

    def _logits(self, images, training: bool):
        return self._head(self._backbone(images, training=training), training=training)

    def _loss(self, x, y, y_pred, sample_weight):
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images = x if self._augmentation is None else self._augmentation(x, training=True)
        weights = self.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self._logits(images, training=True)
            loss = self._loss(x, y, y_pred, sample_weight)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])  # noqa: SLF001 - Keras' loss mean
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, weights)
        # e = rho * g / ||g||: the loss scale (mixed precision) cancels in the ratio. A step whose scaled gradient
        # overflowed is not moved (e = 0, not inf x 0), so the weights stay finite; the optimizer then skips it.
        norm = tf.linalg.global_norm([g for g in gradients if g is not None])
        finite, scale = tf.math.is_finite(norm), self.rho / (norm + 1e-12)
        steps = [None if g is None else tf.cast(tf.where(finite, g * scale, tf.zeros_like(g)), w.dtype)
                 for g, w in zip(gradients, weights)]
        for w, e in zip(weights, steps):
            if e is not None:
                w.assign_add(e)
        with tf.GradientTape() as tape:
            scaled = self.optimizer.scale_loss(self._loss(x, y, self._logits(images, training=True), sample_weight))
        gradients = tape.gradient(scaled, weights)
        for w, e in zip(weights, steps):
            if e is not None:
                w.assign_sub(e)
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)  # at w, as Keras' own step reports
