"""Synthetic Oxford-IIIT Pet release: procedural cats and dogs with trimaps, head boxes and list files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from visionflow.data.synthetic.draw import (
    _atomic_dir,
    _check_sides,
    _colour,
    _ellipse,
    _finish,
    _gradient_canvas,
    _hsv,
    _paint,
    _poly,
    _rgb8,
    _save_jpeg,
    _texture,
)

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


def generate_pets(out_dir: Path, n_images: int, min_side: int, max_side: int, seed: int, *, jpeg_quality: int) -> Path:
    """Write a synthetic Oxford-IIIT Pet release (images, trimaps, head-box XMLs, list files) to out_dir; its
    JPEGs at `jpeg_quality` (data.synthetic.jpeg_quality)."""
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
            _save_jpeg(img, tmp / "images" / f"{name}.jpg", jpeg_quality)
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
