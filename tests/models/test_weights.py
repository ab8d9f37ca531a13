"""ImageNet weights that cannot be had give WeightsUnavailableError naming the param and the fix."""

from __future__ import annotations

import dataclasses
import urllib.error

import pytest
from keras.src.backend import config as keras_config
from keras.src.utils import file_utils

from visionflow.models import WeightsUnavailableError, build_classifier, build_unet

# A 64 px U-Net asks Keras for the 224 px weights file, which Keras announces with a warning.
pytestmark = pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")


@pytest.fixture
def no_cache_no_network(tmp_path, monkeypatch):
    """An empty Keras cache and a fetch that fails the way an offline machine's does."""

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # Keras read KERAS_HOME at import, so point its resolved home at the empty directory instead.
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    return tmp_path


def _imagenet(cfg):
    return dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, weights="imagenet"))


def test_unet_without_imagenet_weights_says_what_to_do(small_params, no_cache_no_network):
    with pytest.raises(WeightsUnavailableError) as info:
        build_unet(_imagenet(small_params.segmentation))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("segmentation.encoder.weights: ")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in message  # 64 px -> 224 file
    assert "Set segmentation.encoder.weights to null" in message
    assert "$KERAS_HOME/models" in message
    assert "Temporary failure in name resolution" in message
    assert not any(no_cache_no_network.joinpath("models").iterdir())  # Keras left no partial download


def test_classifier_without_imagenet_weights_names_its_param(small_params, no_cache_no_network):
    cfg = dataclasses.replace(_imagenet(small_params.classifier), backbone="mobilenet_v2", image_size=96)
    with pytest.raises(WeightsUnavailableError, match=r"^classifier\.encoder\.weights: .*0\.35_96_no_top\.h5"):
        build_classifier(cfg, 5)


def test_other_failures_are_not_disguised(small_params, tmp_path, monkeypatch):
    def broken(url, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_unet(_imagenet(small_params.segmentation))
