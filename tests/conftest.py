"""Shared fixtures: the real params.yaml shrunk for tests, the shared real-data samples, a Keras cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VISIONFLOW_TRACKING", "off")  # library tests run untracked; stage tests turn it on

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _keras_home() -> None:
    # Keras reads KERAS_HOME once, at import, and only uses it when writable: give it a writable
    # copy of the shared ImageNet cache before anything imports keras.
    if "KERAS_HOME" in os.environ or not (SHARED / "keras" / "models").is_dir():
        return
    home = Path(tempfile.mkdtemp(prefix="visionflow-keras-"))
    shutil.copytree(SHARED / "keras" / "models", home / "models")
    os.environ["KERAS_HOME"] = str(home)


_keras_home()


def require_shared(*parts: str) -> Path:
    """Path under ../shared; skips on a user's machine where it is absent, fails under CI."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the repository")
        pytest.skip(f"{path} not present (real-data samples are only beside the repository in CI)")
    return path


@pytest.fixture
def pets_sample() -> Path:
    """The real Oxford-IIIT Pet sample in its release layout."""
    return require_shared("datasets", "oxford_iiit_pet")


@pytest.fixture
def flowers_sample() -> Path:
    """The real flower_photos sample (one subfolder per class)."""
    return require_shared("datasets", "flower_photos", "flower_photos")


@pytest.fixture
def imagenet_weights() -> None:
    """Skip (or fail under CI) when no ImageNet MobileNetV2 cache is reachable."""
    require_shared("keras", "models")
    if "KERAS_HOME" not in os.environ:
        pytest.skip("KERAS_HOME not set")


@pytest.fixture
def small_params():
    """The shipped params.yaml, shrunk: few images, one epoch, small sizes."""
    from visionflow.config import load_params, parse_params, to_dict

    raw = to_dict(load_params(REPO / "params.yaml"))
    raw["data"]["synthetic"].update(pets_images=40, pets_min_side=96, pets_max_side=128, flowers_per_class=12)
    raw["segmentation"].update(image_size=64, epochs=1, batch_size=8)
    raw["classifier"].update(image_size=64, epochs=1, batch_size=8)
    raw["detection"].update(num_images=4, canvas_size=128, batch_size=16)
    return parse_params(raw, source="small_params")
