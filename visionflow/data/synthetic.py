"""Offline stand-ins for the Oxford-IIIT Pet and tf_flowers releases, drawn procedurally in their exact layouts."""

from __future__ import annotations

import colorsys
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from visionflow.files import temp_path

# The release's 37 breed names in its class-id order (class id = index + 1); cat breeds are capitalised.
RELEASE_BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal",
    "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
    "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug",
    "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "Siamese",
    "Sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
)
# The breeds drawn: the three of the shared real sample plus three more, three cats and three dogs.
PET_BREEDS = ("Abyssinian", "american_bulldog", "Bengal", "beagle", "Persian", "pug")
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")

# Verbatim header of the release's annotations/list.txt (its typos included).
_LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n#SPECIES: 1:Cat 2:Dog\n"
    "#BREED ID: 1-25:Cat 1:12:Dog\n#All images with 1st letter as captial are cat images\n"
    "#images with small first letter are dog images\n"
)
_XML = (
    "<annotation><folder>OXIIIT</folder><filename>{name}.jpg</filename><source><database>OXFORD-IIIT Pet "
    "Dataset</database><annotation>OXIIIT</annotation><image>flickr</image></source><size><width>{w}</width>"
    "<height>{h}</height><depth>3</depth></size><segmented>0</segmented><object><name>{species}</name>"
    "<pose>Frontal</pose><truncated>0</truncated><occluded>0</occluded><bndbox><xmin>{x0}</xmin>"
    "<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox><difficult>0</difficult></object>"
    "</annotation>\n"
)
_JPEG_QUALITY = 90  # fixed so that files are byte-identical across runs
_MIN_SIDE = 32  # smaller canvases cannot hold a recognisable pet or flower
# Fur-like colours (HSV) shared by pets and background clutter, so colour alone cannot find the pet.
_FUR_HSV = ((0.08, 0.55, 0.55), (0.07, 0.75, 0.85), (0.10, 0.25, 0.88), (0.0, 0.0, 0.5), (0.0, 0.0, 0.15),
            (0.0, 0.0, 0.92), (0.09, 0.45, 0.3))


def species_of(breed: str) -> int:
    """Species id of a release breed name: 1 = cat (capitalised), 2 = dog."""
    return 1 if breed[0].isupper() else 2


def breed_ids(breed: str) -> tuple[int, int]:
    """(class id 1..37, breed id within its species) of a release breed name."""
    if breed not in RELEASE_BREEDS:
        raise ValueError(f"breed {breed!r} is not one of the 37 Oxford-IIIT Pet breeds (names are case-sensitive, "
                         "e.g. 'Abyssinian', 'american_bulldog'); check the image name")
    same = [b for b in RELEASE_BREEDS if species_of(b) == species_of(breed)]
    return RELEASE_BREEDS.index(breed) + 1, same.index(breed) + 1


# ---------------------------------------------------------------- shared drawing helpers


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


def _save_jpeg(pixels: np.ndarray | Image.Image, path: Path) -> None:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels, "RGB")
    img.save(path, "JPEG", quality=_JPEG_QUALITY)  # baseline (not progressive), no EXIF


