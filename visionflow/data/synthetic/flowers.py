"""Synthetic tf_flowers release: procedural flower photos in a flower_photos/<class>/ tree."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from visionflow.classes import FLOWER_CLASSES
from visionflow.data.synthetic.draw import (
    _atomic_dir,
    _check_sides,
    _ellipse,
    _finish,
    _gradient_canvas,
    _hsv,
    _petal,
    _poly,
    _rgb8,
    _save_jpeg,
)

# The tf_flowers classes in folder-name order: class index c seeds its images, so this order fixes the files.
GENERATION_ORDER = tuple(sorted(FLOWER_CLASSES))  # alphabetical, as folders list: fixes each class's stream


def _flower_background(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    """Sky over foliage or foliage only, with leaves, grass and out-of-focus coloured blobs, blurred."""
    if rng.random() < 0.6:
        sky = _hsv(rng.uniform(0.52, 0.66), rng.uniform(0.0, 0.6), rng.uniform(0.6, 1.0))
        canvas = _gradient_canvas(rng, h, w, sky, _hsv(rng.uniform(0.2, 0.4), 0.6, rng.uniform(0.2, 0.6)))
    else:
        canvas = _gradient_canvas(rng, h, w, _hsv(rng.uniform(0.18, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.4)),
                                  _hsv(rng.uniform(0.05, 0.4), rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.6)))
    img = Image.fromarray((np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    side = min(h, w)
    for _ in range(rng.integers(8, 26)):
        leaf = _petal(0, side * rng.uniform(0.1, 0.45), side * rng.uniform(0.04, 0.15), 1.0, rng.uniform(0, 2 * np.pi))
        green = _hsv(rng.uniform(0.17, 0.42), rng.uniform(0.35, 0.85), rng.uniform(0.15, 0.75))
        draw.polygon(_poly(leaf + rng.uniform((0, 0), (w, h))), fill=_rgb8(green))
    for _ in range(rng.integers(0, 5)):  # bokeh in flower colours so colour alone does not name the class
        r, (x, y) = side * rng.uniform(0.03, 0.12), rng.uniform((0, 0), (w, h))
        bokeh = _hsv(rng.choice([0.0, 0.13, 0.9, 0.75]), rng.uniform(0.0, 0.9), rng.uniform(0.7, 1.0))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgb8(bokeh))
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 3.0))))


def _disc_seeds(rng: np.random.Generator, r: float, dark: np.ndarray, light: np.ndarray, n: int):
    """Phyllotaxis dots filling a disc: the seed head of daisies and sunflowers."""
    k = np.arange(n)
    rad, ang = r * np.sqrt((k + 0.5) / n), k * 2.39996 + rng.uniform(0, 2 * np.pi)
    dot = max(0.6, 0.55 * r / math.sqrt(n))
    return [(_ellipse(x, y, dot, dot, n=6), dark if i % 3 else light)
            for i, (x, y) in enumerate(zip(rad * np.cos(ang), rad * np.sin(ang)))]


def _flower_shapes(rng: np.random.Generator, cls: str, r: float):
    """(polygon, fill, outline) list of one flower of class `cls` and radius r, centred at the origin."""
    shapes, j = [], rng.uniform(0, 2 * np.pi)
    if cls == "daisy":
        rc = r * rng.uniform(0.18, 0.3)
        petal = _hsv(rng.random(), rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0))
        n = int(rng.integers(16, 30))
        for i in range(n):
            c = petal * rng.uniform(0.9, 1.0)
            shapes.append((_petal(rc * 0.7, r * rng.uniform(0.85, 1.0) - rc * 0.7, r * rng.uniform(0.1, 0.16),
                                  0.6, j + 2 * np.pi * i / n), c, c * 0.8))
        disc = _hsv(rng.uniform(0.1, 0.16), rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
        shapes.append((_ellipse(0, 0, rc, rc), disc, None))
        shapes += [(p, c, None) for p, c in _disc_seeds(rng, rc, disc * 0.75, disc, 40)]
    elif cls == "dandelion" and rng.random() < 0.7:  # dense spiky yellow head
        base = _hsv(rng.uniform(0.1, 0.16), rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0))
        for ring in range(4):
            n = int(rng.integers(30, 55))
            for i in range(n):
                c = base * rng.uniform(0.8 + 0.05 * ring, 1.0)
                shapes.append((_petal(0, r * (1 - 0.2 * ring) * rng.uniform(0.8, 1.05), r * rng.uniform(0.06, 0.1),
                                      1.2, j + 2 * np.pi * (i + rng.random()) / n), c, c * 0.8))
    elif cls == "dandelion":  # seed puffball: grey-white fibres radiating from a small core
        fibre = _hsv(rng.random(), rng.uniform(0.0, 0.08), rng.uniform(0.75, 0.95))
        shapes.append((_ellipse(0, 0, r * 0.95, r * 0.95), fibre * 0.85, None))
        for i in range(int(rng.integers(60, 110))):
            a = j + rng.uniform(0, 2 * np.pi)
            shapes.append((_petal(r * 0.1, r * rng.uniform(0.8, 1.0), max(1.0, r * 0.025), 1.0, a), fibre, None))
        shapes.append((_ellipse(0, 0, r * 0.12, r * 0.12), _hsv(0.08, 0.5, 0.4), None))
    elif cls == "roses":  # spiral of rounded overlapping petals, darker inside
        base = _hsv(rng.choice([0.0, 0.97, 0.93, 0.05, 0.12]) + rng.normal(0, 0.015),
                    rng.uniform(0.35, 0.95), rng.uniform(0.55, 0.95))
        layers = int(rng.integers(4, 7))
        for i in range(layers):
            ri, n = r * (1 - 0.8 * i / layers), int(rng.integers(5, 8))
            for k in range(n):
                c = base * (1 - 0.3 * i / layers) * rng.uniform(0.92, 1.0)
                ang = j + 0.7 * i + 2 * np.pi * k / n  # each layer turned further: the spiral
                shapes.append((_petal(ri * 0.1, ri * 0.9, 2 * np.pi * ri / n * 1.2, 0.4, ang), c, c * 0.55))
        t = np.linspace(0, 3 * np.pi, 24)
        shapes.append((np.stack([np.cos(t + j), np.sin(t + j)], 1) * (r * 0.2 * t / (3 * np.pi))[:, None],
                       None, base * 0.45))
    elif cls == "sunflowers":  # big dark disc in a ring of pointed yellow petals
        rd = r * rng.uniform(0.35, 0.5)
        yellow = _hsv(rng.uniform(0.1, 0.15), rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0))
        for ring in range(2):
            n = int(rng.integers(18, 30))
            for i in range(n):
                c = yellow * rng.uniform(0.85, 1.0) * (0.85 if ring == 0 else 1.0)
                shapes.append((_petal(rd * 0.85, (r - rd * 0.85) * rng.uniform(0.85, 1.0), 2 * np.pi * rd / n * 1.4,
                                      0.9, j + 2 * np.pi * (i + 0.5 * ring) / n), c, c * 0.75))
        disc = _hsv(rng.uniform(0.04, 0.1), rng.uniform(0.5, 0.85), rng.uniform(0.15, 0.4))
        shapes.append((_ellipse(0, 0, rd, rd), disc, None))
        seeds = _disc_seeds(rng, rd, disc * 0.6, disc * 1.6, int(rng.integers(60, 140)))
        shapes += [(p, c, None) for p, c in seeds]
    elif cls == "tulips":  # a cup of three tall petals on a stem with a long leaf
        base = _hsv(rng.choice([0.0, 0.97, 0.9, 0.05, 0.13, 0.78]) + rng.normal(0, 0.015),
                    rng.uniform(0.3, 0.95), rng.uniform(0.6, 1.0))
        cup_h, cup_w, green = r * rng.uniform(1.6, 2.0), r * rng.uniform(1.1, 1.5), _hsv(0.3, 0.7, 0.45)
        bottom = np.array([0.0, cup_h * 0.5])
        shapes.append((np.array([bottom, bottom + [0, 3 * r]]), None, green * rng.uniform(0.8, 1.2)))
        leaf = _petal(0, cup_h * 1.4, cup_w * 0.35, 1.0, -np.pi / 2 + rng.uniform(-0.7, 0.7))
        shapes.append((bottom + [0, 1.5 * r] + leaf, green * rng.uniform(0.7, 1.1), None))
        for a, f, wf in ((-0.28, 0.8, 0.65), (0.28, 0.8, 0.65), (0.0, 1.0, 0.7)):
            c = base * f * rng.uniform(0.92, 1.0)
            shapes.append((bottom + _petal(0, cup_h * rng.uniform(0.92, 1.0), cup_w * wf, 0.55, -np.pi / 2 + a),
                           c, c * 0.7))
    else:
        raise ValueError(f"flower class {cls!r} is not one of {GENERATION_ORDER}")
    return shapes


def _flower_example(rng: np.random.Generator, h: int, w: int, cls: str) -> Image.Image:
    """One flower photo: a main flower filling 40-90% of the frame, maybe smaller ones behind it."""
    img = _flower_background(rng, h, w)
    draw = ImageDraw.Draw(img)
    side = min(h, w)
    sizes = [side * rng.uniform(0.08, 0.18) for _ in range(rng.integers(0, 3) * (rng.random() < 0.4))]
    for i, r in enumerate(sizes + [side * rng.uniform(0.2, 0.45)]):
        main = i == len(sizes)
        centre = rng.uniform((r * 0.8, r * 0.8), (w - r * 0.8, h - r * 0.8)) if main else rng.uniform((0, 0), (w, h))
        # tilt (squash) then turn: the flower seen from a random viewpoint
        ang = rng.uniform(-0.4, 0.4) if cls == "tulips" else rng.uniform(0, 2 * np.pi)
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        affine = rot @ np.diag([1.0, 1.0 if cls == "tulips" else rng.uniform(0.6, 1.0)])
        if cls != "tulips" and rng.random() < 0.5:  # stem
            draw.line(_poly(np.array([centre, centre + [rng.uniform(-r, r), 4 * r]])),
                      fill=_rgb8(_hsv(0.3, 0.7, 0.45)), width=max(1, round(r * 0.12)))
        for pts, fill, outline in _flower_shapes(rng, cls, r):
            xy = _poly(pts @ affine.T + centre)
            if fill is None:  # a polyline: stem or spiral
                draw.line(xy, fill=_rgb8(outline), width=max(1, round(r * (0.12 if cls == "tulips" else 0.03))))
            else:
                draw.polygon(xy, fill=_rgb8(fill), outline=None if outline is None else _rgb8(outline))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    return Image.fromarray(_finish(np.asarray(img, np.float32) / 255.0, rng, rng.uniform(0.0, 0.03)))


def generate_flowers(
    out_dir: Path, per_class: int, seed: int, *, size_range: tuple[int, int], jpeg_quality: int
) -> Path:
    """Write a synthetic tf_flowers `flower_photos/<class>/*.jpg` tree under out_dir, photo sides drawn from
    `size_range`, JPEGs at `jpeg_quality`; return its flower_photos."""
    if per_class < 1:
        raise ValueError(
            f"per_class={per_class}: need at least 1 image per class; raise data.synthetic.flowers_per_class"
        )
    lo, hi = size_range
    _check_sides(lo, hi, "size_range", "set data.synthetic.flowers_min_side <= flowers_max_side")
    root = Path(out_dir) / "flower_photos"
    with _atomic_dir(root, set(GENERATION_ORDER), "flower_photos tree") as tmp:
        bar = tqdm(total=per_class * len(GENERATION_ORDER), desc=f"synthetic flowers -> {root}", unit="img")
        for c, cls in enumerate(GENERATION_ORDER):
            (tmp / cls).mkdir()
            for i in range(per_class):
                rng = np.random.default_rng([seed, 2, c, i])
                # tf_flowers files are Flickr names: <photo id>_<10 hex secret>.jpg
                name = f"{rng.integers(10**8, 10**11)}_{rng.bytes(5).hex()}.jpg"
                h, w = (int(x) for x in rng.integers(lo, hi + 1, 2))
                _save_jpeg(_flower_example(rng, h, w, cls), tmp / cls / name, jpeg_quality)
                bar.update()
        bar.close()
    return root
