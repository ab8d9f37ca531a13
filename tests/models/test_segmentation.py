"""U-Net: shapes, skips, trainability, ImageNet weights, compile, pixel weights, masks, save/load."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionflow.models.segmentation import (
    SKIP_LAYERS,
    build_unet,
    compile_segmentation,
    pixel_weights,
)


@pytest.fixture
def seg_cfg(small_params):
    return small_params.segmentation  # image_size 64, weights null, alpha 0.35


def _encoder_cfg(cfg, **changes):
    return dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, **changes))


def test_unet_gives_logits_per_pixel_and_uses_the_five_skips(seg_cfg):
    keras.utils.set_random_seed(0)
    model = build_unet(seg_cfg)
    size = seg_cfg.image_size
    x = np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32)
    out = model(x, training=False)
    assert model.name == "unet"
    assert tuple(out.shape) == (2, size, size, 3)
    assert float(tf.reduce_min(out)) < 0.0  # logits, not probabilities

    encoder = model.get_layer("encoder")
    assert isinstance(encoder, keras.Model)
    assert [encoder.get_layer(name).output for name in SKIP_LAYERS] == list(encoder.outputs)
    assert [tuple(o.shape[1:3]) for o in encoder.outputs] == [(size // s, size // s) for s in (2, 4, 8, 16, 32)]
    # One pix2pix block per skip below the deepest, with the reference widths (params.yaml's).
    blocks = [model.get_layer(f"upsample_{i}").layers[0] for i in range(len(SKIP_LAYERS) - 1)]
    assert [b.filters for b in blocks] == list(seg_cfg.decoder_filters) == [512, 256, 128, 64]
    assert {b.kernel_size for b in blocks} == {(seg_cfg.decoder_kernel_size,) * 2} == {(3, 3)}
    assert {b.kernel_initializer.stddev for b in blocks} == {seg_cfg.decoder_init_std} == {0.02}
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.get_layer("upsample_0").layers)


def test_unet_class_count_and_decoder_dropout_come_from_arguments(seg_cfg):
    size = 32
    model = build_unet(dataclasses.replace(seg_cfg, image_size=size, decoder_dropout=0.3), num_classes=5)
    assert tuple(model.output.shape) == (None, size, size, 5)
    dropouts = [layer for layer in model.get_layer("upsample_2").layers if isinstance(layer, keras.layers.Dropout)]
    assert [d.rate for d in dropouts] == [0.3]
    with pytest.raises(ValueError, match="num_classes"):
        build_unet(seg_cfg, num_classes=1)


@pytest.mark.parametrize("trainable", [True, False])
def test_encoder_trainable_flag_is_respected(seg_cfg, trainable):
    model = build_unet(_encoder_cfg(dataclasses.replace(seg_cfg, image_size=32), trainable=trainable))
    encoder = model.get_layer("encoder")
    trainable_ids = {id(w) for w in model.trainable_weights}
    kernel_ids = {id(layer.kernel) for layer in encoder.layers if hasattr(layer, "kernel")}
    assert encoder.trainable is trainable
    assert len(kernel_ids) > 30  # MobileNetV2's convolutions
    if trainable:
        assert kernel_ids <= trainable_ids
    else:
        assert kernel_ids.isdisjoint(trainable_ids) and not encoder.trainable_weights
    assert trainable_ids - kernel_ids  # the decoder always trains


def test_imagenet_encoder_loads_the_real_weights(seg_cfg, imagenet_weights):
    cfg = _encoder_cfg(dataclasses.replace(seg_cfg, image_size=96), weights="imagenet")
    pretrained = build_unet(cfg).get_layer("encoder").get_layer("Conv1").kernel.numpy()
    random = build_unet(_encoder_cfg(cfg, weights=None)).get_layer("encoder").get_layer("Conv1").kernel.numpy()
    reference = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights="imagenet", alpha=cfg.encoder.alpha
    ).get_layer("Conv1").kernel.numpy()
    np.testing.assert_array_equal(pretrained, reference)
    assert not np.allclose(pretrained, random)


def test_compile_constant_and_cosine_learning_rate(seg_cfg):
    model = build_unet(dataclasses.replace(seg_cfg, image_size=32))
    compile_segmentation(model, seg_cfg, steps_per_epoch=5)
    assert float(model.optimizer.learning_rate) == pytest.approx(seg_cfg.learning_rate)
    assert model.loss.get_config()["from_logits"] is True

    cosine = dataclasses.replace(seg_cfg, lr_schedule="cosine", epochs=3, learning_rate=0.01)
    compile_segmentation(model, cosine, steps_per_epoch=5)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == 3 * 5
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(15)) == pytest.approx(0.0, abs=1e-9)  # fully decayed after epochs * steps

    with pytest.raises(ValueError, match="steps_per_epoch: got 0"):
        compile_segmentation(model, seg_cfg, steps_per_epoch=0)


def test_pixel_weights_eagerly_and_inside_tf_data():
    mask = np.array([[[0], [1]], [[2], [2]]], dtype=np.uint8)  # (2, 2, 1): pet, background / border, border
    expected = np.array([[[1.0], [1.0]], [[3.0], [3.0]]], dtype=np.float32)
    np.testing.assert_array_equal(pixel_weights(mask, 3.0).numpy(), expected)
    ds = tf.data.Dataset.from_tensors(mask).map(lambda m: pixel_weights(m, 3.0))
    np.testing.assert_array_equal(next(iter(ds)).numpy(), expected)
    np.testing.assert_array_equal(pixel_weights(mask, 1.0).numpy(), np.ones_like(expected))
    with pytest.raises(ValueError, match="segmentation.border_weight"):
        pixel_weights(mask, 0.0)


def test_pixel_weights_train_as_sample_weights(seg_cfg):
    # The tutorial's approach: (image, mask, weights) from tf.data straight into fit.
    keras.utils.set_random_seed(1)
    size, batch = 32, 2
    cfg = dataclasses.replace(seg_cfg, image_size=size, batch_size=batch)
    rng = np.random.default_rng(1)
    images = rng.random((batch, size, size, 3), dtype=np.float32)
    masks = rng.integers(0, 3, (batch, size, size, 1)).astype(np.uint8)
    model = build_unet(cfg)
    compile_segmentation(model, cfg, steps_per_epoch=1)
    model.run_eagerly = True  # tracing the U-Net's train step takes ~30 s on two cores; the math is the same
    plain = model.evaluate(images, masks, sample_weight=pixel_weights(masks, 1.0), verbose=0)[0]
    heavy = model.evaluate(images, masks, sample_weight=pixel_weights(masks, 5.0), verbose=0)[0]
    assert heavy > plain  # the border pixels now count five times

    ds = tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch)
    ds = ds.map(lambda x, y: (x, y, pixel_weights(y, cfg.border_weight)))
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


def test_unet_save_load_round_trip(seg_cfg, tmp_path):
    cfg = dataclasses.replace(seg_cfg, image_size=32)
    model = build_unet(cfg)
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    # Eager calls: tracing two predict functions would triple the test's time.
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)
    encoder = loaded.get_layer("encoder")
    assert [encoder.get_layer(name).output for name in SKIP_LAYERS] == list(encoder.outputs)


def test_batchnorm_momentum_comes_from_params():
    # Keras' MobileNetV2 ships momentum 0.999; with a few hundred steps the moving statistics would stay
    # near their initial values and the model would fail at inference.
    from visionflow.config import shipped_params

    cfg = shipped_params({"segmentation": {"image_size": 64, "batchnorm_momentum": 0.8}}).segmentation
    model = build_unet(cfg)
    norms = [l for l in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) > 40  # the encoder's and the decoder's
    assert {l.momentum for l in norms} == {0.8}