@contextmanager
def _atomic_dir(target: Path, own: set[str], what: str) -> Iterator[Path]:
    """Yield a temporary sibling of target and swap it into place only when the block succeeds."""
    if target.exists() and (not target.is_dir() or not {p.name for p in target.iterdir()} <= own):
        raise ValueError(
            f"{target}: exists and is not a {what} written by this generator (only {sorted(own)} may be "
            "inside); refusing to replace it: remove it or choose another output folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target, ".partial")
    tmp.mkdir()
    try:
        yield tmp
        tmp.chmod(0o755)
        if target.exists():
            trash = temp_path(target, ".old")
            trash.mkdir()
            os.replace(target, trash / target.name)
            os.replace(tmp, target)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _check_sides(lo: int, hi: int, names: str, fix: str) -> None:
    if lo < _MIN_SIDE or hi < lo:
        raise ValueError(f"{names}={lo}, {hi}: image sides must satisfy {_MIN_SIDE} <= low <= high; {fix}")


# ---------------------------------------------------------------- pets


def _pet_parts(rng: np.random.Generator, cat: bool):
    """Polygons and thick polylines of a pet in body units, facing right, y down; tone 1 = base fur."""
    polys, lines, head = [], [], []  # polys: (pts, tone); lines: (pts, width); head: head-part polygons
    pose = rng.choice(["side", "sitting", "lying"])
    rh = rng.uniform(0.3, 0.4) if cat else rng.uniform(0.36, 0.5)
    if pose == "side":
        b = rng.uniform(0.4, 0.6)
        polys.append((_ellipse(0, 0, 1.0, b), 1.0))
        hc = np.array([0.95, -b * 0.9])
        for x in (-0.65, -0.4, 0.45, 0.7):
            lines.append((np.array([[x, b * 0.4], [x + rng.uniform(-0.15, 0.15), b + rng.uniform(0.4, 0.7)]]),
                          0.13 if cat else 0.2))
        tail0 = np.array([-0.95, -0.1])
    elif pose == "sitting":
        a, b = rng.uniform(0.5, 0.7), rng.uniform(0.75, 0.95)
        polys.append((_ellipse(0, 0.2, a, b), 1.0))
        hc = np.array([rng.uniform(-0.1, 0.1), 0.2 - b - rh * 0.55])
        for x in (-0.25, 0.25):
            lines.append((np.array([[x, 0.3], [x, 0.2 + b + 0.05]]), 0.15 if cat else 0.22))
        tail0 = np.array([a * 0.8, 0.2 + b * 0.7])
    else:  # lying: long flat body, head resting low, front paws forward
        b = rng.uniform(0.3, 0.42)
        polys.append((_ellipse(0, 0, 1.1, b), 1.0))
        hc = np.array([1.05, -b * 0.4])
        for dy in (0.1, 0.25):
            lines.append((np.array([[0.7, b * dy + 0.2], [1.55, b * dy + 0.25]]), 0.14 if cat else 0.2))
        tail0 = np.array([-1.05, 0.0])
    bend = rng.uniform(-0.3, 0.3, size=(3, 2))
    if cat:  # long thin curling tail
        tail = tail0 + np.array([[0, 0], [-0.45, -0.3], [-0.55, -0.8], [-0.35, -1.1]]) + np.vstack([[0, 0], bend])
        lines.append((tail, 0.1))
    else:
        tail = tail0 + np.array([[0, 0], [-0.3, -0.3], [-0.45, -0.55]]) + np.vstack([[0, 0], bend[:2]])
        lines.append((tail, 0.13))
    head.append(_ellipse(hc[0], hc[1], rh * rng.uniform(1.0, 1.15), rh))
    ear_tone = rng.uniform(0.55, 0.9)
    for side in (-1, 1):
        if cat:  # pointy upright triangles
            base = [hc + rh * np.array([math.cos(a), math.sin(a)]) for a in -np.pi / 2 + side * np.array([0.25, 1.05])]
            tip = hc + rh * np.array([side * 0.75, -1.55]) + rng.normal(0, 0.05, 2)
            polys.append((np.array([base[0], tip, base[1]]), ear_tone))
        else:  # floppy ears hanging beside the head
            polys.append((_ellipse(hc[0] + side * rh * 0.95, hc[1] + rh * 0.25, rh * 0.3, rh * 0.65,
                                   side * rng.uniform(-0.35, 0.1)), ear_tone))
        head.append(polys[-1][0])
    if not cat:  # muzzle
        polys.append((_ellipse(hc[0] + rh * 0.15, hc[1] + rh * 0.45, rh * 0.55, rh * 0.4), rng.uniform(1.0, 1.3)))
        head.append(polys[-1][0])
    polys.insert(1, (head[0], 1.0))
    return polys, lines, head, hc, rh


def _draw_pet(rng: np.random.Generator, h: int, w: int, cat: bool):
    """Place a random pet: returns its hard mask, head mask, tone map and face anchors (all in pixels)."""
    polys, lines, head, hc, rh = _pet_parts(rng, cat)
    ang = rng.uniform(-0.5, 0.5)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]]) @ np.diag([flip, 1.0])
    pts = np.vstack([p for p, _ in polys] + [p for p, _ in lines]) @ rot.T
    head_pts = np.vstack(head) @ rot.T
    extent = np.ptp(pts, axis=0).max() + 0.2
    s = rng.uniform(0.7, 1.9) * min(h, w) / extent
    s = min(s, 0.85 * min(h / np.ptp(head_pts[:, 1]), w / np.ptp(head_pts[:, 0])))  # the head must fit
    offset = []
    for ax, side in ((0, w), (1, h)):
        lo_p, hi_p = pts[:, ax].min() * s, pts[:, ax].max() * s
        lo_h, hi_h = head_pts[:, ax].min() * s, head_pts[:, ax].max() * s
        # any position keeping the head in frame; the body may leave it (truncated pets are common)
        lo, hi = max(1 - lo_h, 0.1 * side - hi_p), min(side - 2 - hi_h, 0.9 * side - lo_p)
        if lo > hi:
            lo, hi = 1 - lo_h, side - 2 - hi_h
        offset.append(rng.uniform(lo, max(lo, hi)))

    def to_px(p: np.ndarray) -> list[tuple[float, float]]:
        return _poly(p @ rot.T * s + np.array(offset))

    mask, head_mask = Image.new("L", (w, h), 0), Image.new("L", (w, h), 0)
    tone = Image.new("L", (w, h), 128)
    dm, dh, dt = ImageDraw.Draw(mask), ImageDraw.Draw(head_mask), ImageDraw.Draw(tone)
    for p, width in lines:
        dm.line(to_px(p), fill=255, width=max(2, round(width * s)), joint="curve")
    for p, t in polys:
        dm.polygon(to_px(p), fill=255)
        dt.polygon(to_px(p), fill=int(np.clip(128 * t, 0, 255)))
    for p in head:
        dh.polygon(to_px(p), fill=255)
    face = [to_px(hc[None] + rh * np.array([[dx, -0.1]]))[0] for dx in (-0.4, 0.4)]
    nose = to_px(hc[None] + rh * np.array([[0.0, 0.35 if cat else 0.5]]))[0]
    return mask, head_mask, tone, face, nose, rh * s, ang


