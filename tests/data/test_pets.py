"""Oxford-IIIT Pet release parsing and the local TFDS builder: tiny generated layouts and the real sample."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from visionflow.config import load_params
from visionflow.data import pets
from visionflow.data.images import DataSourceError, UnreadableImageError, UnusableFileError
from visionflow.data.tfds_source import open_prepared

REPO = Path(__file__).resolve().parents[2]
BREEDS = {"Abyssinian": (1, 1), "beagle": (5, 2)}  # class id, species as the list files write them (1-based)
W, H = 40, 30
BOX = (4, 3, 20, 15)  # xmin, ymin, xmax, ymax in pixels of a W x H image


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.dstack([yy * 255 // h, xx * 255 // w, np.full((h, w), rng.integers(0, 256))])
    return base.astype(np.uint8)


def _trimap(h: int, w: int) -> np.ndarray:
    trimap = np.full((h, w), 2, np.uint8)  # background
    trimap[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1  # pet
    trimap[h // 4, w // 4 : 3 * w // 4] = 3  # border
    return trimap


def _xml(w: int, h: int, box: tuple[int, int, int, int]) -> str:
    xmin, ymin, xmax, ymax = box
    return (
        f"<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size><object><name>cat</name>"
        f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        "</annotation>"
    )


def write_release(root: Path, per_breed: int = 10) -> Path:
    """A clean release: odd numbers in trainval (with XMLs), even ones in test, and a .mat file in images/."""
    for sub in ("images", "annotations/trimaps", "annotations/xmls"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for b, (breed, (class_id, species)) in enumerate(BREEDS.items()):
        for i in range(1, per_breed + 1):
            name = f"{breed}_{i}"
            Image.fromarray(_photo(H, W, seed=100 * b + i)).save(root / "images" / f"{name}.jpg", "JPEG", quality=90)
            Image.fromarray(_trimap(H, W), "L").save(root / "annotations" / "trimaps" / f"{name}.png")
            split = "trainval" if i % 2 else "test"
            if split == "trainval":
                (root / "annotations" / "xmls" / f"{name}.xml").write_text(_xml(W, H, BOX))
            lines[split].append(f"{name} {class_id} {species} {i}")
    for split, rows in lines.items():
        (root / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    (root / "annotations" / "list.txt").write_text(header + "\n".join(lines["trainval"] + lines["test"]) + "\n")
    (root / "images" / "Abyssinian_100.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    return root


def write_quirky_release(root: Path) -> Path:
    """A release with one of each quirk of the real data (see the expectations in the tests below)."""
    write_release(root)
    images, trimaps = root / "images", root / "annotations" / "trimaps"
    rgba = np.dstack([_photo(H, W, 1), np.full((H, W), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(images / "Abyssinian_1.jpg", "PNG")  # PNG + alpha in a .jpg
    Image.fromarray(_trimap(H // 2, W // 2), "L").save(trimaps / "Abyssinian_3.png")  # half-size trimap
    (trimaps / "Abyssinian_5.png").unlink()  # image without trimap
    (root / "annotations" / "xmls" / "Abyssinian_7.xml").unlink()  # trainval image without head box
    Image.fromarray(_photo(3 * H, 3 * W, 9)).save(images / "Abyssinian_9.jpg", "JPEG")  # 120x90: too large
    Image.fromarray(_trimap(3 * H, 3 * W), "L").save(trimaps / "Abyssinian_9.png")
    data = (images / "beagle_1.jpg").read_bytes()
    (images / "beagle_1.jpg").write_bytes(data[: len(data) // 2])  # truncated
    bad = _trimap(H, W)
    bad[0, :3] = (0, 5, 255)
    Image.fromarray(bad, "L").save(trimaps / "beagle_3.png")  # values outside {1, 2, 3}
    (images / "beagle_5.jpg").unlink()  # listed, file missing
    Image.fromarray(_photo(H, W, 2)[..., 0], "L").save(images / "Abyssinian_2.jpg", "JPEG")  # grayscale (test)
    cmyk = np.zeros((H, W, 4), np.uint8)
    cmyk[..., 1] = 200
    Image.fromarray(cmyk, "CMYK").save(images / "beagle_2.jpg", "JPEG")  # CMYK (test)
    Image.fromarray(_photo(H, W, 3)).save(images / "Bengal_1.jpg", "JPEG")  # in images/, in no list
    return root


MAX_SIDE = 64  # below the 120 px of Abyssinian_9, above the 40 px of the others
EXPECTED_SKIPPED = {
    "images/Abyssinian_5.jpg": "no trimap",
    "images/beagle_5.jpg": "file is missing",
    "images/beagle_1.jpg": "cannot decode image",
    "annotations/trimaps/beagle_3.png": "outside {1, 2, 3}",
    "images/Bengal_1.jpg": "in neither annotations/trainval.txt nor annotations/test.txt",
    "images/Abyssinian_100.mat": ".mat file",
}
EXPECTED_FIXED = {
    "images/Abyssinian_1.jpg": "png in .jpg, rgba->rgb; re-encoded as jpeg",
    "annotations/trimaps/Abyssinian_3.png": "trimap 20x15 did not match the image: resized to 40x30 (nearest)",
    "images/Abyssinian_9.jpg": "downscaled 120x90->64x48; re-encoded as jpeg",
    "annotations/trimaps/Abyssinian_9.png": "trimap 120x90 downscaled with the image: resized to 64x48 (nearest)",
    "images/Abyssinian_2.jpg": "grayscale->rgb; re-encoded as jpeg",
    "images/beagle_2.jpg": "cmyk->rgb; re-encoded as jpeg",
}


@pytest.fixture
def release(tmp_path) -> Path:
    return write_release(tmp_path / "pets")


@pytest.fixture
def quirky(tmp_path) -> Path:
    return write_quirky_release(tmp_path / "pets")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_parse_release_clean(release):
    records, skipped = pets.parse_release(release, "trainval")
    assert skipped == []
    assert [r.name for r in records] == [f"{breed}_{i}" for breed in BREEDS for i in (1, 3, 5, 7, 9)]
    first, dog = records[0], records[-1]
    assert (first.label, first.species) == (0, 0)  # class id 1 -> breed 0 (Abyssinian), species 1 -> cat
    assert (dog.label, dog.species) == (4, 1)  # class id 5 -> beagle, species 2 -> dog
    assert first.image_path == release / "images" / "Abyssinian_1.jpg"
    assert first.trimap_path == release / "annotations" / "trimaps" / "Abyssinian_1.png"
    assert first.xml_path == release / "annotations" / "xmls" / "Abyssinian_1.xml"
    test_records, _ = pets.parse_release(release, "test")
    assert len(test_records) == 10 and all(r.xml_path is None for r in test_records)
    everything, _ = pets.parse_release(release, "list")  # comment lines of the official list.txt are skipped
    assert len(everything) == 20


def test_parse_release_reports_missing_files(quirky):
    records, skipped = pets.parse_release(quirky, "trainval")
    names = {r.name for r in records}
    assert "Abyssinian_5" not in names and "beagle_5" not in names
    assert "beagle_1" in names  # decoding problems are found when reading, not when listing
    reasons = {row["file"]: row["reason"] for row in skipped}
    assert reasons == {
        "images/Abyssinian_5.jpg": "no trimap (annotations/trimaps/Abyssinian_5.png is missing)",
        "images/beagle_5.jpg": "listed in annotations/trainval.txt but the file is missing",
    }
    unused = {row["file"]: row["reason"] for row in pets.unused_files(quirky)}
    assert set(unused) == {"images/Abyssinian_100.mat", "images/Bengal_1.jpg"}
    assert ".mat file" in unused["images/Abyssinian_100.mat"]


def test_duplicate_list_entry_is_skipped(release):
    listing = release / "annotations" / "test.txt"
    listing.write_text(listing.read_text() + "Abyssinian_2 1 1 2\n")
    records, skipped = pets.parse_release(release, "test")
    assert [r.name for r in records].count("Abyssinian_2") == 1
    assert skipped == [{"file": "images/Abyssinian_2.jpg", "reason": "listed twice in annotations/test.txt (line 11)"}]


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("", "not found or not a folder"),
        ("images", "images/ not found under"),
        ("annotations/trimaps", "annotations/trimaps/ not found under"),
        ("annotations/trainval.txt", "annotations/trainval.txt not found under"),
    ],
)
def test_layout_errors_name_the_param(release, remove, message):
    import shutil

    target = release / remove if remove else release
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(DataSourceError, match=f"data.pets_dir: .*{message}") as info:
        pets.parse_release(release, "trainval")
    assert str(release) in str(info.value) and "Oxford-IIIT Pet release layout" in str(info.value)
    with pytest.raises(DataSourceError, match="^--data: "):
        pets.prepare_local(release, release.parent / "out", max_image_side=MAX_SIDE, param="--data")
    assert not (release.parent / "out").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Abyssinian_1 1 1", "expected 'NAME CLASS-ID SPECIES BREED-ID'"),
        ("Abyssinian_1 x 1 1", "expected 'NAME CLASS-ID SPECIES BREED-ID'"),
        ("../etc 1 1 1", "expected 'NAME"),
        ("Abyssinian_1 38 1 1", "CLASS-ID must be 1..37"),
        ("Abyssinian_1 1 3 1", "CLASS-ID must be 1..37 and SPECIES 1 \\(cat\\) or 2 \\(dog\\)"),
    ],
)
def test_bad_list_lines_name_file_and_line(release, line, message):
    listing = release / "annotations" / "trainval.txt"
    listing.write_text(listing.read_text() + line + "\n")
    with pytest.raises(DataSourceError, match=f"trainval.txt:11: {message}"):
        pets.parse_release(release, "trainval")


def test_list_name_is_checked(release):
    with pytest.raises(ValueError, match="list_name must be one of"):
        pets.parse_release(release, "train")


def _record(root: Path, name: str) -> pets.PetRecord:
    records, _ = pets.parse_release(root, "list")
    return next(r for r in records if r.name == name)


def test_read_example_values(release):
    example, fixes = pets.read_example(_record(release, "beagle_3"), MAX_SIDE)
    assert fixes == []
    assert example["image"].shape == (H, W, 3) and example["image"].dtype == np.uint8
    np.testing.assert_array_equal(example["segmentation_mask"][..., 0], _trimap(H, W))
    assert example["segmentation_mask"].shape == (H, W, 1)
    assert (example["label"], example["species"], example["file_name"]) == (4, 1, "beagle_3.jpg")
    xmin, ymin, xmax, ymax = BOX
    assert example["head_bbox"] == tfds.features.BBox(ymin / H, xmin / W, ymax / H, xmax / W)
    test_example, _ = pets.read_example(_record(release, "beagle_4"), MAX_SIDE)
    assert test_example["head_bbox"] == tfds.features.BBox(0.0, 0.0, 0.0, 0.0)  # test images have no XML


def test_read_example_quirks(quirky):
    example, fixes = pets.read_example(_record(quirky, "Abyssinian_3"), MAX_SIDE)
    trimap = "annotations/trimaps/Abyssinian_3.png"
    assert fixes == [{"file": trimap, "fix": EXPECTED_FIXED[trimap]}]
    mask = example["segmentation_mask"][..., 0]
    assert mask.shape == (H, W) and set(np.unique(mask)) == {1, 2, 3}  # nearest: no new values
    np.testing.assert_array_equal(mask[::2, ::2], _trimap(H // 2, W // 2))

    example, fixes = pets.read_example(_record(quirky, "Abyssinian_9"), MAX_SIDE)
    assert example["image"].shape == (48, 64, 3) and example["segmentation_mask"].shape == (48, 64, 1)
    assert [f["file"] for f in fixes] == ["images/Abyssinian_9.jpg", "annotations/trimaps/Abyssinian_9.png"]

    with pytest.raises(UnreadableImageError, match="beagle_1.jpg"):
        pets.read_example(_record(quirky, "beagle_1"), MAX_SIDE)
    with pytest.raises(UnusableFileError, match=r"beagle_3.png: trimap values \[0, 5, 255\] outside \{1, 2, 3\}"):
        pets.read_example(_record(quirky, "beagle_3"), MAX_SIDE)


@pytest.fixture
def prepared_quirky(quirky, tmp_path, capsys):
    report = pets.prepare_local(quirky, tmp_path / "prepared", max_image_side=MAX_SIDE)
    return quirky, tmp_path / "prepared", report, capsys.readouterr().out


def test_prepare_local_reports_every_quirk(prepared_quirky):
    _, _, report, printed = prepared_quirky
    assert report.dataset == "oxford_iiit_pet" and report.source == "directory"
    assert report.split_counts == {"train": 6, "test": 10}
    assert report.total_images == 16
    skipped = {row["file"]: row["reason"] for row in report.skipped}
    assert set(skipped) == set(EXPECTED_SKIPPED)
    for file, reason in EXPECTED_SKIPPED.items():
        assert reason in skipped[file], file
    assert {row["file"]: row["fix"] for row in report.fixed} == EXPECTED_FIXED
    assert report.notes == [{"file": "images/Abyssinian_7.jpg",
                             "note": "trainval image without annotations/xmls/ head box XML; head_bbox left empty"}]
    assert report.class_counts == {"train": {"Abyssinian": 4, "beagle": 2}, "test": {"Abyssinian": 5, "beagle": 5}}
    assert report.image_size["width"]["max"] == 64 and report.image_size["height"]["min"] == H
    assert "oxford_iiit_pet (directory): 16 images (test 10, train 6); skipped 6, fixed 6, notes 1" in printed


def test_prepared_dataset_has_the_tfds_features(prepared_quirky):
    root, data_dir, _, _ = prepared_quirky
    builder = open_prepared(data_dir)
    registered = tfds.builder("oxford_iiit_pet", data_dir=str(data_dir.parent / "unused"))
    assert builder.info.features.to_json() == registered.info.features.to_json()
    assert (builder.name, str(builder.version)) == ("oxford_iiit_pet", "4.0.0")
    assert builder.info.splits["train"].num_examples == 6 and builder.info.splits["test"].num_examples == 10

    train = tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False))
    examples = {ex["file_name"].decode(): ex for ex in train}
    assert set(examples) == {"Abyssinian_1.jpg", "Abyssinian_3.jpg", "Abyssinian_7.jpg", "Abyssinian_9.jpg",
                             "beagle_7.jpg", "beagle_9.jpg"}
    for name, ex in examples.items():
        assert ex["image"].dtype == np.uint8 and ex["image"].shape[-1] == 3, name
        assert ex["segmentation_mask"].shape == ex["image"].shape[:2] + (1,), name
        assert set(np.unique(ex["segmentation_mask"])) <= {1, 2, 3}, name
    assert examples["Abyssinian_9.jpg"]["image"].shape == (48, 64, 3)
    assert (examples["beagle_9.jpg"]["label"], examples["beagle_9.jpg"]["species"]) == (4, 1)
    xmin, ymin, xmax, ymax = BOX
    expected_box = [ymin / H, xmin / W, ymax / H, xmax / W]
    np.testing.assert_allclose(examples["beagle_9.jpg"]["head_bbox"], expected_box, atol=1e-6)
    np.testing.assert_array_equal(examples["Abyssinian_7.jpg"]["head_bbox"], [0, 0, 0, 0])
    # PNG+alpha fixed: the stored colours are the RGB channels of the original
    with Image.open(root / "images" / "Abyssinian_1.jpg") as original:
        rgb = np.asarray(original.convert("RGB")).astype(int)
    assert np.abs(examples["Abyssinian_1.jpg"]["image"].astype(int) - rgb).mean() < 3

    raw = builder.as_dataset(split="test", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    stored = {ex["file_name"].decode(): ex["image"] for ex in tfds.as_numpy(raw)}
    # untouched files are kept byte for byte
    assert stored["beagle_4.jpg"] == (root / "images" / "beagle_4.jpg").read_bytes()
    with Image.open(io.BytesIO(stored["beagle_2.jpg"])) as cmyk_fixed:
        assert (cmyk_fixed.format, cmyk_fixed.mode) == ("JPEG", "RGB")


def assert_canonical_records(data_dir: Path) -> None:
    """Every stored tf.Example is in protobuf's deterministic form, the same bytes in any process."""
    import tensorflow as tf

    shards = sorted(data_dir.glob("*/*/*.tfrecord-*"))
    assert shards
    for shard in shards:
        for record in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
            assert record == tf.train.Example.FromString(record).SerializeToString(deterministic=True)


