"""Where Keras keeps downloaded weights and which MobileNetV2 files a config needs (no Keras import)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from visionflow.config import Params

# The input sizes Keras publishes MobileNetV2 ImageNet no-top weights for; any other size gets the 224 ones.
IMAGENET_SIZES = (96, 128, 160, 192, 224)
TOP_SIZE = 224  # the only input size with classifier-top weights
# keras.applications.mobilenet_v2.BASE_WEIGHT_PATH's host.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def mobilenet_v2_file(size: int, alpha: float, top: bool = False) -> str:
    """File name Keras looks up in its cache for MobileNetV2 ImageNet weights."""
    if top:
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{TOP_SIZE}.h5"
    size = size if size in IMAGENET_SIZES else TOP_SIZE
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}_no_top.h5"


def keras_home() -> Path:
    """The folder Keras 3 caches into: $KERAS_HOME, else ~/.keras (Keras falls back to /tmp/.keras when unwritable)."""
    home = os.environ.get("KERAS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".keras"


def needed_weights(params: Params) -> dict[str, str]:
    """`{param: weight file}` for every ImageNet model the pipeline will build with these params."""
    needed = {}
    seg = params.segmentation
    if seg.encoder.weights == "imagenet":
        needed["segmentation.encoder.weights"] = mobilenet_v2_file(seg.image_size, seg.encoder.alpha)
    cls = params.classifier
    if cls.backbone == "mobilenet_v2" and cls.encoder.weights == "imagenet":
        needed["classifier.encoder.weights"] = mobilenet_v2_file(cls.image_size, cls.encoder.alpha)
    if params.detection.classifier == "imagenet":
        needed["detection.classifier"] = mobilenet_v2_file(TOP_SIZE, params.detection.imagenet_alpha, top=True)
    return needed


def weight_files(params: Params, prefix: str) -> dict[str, Path]:
    """`{param: file}` of the ImageNet weight files in the Keras cache that params under `prefix` build with.

    DVC does not track them, so stages log them (with their hash) as MLflow inputs.
    """
    home = keras_home() / "models"
    return {param: home / name for param, name in needed_weights(params).items()
            if param.startswith(prefix) and (home / name).is_file()}


def _reachable(host: tuple[str, int], timeout_s: float) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout_s):
            return True
    except OSError:
        return False


def check_weights(params: Params, timeout_s: float = 3.0) -> None:
    """Raise ValueError naming the missing file and the offline alternative when Keras could not get it."""
    needed = needed_weights(params)
    if not needed:
        return
    home = keras_home()
    where = f"KERAS_HOME={os.environ['KERAS_HOME']}" if "KERAS_HOME" in os.environ else "KERAS_HOME unset, so ~/.keras"
    if not os.access(home, os.W_OK):
        raise ValueError(
            f"{where}: not a writable folder, so Keras would ignore it; point KERAS_HOME at a writable folder "
            f"whose models/ holds {', '.join(sorted(set(needed.values())))}"
        )
    missing = {param: name for param, name in needed.items() if not (home / "models" / name).is_file()}
    if not missing or _reachable(DOWNLOAD_HOST, timeout_s):  # online, Keras downloads what is missing
        return
    param, name = next(iter(missing.items()))
    off = "detection.classifier: pipeline" if param == "detection.classifier" else f"{param}: null"
    raise ValueError(
        f"{param}: imagenet needs {home / 'models' / name}, which is missing ({where}) and cannot be downloaded "
        f"offline: copy the Keras MobileNetV2 weight files there, or set {off} (no download)"
    )