def _pet_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient wall, optional floor, textured clutter and pet-coloured distractor blobs (no heads)."""
    canvas = _gradient_canvas(rng, h, w, _colour(rng, 0.5), _colour(rng, 0.5))
    side = min(h, w)
    kinds = ("solid", "gradient", "stripes", "checker", "patches", "spots")
    if rng.random() < 0.5:  # floor or sofa
        floor = Image.new("L", (w, h), 0)
        ImageDraw.Draw(floor).rectangle((0, rng.uniform(0.5, 0.85) * h, w, h), fill=255)
        _paint(canvas, floor, rng=rng, kind=kinds[rng.integers(6)], c1=_colour(rng, 0.5), c2=_colour(rng, 0.5),
               scale=side * rng.uniform(0.03, 0.15))
    for k in range(rng.integers(4, 10)):
        m = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(m)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), side * rng.uniform(0.05, 0.35)
        if k < 2:  # distractor blob: a headless union of ellipses in fur colours and patterns
            for _ in range(rng.integers(2, 4)):
                draw.polygon(_poly(_ellipse(cx + rng.normal(0, r * 0.4), cy + rng.normal(0, r * 0.3), r,
                                            r * rng.uniform(0.4, 0.8), rng.uniform(0, np.pi))), fill=255)
            p_fur = 0.8
        else:
            n = rng.integers(3, 8)
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = r * rng.uniform(0.4, 1.0, n)
            draw.polygon(_poly(np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)), fill=255)
            p_fur = 0.4
        _paint(canvas, m, rng=rng, kind=kinds[rng.integers(6)], c1=_colour(rng, p_fur), c2=_colour(rng, p_fur),
               scale=side * rng.uniform(0.02, 0.12))
    if rng.random() < 0.5:  # depth of field
        img = Image.fromarray((canvas * 255).astype(np.uint8))
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
        canvas = np.asarray(img, np.float32) / 255.0
    return canvas


def _fur_grain(rng: np.random.Generator, h: int, w: int, ang: float) -> np.ndarray:
    """Noise smeared along the body axis: fur strands, the texture cue only pets carry."""
    g = max(1, round(min(h, w) / 100))  # strand width in px, so the grain survives resizing to ~128 px
    noise = rng.standard_normal((h // g + 1, w // g + 1)).astype(np.float32)
    noise = np.asarray(Image.fromarray(noise, "F").resize((w, h), Image.Resampling.BILINEAR))  # (h, w)
    grain = np.zeros_like(noise)
    for t in range(-3 * g, 3 * g + 1, g):
        grain += np.roll(noise, (round(t * math.sin(ang)), round(t * math.cos(ang))), axis=(0, 1))
    return grain / (grain.std() + 1e-6)  # (h, w), unit variance


def _pet_example(rng: np.random.Generator, h: int, w: int, cat: bool):
    """One pet photo: (RGB uint8 image, trimap uint8 with 1/2/3, head box (x0, y0, x1, y1) exclusive)."""
    canvas = _pet_background(rng, h, w)
    mask, head_mask, tone, eyes, nose, head_r, ang = _draw_pet(rng, h, w, cat)
    kind = rng.choice(["solid", "stripes", "spots", "patches", "gradient"], p=[0.25, 0.25, 0.2, 0.2, 0.1])
    c1, c2 = _colour(rng, 0.7), _colour(rng, 0.7)
    tex = _texture(rng, kind, h, w, c1, c2, min(h, w) * rng.uniform(0.03, 0.08))
    # rounded-body shading (darker near the outline) and fur grain along the body axis
    shade = np.asarray(mask.filter(ImageFilter.GaussianBlur(float(max(2.0, head_r * 0.4)))), np.float32) / 255.0
    tex = tex * (np.asarray(tone, np.float32) / 128.0 * (0.55 + 0.45 * shade))[..., None]
    tex = tex + rng.uniform(0.07, 0.15) * _fur_grain(rng, h, w, ang + rng.normal(0, 0.3))[..., None]
    _paint(canvas, mask.filter(ImageFilter.GaussianBlur(0.6)), fill=np.clip(tex, 0, 1))
    img = Image.fromarray(_finish(canvas, rng, rng.uniform(0.0, 0.02)))
    draw = ImageDraw.Draw(img)
    eye_r = max(1.2, head_r * rng.uniform(0.13, 0.18))
    iris = _hsv(rng.uniform(0.12, 0.3), 0.7, 0.7) if cat else _hsv(0.08, 0.7, rng.uniform(0.2, 0.4))
    for x, y in eyes:
        draw.ellipse((x - eye_r, y - eye_r, x + eye_r, y + eye_r), fill=_rgb8(iris), outline=(15, 12, 10))
        pr = eye_r * (0.35 if cat else 0.6)
        draw.ellipse((x - pr * 0.6, y - pr, x + pr * 0.6, y + pr), fill=(10, 8, 8))
    nr = head_r * (0.1 if cat else 0.16)
    draw.polygon([(nose[0] - nr, nose[1] - nr * 0.6), (nose[0] + nr, nose[1] - nr * 0.6), (nose[0], nose[1] + nr)],
                 fill=_rgb8(_hsv(0.98, 0.4, 0.6) if cat else _hsv(0, 0, 0.08)))
    pet = np.asarray(mask) > 127
    k_out, k_in = 2 * int(rng.integers(1, 3)) + 1, 2 * int(rng.integers(1, 3)) + 1  # a 2-4 px band
    outer = np.asarray(mask.filter(ImageFilter.MaxFilter(k_out))) > 127
    inner = np.asarray(mask.filter(ImageFilter.MinFilter(k_in))) > 127
    trimap = np.full((h, w), 2, np.uint8)
    trimap[pet] = 1
    trimap[outer & ~inner] = 3
    return img, trimap, head_mask.getbbox()


def _pet_names(n_images: int, seed: int) -> list[tuple[str, str, bool]]:
    """(image name, list line, is trainval) for every image, in the release's list order."""
    rows = []
    for b, breed in enumerate(PET_BREEDS):
        count = n_images // len(PET_BREEDS) + (b < n_images % len(PET_BREEDS))
        class_id, breed_id = breed_ids(breed)
        order = np.random.default_rng([seed, 0, class_id]).permutation(count)
        trainval = set(order[: (count + 1) // 2].tolist())
        for k in range(count):
            name = f"{breed}_{k + 1}"
            rows.append((class_id, k, name, f"{name} {class_id} {species_of(breed)} {breed_id}\n", k in trainval))
    rows.sort()
    return [(name, line, tv) for _, _, name, line, tv in rows]


def generate_pets(out_dir: Path, n_images: int, min_side: int, max_side: int, seed: int) -> Path:
    """Write a synthetic Oxford-IIIT Pet release (images, trimaps, head-box XMLs, list files) to out_dir."""
    out_dir = Path(out_dir)
    need = 2 * len(PET_BREEDS)
    if n_images < need:
        raise ValueError(f"n_images={n_images}: need at least {need} so every breed has a trainval and a test "
                         "image; raise data.synthetic.pets_images")
    _check_sides(min_side, max_side, "min_side, max_side", "set data.synthetic.pets_min_side/pets_max_side")
    rows = _pet_names(n_images, seed)
    with _atomic_dir(out_dir, {"images", "annotations"}, "pet release") as tmp:
        for sub in ("images", "annotations/trimaps", "annotations/xmls"):
            (tmp / sub).mkdir(parents=True)
        for name, line, trainval in tqdm(rows, desc=f"synthetic pets -> {out_dir}", unit="img"):
            class_id, species = int(line.split()[1]), int(line.split()[2])
            rng = np.random.default_rng([seed, 1, class_id, int(name.rsplit("_", 1)[1])])
            h, w = (int(x) for x in rng.integers(min_side, max_side + 1, 2))
            img, trimap, (x0, y0, x1, y1) = _pet_example(rng, h, w, cat=species == 1)
            _save_jpeg(img, tmp / "images" / f"{name}.jpg")
            Image.fromarray(trimap, "L").save(tmp / "annotations" / "trimaps" / f"{name}.png")
            if trainval:  # the release has head boxes for trainval images only; VOC boxes are 1-based
                xml = _XML.format(name=name, w=w, h=h, species="cat" if species == 1 else "dog",
                                  x0=x0 + 1, y0=y0 + 1, x1=x1, y1=y1)
                (tmp / "annotations" / "xmls" / f"{name}.xml").write_text(xml)
        ann = tmp / "annotations"
        (ann / "list.txt").write_text(_LIST_HEADER + "".join(line for _, line, _ in rows))
        (ann / "trainval.txt").write_text("".join(line for _, line, tv in rows if tv))
        (ann / "test.txt").write_text("".join(line for _, line, tv in rows if not tv))
    return out_dir


# ---------------------------------------------------------------- flowers


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
        raise ValueError(f"flower class {cls!r} is not one of {FLOWER_CLASSES}")
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


def generate_flowers(out_dir: Path, per_class: int, seed: int, size_range: tuple[int, int] = (160, 320)) -> Path:
    """Write a synthetic tf_flowers `flower_photos/<class>/*.jpg` tree under out_dir; return its flower_photos."""
    if per_class < 1:
        raise ValueError(
            f"per_class={per_class}: need at least 1 image per class; raise data.synthetic.flowers_per_class"
        )
    lo, hi = size_range
    _check_sides(lo, hi, "size_range", "pass size_range=(low, high) in pixels")
    root = Path(out_dir) / "flower_photos"
    with _atomic_dir(root, set(FLOWER_CLASSES), "flower_photos tree") as tmp:
        bar = tqdm(total=per_class * len(FLOWER_CLASSES), desc=f"synthetic flowers -> {root}", unit="img")
        for c, cls in enumerate(FLOWER_CLASSES):
            (tmp / cls).mkdir()
            for i in range(per_class):
                rng = np.random.default_rng([seed, 2, c, i])
                # tf_flowers files are Flickr names: <photo id>_<10 hex secret>.jpg
                name = f"{rng.integers(10**8, 10**11)}_{rng.bytes(5).hex()}.jpg"
                h, w = (int(x) for x in rng.integers(lo, hi + 1, 2))
                _save_jpeg(_flower_example(rng, h, w, cls), tmp / cls / name)
                bar.update()
        bar.close()
    return root
