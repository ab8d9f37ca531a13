"""Decode any image a release may hold into RGB uint8, and re-encode it deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Extensions a class folder may hold images under; anything else is reported as not an image.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})
_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_MODE_NAMES = {"RGBA": "rgba", "P": "palette", "L": "grayscale", "LA": "grayscale+alpha", "CMYK": "cmyk"}


class DataSourceError(ValueError):
    """A data source (folder, list file, download) cannot be used as it is."""


class UnusableFileError(DataSourceError):
    """One file of a release cannot be used; `path` and `reason` let the caller report and skip it."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class UnreadableImageError(UnusableFileError):
    """An image file cannot be decoded (truncated, corrupt, not an image)."""


def read_rgb(path: Path, max_side: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Decode `path` to (H, W, 3) uint8, downscaled to `max_side`; also return the fixes applied."""
    path = Path(path)
    fixes: list[str] = []
    try:
        with Image.open(path) as img:
            # load() inside the try: truncated data only shows up when the pixels are decoded
            # (PIL's LOAD_TRUNCATED_IMAGES stays False so that it raises).
            img.load()
            fmt = (img.format or "unknown").lower()
            if fmt != "jpeg":
                suffix = path.suffix.lower()
                fixes.append(f"{fmt} in {suffix}" if suffix in _JPEG_SUFFIXES else f"{fmt} image")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                fixes.append(f"kept frame 1 of {frames}")
            mode = img.mode
            if mode == "P":
                # Palette transparency is only honoured through RGBA; the alpha is then dropped.
                img = img.convert("RGBA")
            if mode != "RGB":
                fixes.append(f"{_MODE_NAMES.get(mode, mode.lower())}->rgb")
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise UnreadableImageError(path, "file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(path, f"cannot decode image ({exc}); replace or delete the file") from None

    if max_side is not None and max(rgb.size) > max_side:
        before = rgb.size
        rgb.thumbnail((max_side, max_side))  # keeps the aspect ratio, antialiased
        fixes.append(f"downscaled {before[0]}x{before[1]}->{rgb.size[0]}x{rgb.size[1]}")
    return np.asarray(rgb, dtype=np.uint8), fixes  # (H, W, 3)


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 image, with the encoder and settings TFDS uses to fix images."""
    import tensorflow as tf  # deferred: parsing and report code stay importable without TensorFlow

    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"encode_jpeg: expected an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    return tf.io.encode_jpeg(image).numpy()

