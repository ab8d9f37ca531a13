"""MixUp (Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization") and CutMix (Yun et al., 2019, "CutMix:
Regularization Strategy to Train Strong Classifiers with Localizable Features") on batches of (image, class id).

MixUp: each training batch is mixed with itself reversed: example i becomes lam_i * x_i + (1 - lam_i) * x_(B-1-i),
with target lam_i * onehot(y_i) + (1 - lam_i) * onehot(y_(B-1-i)), lam_i ~ Beta(alpha, alpha) drawn for each example
(timm pairs a batch with its reverse the same way; the stream is shuffled, so the pairs are random).
CutMix: a box of example i, of area (1 - lam_i) of the image centred at a uniform point and clipped at the edges,
is pasted from x_(B-1-i), and the target mixes the two classes by the pixels each image keeps.

Written here rather than with `keras.layers.MixUp` / `CutMix`: those layers take their seed only as a Python int or
a SeedGenerator (a stateful variable), so inside tf.data it cannot be seeded by the batch's index, and a run resumed
from a checkpoint would draw other mixtures than the uninterrupted run. These draws are stateless, seeded by
params.yaml's seed and the batch's index in the stream. Targets become one-hot (B, K); validation batches get one-hot
targets too, so one loss and one accuracy serve both.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class MixUp:
    alpha: float      # Beta(alpha, alpha) concentration: small = mostly one image, 1 = any mixture equally likely
    num_classes: int  # width of the one-hot targets (the model's outputs)
    seed: int

    def weights(self, batch_index: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        """(size,) float32 lam in [0, 1] for the batch at `batch_index` of the stream: Beta(alpha, alpha) as
        X / (X + Y) with X, Y ~ Gamma(alpha)."""
        index = tf.cast(batch_index, tf.int64)
        shape = tf.reshape(tf.cast(size, tf.int32), (1,))
        x = tf.random.stateless_gamma(shape, tf.stack([tf.constant(self.seed, tf.int64), 2 * index]), self.alpha)
        y = tf.random.stateless_gamma(shape, tf.stack([tf.constant(self.seed, tf.int64), 2 * index + 1]), self.alpha)
        return tf.math.divide_no_nan(x, x + y)  # both draws 0 (float32 underflow, small alpha): the mirror

    def one_hot(self, labels: tf.Tensor) -> tf.Tensor:
        return tf.one_hot(tf.reshape(tf.cast(labels, tf.int32), (-1,)), self.num_classes)

    def mixed_targets(self, labels: tf.Tensor, share: tf.Tensor) -> tf.Tensor:
        """(B, K) one-hot targets, each weighted by its (B,) `share` of the mixed image and its mirror's by the rest."""
        targets = self.one_hot(labels)
        return share[:, None] * targets + (1 - share[:, None]) * tf.reverse(targets, [0])

    def mix(self, batch_index: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One batch of (B, H, W, C) images and (B,) ids -> mixed images and (B, K) mixed targets."""
        lam = self.weights(batch_index, tf.shape(images)[0])
        mixed = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * tf.reverse(images, [0])
        return mixed, self.mixed_targets(labels, lam)

    def training(self, batches: tf.data.Dataset, first_batch: int = 0) -> tf.data.Dataset:
        """Mixes every batch; `first_batch`: the stream index of the first one (a resumed run's skipped batches)."""
        return batches.enumerate(start=first_batch).map(lambda i, pair: self.mix(i, *pair),
                                                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def validation(self, batches: tf.data.Dataset) -> tf.data.Dataset:
        """Unmixed batches with one-hot targets."""
        return batches.map(lambda images, labels: (images, self.one_hot(labels)))


@dataclass(frozen=True)
class CutMix(MixUp):
    """MixUp's pairing, draws and stream, with a pasted box instead of a blend (classifier.cutmix_alpha)."""

    def boxes(self, batch_index: tf.Tensor, height: tf.Tensor, width: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        """(size, 4) float32 pixel boxes [top, left, bottom, right) for the batch at `batch_index`: area (1 - lam)
        of the image, same aspect, centred at a uniform point (its own stateless stream), clipped, whole pixels."""
        lam = self.weights(batch_index, size)
        key = tf.stack([tf.constant(self.seed, tf.int64), -1 - tf.cast(batch_index, tf.int64)])  # not MixUp's keys
        centre = tf.random.stateless_uniform(tf.stack([tf.cast(size, tf.int32), 2]), key)
        extent = tf.stack([tf.cast(height, tf.float32), tf.cast(width, tf.float32)])  # (2,)
        half = tf.sqrt(1 - lam)[:, None] * extent / 2
        low = tf.clip_by_value(tf.round(centre * extent - half), 0.0, extent)
        high = tf.clip_by_value(tf.round(centre * extent + half), 0.0, extent)
        return tf.concat([low, high], axis=1)

    def mix(self, batch_index: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One batch of (B, H, W, C) images and (B,) ids -> images with a box from their mirror, (B, K) targets."""
        shape = tf.shape(images)
        box = self.boxes(batch_index, shape[1], shape[2], shape[0])
        rows = tf.range(tf.cast(shape[1], tf.float32))[None, :]
        cols = tf.range(tf.cast(shape[2], tf.float32))[None, :]
        inside_rows = (rows >= box[:, 0:1]) & (rows < box[:, 2:3])  # (B, H)
        inside_cols = (cols >= box[:, 1:2]) & (cols < box[:, 3:4])  # (B, W)
        pasted = tf.cast(inside_rows[:, :, None] & inside_cols[:, None, :], images.dtype)[..., None]
        mixed = images * (1 - pasted) + tf.reverse(images, [0]) * pasted
        kept = 1 - tf.reduce_mean(tf.cast(pasted, tf.float32), axis=[1, 2, 3])  # the pixels that stay x_i's
        return mixed, self.mixed_targets(labels, kept)
