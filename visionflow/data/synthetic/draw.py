"""Drawing helpers shared by the synthetic pets and flowers: colours, shapes, textures, JPEG files, atomic folders."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from visionflow.files import atomic_output

_MIN_SIDE = 32  # smaller canvases cannot hold a recognisable pet or flower
# Fur-like colours (HSV) shared by pets and background clutter, so colour alone cannot find the pet.
_FUR_HSV = ((0.08, 0.55, 0.55), (0.07, 0.75, 0.85), (0.10, 0.25, 0.88), (0.0, 0.0, 0.5), (0.0, 0.0, 0.15),
            (0.0, 0.0, 0.92), (0.09, 0.45, 0.3))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def _colour(rng: np.random.Generator, p_fur: float) -> np.ndarray:
    if rng.random() < p_fur:
        h, s, v = _FUR_HSV[rng.integers(len(_FUR_HSV))]
        return _hsv(h + rng.normal(0, 0.02), s + rng.normal(0, 0.1), v + rng.normal(0, 0.1))
    return _hsv(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.95))


def _rgb8(c: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(round(x)) for x in np.clip(c * 255.0, 0, 255))


def _ellipse(cx: float, cy: float, a: float, b: float, ang: float = 0.0, n: int = 28) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    c, s = math.cos(ang), math.sin(ang)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)  # (n, 2)


def _petal(r0: float, length: float, width: float, sharp: float, ang: float, n: int = 9) -> np.ndarray:
    """Teardrop polygon leaving the origin along `ang`; sharp < 1 rounds the tip, sharp >= 1 points it."""
    t = np.linspace(0.0, 1.0, n)
    along, half = r0 + t * length, 0.5 * width * np.sin(np.pi * t) ** sharp
    x = np.concatenate([along, along[::-1]])
    y = np.concatenate([half, -half[::-1]])
    c, s = math.cos(ang), math.sin(ang)
    return np.stack([c * x - s * y, s * x + c * y], axis=1)  # (2n, 2)


def _poly(pts: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in pts]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    grid = rng.random((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.Resampling.BICUBIC))  # (h, w)


def _texture(rng: np.random.Generator, kind: str, h: int, w: int, c1, c2, scale: float) -> np.ndarray:
    """An (h, w, 3) fill blending c1 and c2 in a pattern whose feature size is about `scale` px."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    th = rng.uniform(0, np.pi)
    u, v = xx * math.cos(th) + yy * math.sin(th), yy * math.cos(th) - xx * math.sin(th)
    if kind == "solid":
        t = np.zeros((h, w), np.float32)
    elif kind == "gradient":
        t = (u - u.min()) / (np.ptp(u) + 1e-6)
    elif kind == "stripes":  # wavy, like tabby fur or fabric
        wave = np.sin(2 * np.pi * u / scale + rng.uniform(0.5, 2.5) * np.sin(2 * np.pi * v / (4 * scale)))
        t = np.clip(wave * 2.0 + 0.5, 0.0, 1.0)
    elif kind == "checker":
        t = ((np.floor(u / scale) + np.floor(v / scale)) % 2).astype(np.float32)
    elif kind == "patches":
        t = np.clip((_smooth_noise(rng, h, w, scale) - 0.5) * 4.0 + 0.5, 0.0, 1.0)
    elif kind == "spots":
        spots = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(spots)
        for _ in range(min(150, int(h * w / (scale * scale * 3)) + 1)):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), scale * rng.uniform(0.2, 0.5)
            draw.ellipse((x - r, y - r * rng.uniform(0.6, 1.0), x + r, y + r), fill=255)
        t = np.asarray(spots, np.float32) / 255.0
    else:
        raise ValueError(f"texture kind {kind!r} is not one of solid, gradient, stripes, checker, patches, spots")
    return c1 * (1.0 - t)[..., None] + np.asarray(c2, np.float32) * t[..., None]


def _paint(canvas: np.ndarray, mask: Image.Image, fill: np.ndarray | None = None, rng=None, kind="solid",
           c1=None, c2=None, scale: float = 8.0) -> None:
    """Blend `fill` (canvas-sized) or a texture into canvas where the "L" mask is set, inside its box only."""
    box = mask.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    m = (np.asarray(mask.crop(box), np.float32) / 255.0)[..., None]
    tex = fill[y0:y1, x0:x1] if fill is not None else _texture(rng, kind, y1 - y0, x1 - x0, c1, c2, scale)
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1.0 - m) + tex * m


def _gradient_canvas(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    return _texture(rng, "gradient", h, w, c1, c2, 1.0).astype(np.float32)  # (h, w, 3)


def _finish(canvas: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Camera-like white balance, exposure and sensor noise; float [0, 1] -> uint8."""
    gain = rng.uniform(0.9, 1.1, 3).astype(np.float32) * rng.uniform(0.85, 1.15)
    out = canvas * gain + noise * rng.standard_normal(canvas.shape, dtype=np.float32)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _save_jpeg(pixels: np.ndarray | Image.Image, path: Path, quality: int) -> None:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels, "RGB")
    img.save(path, "JPEG", quality=quality)  # baseline (not progressive), no EXIF: the same bytes every run


@contextmanager
def _atomic_dir(target: Path, own: set[str], what: str) -> Iterator[Path]:
    """files.atomic_output for a generated folder, refusing to replace a folder this generator did not write."""
    if target.exists() and (not target.is_dir() or not {p.name for p in target.iterdir()} <= own):
        raise ValueError(
            f"{target}: exists and is not a {what} written by this generator (only {sorted(own)} may be "
            "inside); refusing to replace it: remove it or choose another output folder"
        )
    with atomic_output(target, ".partial", directory=True) as tmp:
        yield tmp
        tmp.chmod(0o755)


def _check_sides(lo: int, hi: int, names: str, fix: str) -> None:
    if lo < _MIN_SIDE or hi < lo:
        raise ValueError(f"{names}={lo}, {hi}: image sides must satisfy {_MIN_SIDE} <= low <= high; {fix}")