def test_prepare_local_is_byte_reproducible(quirky, tmp_path):
    pets.prepare_local(quirky, tmp_path / "a", max_image_side=MAX_SIDE)
    pets.prepare_local(quirky, tmp_path / "b", max_image_side=MAX_SIDE)
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert "oxford_iiit_pet/4.0.0/dataset_info.json" in first
    assert first == second
    # protobuf orders a tf.Example's feature map differently in each process: only the canonical form is stable
    assert_canonical_records(tmp_path / "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "pets"]  # no staging folder left behind


def test_prepare_local_replaces_output_and_fails_atomically(release, tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    pets.prepare_local(release, out, max_image_side=MAX_SIDE, source="synthetic")
    assert not (out / "stale.txt").exists()
    assert open_prepared(out).info.splits["train"].num_examples == 10
    before = _tree(out)

    for name in ("Abyssinian", "beagle"):  # every trainval image unreadable: the split ends up empty
        for i in (1, 3, 5, 7, 9):
            (release / "images" / f"{name}_{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataSourceError, match=r"data.pets_dir: split 'train' is empty: every image listed in .*annotations/trainval.txt was rejected: 10 x cannot decode image, e.g. images/Abyssinian_1.jpg: cannot decode"):
        pets.prepare_local(release, out, max_image_side=MAX_SIDE)
    assert _tree(out) == before  # the previous dataset is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets", "prepared"]


def test_empty_list_is_an_error_naming_split_and_folder(release, tmp_path):
    (release / "annotations" / "test.txt").write_text("#nothing listed\n")
    with pytest.raises(DataSourceError, match=r"split 'test' is empty: .*annotations/test.txt"):
        pets.prepare_local(release, tmp_path / "out", max_image_side=MAX_SIDE)


# --- the real sample --------------------------------------------------------------------------------------------


def test_real_sample_parses(pets_sample):
    trainval, skipped_tv = pets.parse_release(pets_sample, "trainval")
    test, skipped_test = pets.parse_release(pets_sample, "test")
    assert (len(trainval), len(test)) == (147, 150)
    assert skipped_tv == skipped_test == []
    assert sum(r.xml_path is None for r in trainval) == 2 and all(r.xml_path is None for r in test)
    assert {r.label for r in trainval} == {0, 1, 5}  # Abyssinian, american_bulldog, Bengal
    unused = pets.unused_files(pets_sample)
    assert [row["file"] for row in unused] == [f"images/Abyssinian_{i}.mat" for i in (100, 101, 102)]


@pytest.fixture(scope="module")
def real_prepared(tmp_path_factory):
    from tests.conftest import require_shared

    sample = require_shared("datasets", "oxford_iiit_pet")
    out = tmp_path_factory.mktemp("real_pets") / "prepared"
    max_side = load_params(REPO / "params.yaml").data.max_image_side
    return pets.prepare_local(sample, out, max_image_side=max_side), out, max_side


def test_real_sample_prepares(real_prepared):
    report, out, max_side = real_prepared
    assert report.split_counts == {"train": 147, "test": 150} and report.total_images == 297
    assert sorted(row["file"] for row in report.skipped) == [f"images/Abyssinian_{i}.mat" for i in (100, 101, 102)]
    fixed = {row["file"]: row["fix"] for row in report.fixed}
    assert fixed["images/Abyssinian_5.jpg"] == "png in .jpg, rgba->rgb; re-encoded as jpeg"
    assert len(report.notes) == 2  # two trainval images of the sample have no XML
    assert report.image_size["width"]["max"] <= max_side and report.image_size["height"]["max"] <= max_side
    builder = open_prepared(out)
    for ex in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False).take(20)):
        assert ex["segmentation_mask"].shape == ex["image"].shape[:2] + (1,)
        assert set(np.unique(ex["segmentation_mask"])) <= {1, 2, 3}
