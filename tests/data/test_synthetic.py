"""Synthetic Oxford-IIIT Pet and tf_flowers releases: exact layouts, determinism, atomic writes, difficulty."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionflow.data import synthetic
from visionflow.data.synthetic import GENERATION_ORDER, PET_BREEDS, breed_ids, generate_flowers, generate_pets

LINE = re.compile(r"^(\w+)_(\d+) (\d+) ([12]) (\d+)$")
FLICKR_NAME = re.compile(r"^\d+_[0-9a-f]{10}\.jpg$")


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_list(path: Path) -> list[tuple[str, int, int, int]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"{path}: bad line {line!r}"
        rows.append((f"{m[1]}_{m[2]}", int(m[3]), int(m[4]), int(m[5])))
    return rows


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    return generate_pets(tmp_path_factory.mktemp("pets") / "release", 12, 64, 96, seed=3, jpeg_quality=90)


@pytest.fixture(scope="module")
def flowers(tmp_path_factory) -> Path:
    return generate_flowers(tmp_path_factory.mktemp("flowers") / "raw", 4, seed=3, size_range=(64, 96), jpeg_quality=90)


def test_pets_release_layout(pets):
    ann = pets / "annotations"
    assert sorted(p.name for p in pets.iterdir()) == ["annotations", "images"]
    header = [line for line in (ann / "list.txt").read_text().splitlines() if line.startswith("#")]
    assert header and (ann / "list.txt").read_text().startswith(header[0])
    everything, trainval, test = (_read_list(ann / f) for f in ("list.txt", "trainval.txt", "test.txt"))
    assert len(everything) == 12 and sorted(trainval + test) == sorted(everything)
    assert not {r[0] for r in trainval} & {r[0] for r in test}
    assert sorted(p.stem for p in (ann / "xmls").glob("*.xml")) == sorted(r[0] for r in trainval)
    assert {r[2] for r in everything} == {1, 2}
    for breed in PET_BREEDS:  # two images per breed: one in each split
        assert sum(r[0].startswith(breed + "_") for r in trainval) == 1
    for name, class_id, species, breed_id in everything:
        breed = name.rsplit("_", 1)[0]
        assert (class_id, breed_id) == breed_ids(breed) and species == (1 if breed[0].isupper() else 2)
        with Image.open(pets / "images" / f"{name}.jpg") as img:
            assert img.format == "JPEG" and img.mode == "RGB" and "progressive" not in img.info
            size = img.size
        assert 64 <= min(size) and max(size) <= 96
        with Image.open(ann / "trimaps" / f"{name}.png") as tm:
            assert tm.mode == "L" and tm.size == size
            values = set(np.unique(np.asarray(tm)).tolist())
        assert values == {1, 2, 3}, name
    for name, _, species, _ in trainval:
        root = ET.parse(ann / "xmls" / f"{name}.xml").getroot()
        w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
        assert (w, h) == Image.open(pets / "images" / f"{name}.jpg").size
        assert root.findtext("filename") == f"{name}.jpg"
        assert root.findtext("object/name") == ("cat" if species == 1 else "dog")
        box = [int(root.findtext(f"object/bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        assert 1 <= box[0] < box[2] <= w and 1 <= box[1] < box[3] <= h, (name, box)


def test_pets_head_box_lies_on_the_pet(pets):
    for xml in sorted((pets / "annotations" / "xmls").glob("*.xml")):
        root = ET.parse(xml).getroot()
        x0, y0, x1, y1 = (int(root.findtext(f"object/bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        trimap = np.asarray(Image.open(pets / "annotations" / "trimaps" / f"{xml.stem}.png"))
        inside = trimap[y0 - 1 : y1, x0 - 1 : x1]
        assert (inside != 2).mean() > 0.5, f"{xml.name}: head box mostly background"
        assert (inside != 2).sum() < (trimap != 2).sum(), f"{xml.name}: head box holds the whole pet"


def test_pets_match_the_real_release_format(pets, pets_sample):
    real_ann, ann = pets_sample / "annotations", pets / "annotations"
    for f in ("list.txt", "trainval.txt", "test.txt"):
        real = [line for line in (real_ann / f).read_text().splitlines() if not line.startswith("#")]
        assert all(LINE.match(line) for line in real)  # the pattern our files are checked against is the real one
        for line in (ann / f).read_text().splitlines():
            assert line.startswith("#") or LINE.match(line)
    for line in real:  # class and breed ids of the real lines follow from the breed name
        name, class_id, species, breed_id = line.split()
        breed = name.rsplit("_", 1)[0]
        assert breed_ids(breed) == (int(class_id), int(breed_id)) and synthetic.species_of(breed) == int(species)
    real_xml = next(iter(sorted((real_ann / "xmls").glob("*.xml"))))
    ours = next(iter(sorted((ann / "xmls").glob("*.xml"))))
    tags = lambda p: [e.tag for e in ET.parse(p).getroot().iter()]  # noqa: E731
    assert tags(ours) == tags(real_xml)
    assert ours.read_bytes().endswith(b"</annotation>\n") and real_xml.read_bytes().endswith(b"</annotation>\n")


def test_release_breeds_are_the_tfds_classes():
    spec = importlib.util.find_spec("tensorflow_datasets")  # locates the package without importing TensorFlow
    builder = Path(spec.origin).parent / "datasets" / "oxford_iiit_pet" / "oxford_iiit_pet_dataset_builder.py"
    tree = ast.parse(builder.read_text())
    names = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_LABEL_CLASSES")
    assert list(synthetic.RELEASE_BREEDS) == names
    assert set(PET_BREEDS) <= set(names)


def test_pets_are_deterministic(pets, tmp_path):
    again = generate_pets(tmp_path / "again", 12, 64, 96, seed=3, jpeg_quality=90)
    other = generate_pets(tmp_path / "other", 12, 64, 96, seed=4, jpeg_quality=90)
    assert _tree_hashes(again) == _tree_hashes(pets)
    ours, theirs = _tree_hashes(pets), _tree_hashes(other)
    images = [k for k in ours if k.startswith("images/")]
    assert len(images) == 12 and all(ours[k] != theirs[k] for k in images)  # same names, new pictures


def test_rewrite_replaces_and_a_crash_keeps_the_old_release(tmp_path, monkeypatch):
    out = tmp_path / "pets"
    generate_pets(out, 12, 64, 80, seed=1, jpeg_quality=90)
    generate_pets(out, 12, 64, 80, seed=2, jpeg_quality=90)
    assert _tree_hashes(out) == _tree_hashes(generate_pets(tmp_path / "fresh", 12, 64, 80, seed=2, jpeg_quality=90))
    before = _tree_hashes(out)
    calls = []

    def failing_save(pixels, path, quality):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk full")
        synthetic_save(pixels, path, quality)

    synthetic_save = synthetic.pets._save_jpeg
    monkeypatch.setattr(synthetic.pets, "_save_jpeg", failing_save)
    with pytest.raises(OSError, match="disk full"):
        generate_pets(out, 12, 64, 80, seed=9, jpeg_quality=90)
    assert _tree_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "pets"]  # no partial folders left behind


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r": exists and is not a pet release.*refusing to replace it"):
        generate_pets(tmp_path, 12, 64, 80, seed=0, jpeg_quality=90)
    (tmp_path / "flower_photos").mkdir()
    (tmp_path / "flower_photos" / "README").write_text("keep me")
    with pytest.raises(ValueError, match="flower_photos: exists"):
        generate_flowers(tmp_path, 2, seed=0, size_range=(64, 64), jpeg_quality=90)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: generate_pets(p, 5, 64, 80, 0, jpeg_quality=90), r"n_images=5: need at least 12.*pets_images"),
        (lambda p: generate_pets(p, 12, 90, 80, 0, jpeg_quality=90),
         r"min_side, max_side=90, 80: .*32 <= low <= high.*pets_min_side"),
        (lambda p: generate_pets(p, 12, 8, 80, 0, jpeg_quality=90), r"min_side, max_side=8, 80"),
        (lambda p: generate_flowers(p, 0, 0, size_range=(160, 320), jpeg_quality=90),
         r"per_class=0.*flowers_per_class"),
        (lambda p: generate_flowers(p, 2, 0, size_range=(200, 100), jpeg_quality=90),
         r"size_range=200, 100: .*data.synthetic.flowers_min_side"),
    ],
)
def test_bad_arguments_are_named(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_breed_is_named():
    with pytest.raises(ValueError, match="'abyssinian' is not one of the 37"):
        breed_ids("abyssinian")


def test_pets_are_not_trivially_solvable(tmp_path):
    root = generate_pets(tmp_path / "pets", 36, 64, 96, seed=11, jpeg_quality=90)
    fractions, centres, pixels, labels = [], [], [], []
    for img_path in sorted((root / "images").glob("*.jpg")):
        trimap = np.asarray(Image.open(root / "annotations" / "trimaps" / f"{img_path.stem}.png"))
        image = np.asarray(Image.open(img_path))
        pet = trimap != 2
        ys, xs = np.nonzero(pet)
        fractions.append(pet.mean())
        centres.append((xs.mean() / pet.shape[1], ys.mean() / pet.shape[0]))
        keep = trimap != 3
        pixels.append(image[keep])
        labels.append(trimap[keep] == 1)
    assert np.std(fractions) > 0.05 and max(fractions) > 2 * min(fractions)  # the pet size varies a lot
    assert np.std(np.array(centres), axis=0).min() > 0.05  # and it is not always centred
    x, y = np.concatenate(pixels).astype(np.int64), np.concatenate(labels)
    best_acc = best_balanced = 0.0
    for c in range(3):  # every threshold on every channel, either direction, from cumulative histograms
        pet_le = np.cumsum(np.bincount(x[y, c], minlength=256))
        bg_le = np.cumsum(np.bincount(x[~y, c], minlength=256))
        n_pet, n_bg = pet_le[-1], bg_le[-1]
        for tp, tn in ((n_pet - pet_le, bg_le), (pet_le, n_bg - bg_le)):
            best_acc = max(best_acc, ((tp + tn) / (n_pet + n_bg)).max())
            best_balanced = max(best_balanced, (0.5 * (tp / n_pet + tn / n_bg)).max())
    assert best_acc < 0.85 and best_balanced < 0.7, (best_acc, best_balanced)


def test_flowers_layout(flowers):
    assert flowers.name == "flower_photos"
    assert sorted(p.name for p in flowers.iterdir()) == list(GENERATION_ORDER)
    for cls in GENERATION_ORDER:
        files = sorted((flowers / cls).iterdir())
        assert len(files) == 4 and all(FLICKR_NAME.match(f.name) for f in files), files
        for f in files:
            with Image.open(f) as img:
                assert img.format == "JPEG" and img.mode == "RGB" and 64 <= min(img.size) <= max(img.size) <= 96


def test_flowers_are_deterministic(flowers, tmp_path):
    again = generate_flowers(tmp_path / "a", 4, seed=3, size_range=(64, 96), jpeg_quality=90)
    assert _tree_hashes(again) == _tree_hashes(flowers)
    other = _tree_hashes(generate_flowers(tmp_path / "b", 4, seed=5, size_range=(64, 96), jpeg_quality=90))
    assert not set(other.values()) & set(_tree_hashes(flowers).values())


def test_flowers_are_not_solvable_by_mean_colour(tmp_path):
    root = generate_flowers(tmp_path, 12, seed=7, size_range=(64, 80), jpeg_quality=90)
    x, y = [], []
    for c, cls in enumerate(GENERATION_ORDER):
        for f in sorted((root / cls).glob("*.jpg")):
            x.append(np.asarray(Image.open(f), np.float32).reshape(-1, 3).mean(axis=0))
            y.append(c)
    x, y = np.array(x), np.array(y)
    train = np.arange(len(y)) % 2 == 0
    means = np.stack([x[train & (y == c)].mean(axis=0) for c in range(len(GENERATION_ORDER))])  # (5, 3)
    pred = np.argmin(((x[~train, None] - means) ** 2).sum(axis=-1), axis=1)
    assert (pred == y[~train]).mean() < 0.8
