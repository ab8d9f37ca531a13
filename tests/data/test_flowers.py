"""flower_photos/ parsing and the local tf_flowers builder: tiny generated folders and the real sample."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from visionflow.data import flowers
from visionflow.data.images import DataSourceError
from visionflow.data.tfds_source import open_prepared

MAX_SIDE = 64


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.dstack([yy * 255 // h, xx * 255 // w, np.full((h, w), seed * 37 % 256)]).astype(np.uint8)


def write_flowers(parent: Path, per_class: int = 3) -> Path:
    """parent/flower_photos/<class>/<n>.jpg, sizes varying per image, plus the release's LICENSE.txt."""
    root = parent / "flower_photos"
    for c, name in enumerate(flowers.CLASS_NAMES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_photo(20 + 2 * i, 30 + c, 10 * c + i)).save(root / name / f"{i}_{name}.jpg", "JPEG")
    (root / "LICENSE.txt").write_text("photos by their authors, CC-BY")
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_flowers(tmp_path)


@pytest.fixture
def quirky(folder) -> Path:
    """Every flowers quirk: PNG+alpha in .jpg, a truncated JPEG, a non-image, a large image, grayscale."""
    Image.fromarray(np.dstack([_photo(20, 30, 1), np.full((20, 30), 9, np.uint8)]), "RGBA").save(
        folder / "roses" / "0_roses.jpg", "PNG")
    data = (folder / "tulips" / "1_tulips.jpg").read_bytes()
    (folder / "tulips" / "1_tulips.jpg").write_bytes(data[: len(data) - 40])
    (folder / "daisy" / "notes.txt").write_text("not a photo")
    Image.fromarray(_photo(100, 128, 5)).save(folder / "sunflowers" / "big.jpg", "JPEG")
    Image.fromarray(_photo(20, 30, 2)[..., 0], "L").save(folder / "dandelion" / "2_dandelion.jpg", "JPEG")
    return folder


def test_parse_folder_labels_follow_tf_flowers_order(folder):
    items, skipped = flowers.parse_folder(folder)
    assert len(items) == 15
    assert skipped == [{"file": "LICENSE.txt", "reason": "not a class folder; not used"}]
    for path, label in items:
        assert flowers.CLASS_NAMES[label] == path.parent.name
    assert [p for p, _ in items] == sorted(p for p, _ in items)
    assert flowers.CLASS_NAMES == ("dandelion", "daisy", "tulips", "sunflowers", "roses")
    # the folder the release unpacks into is accepted as well as flower_photos/ itself
    assert flowers.parse_folder(folder.parent) == (items, skipped)


def test_non_image_in_class_folder_is_skipped(quirky):
    items, skipped = flowers.parse_folder(quirky)
    assert {"file": "daisy/notes.txt", "reason": "not an image (.txt file); not used"} in skipped
    assert quirky / "daisy" / "notes.txt" not in [p for p, _ in items]


def test_unknown_class_folder_is_an_error(folder):
    (folder / "rose").mkdir()
    with pytest.raises(DataSourceError, match="data.flowers_dir: folder .*/rose is not a tf_flowers class") as info:
        flowers.parse_folder(folder)
    assert "allowed: dandelion, daisy, tulips, sunflowers, roses" in str(info.value)


def test_empty_and_missing_class_folders_are_errors(folder):
    for path in (folder / "tulips").iterdir():
        path.unlink()
    (folder / "tulips" / "Thumbs.db").write_bytes(b"\0")
    with pytest.raises(DataSourceError, match="data.flowers_dir: class folder .*/tulips has no images"):
        flowers.parse_folder(folder)
    shutil.rmtree(folder / "tulips")
    with pytest.raises(DataSourceError, match=r"data.flowers_dir: class folder\(s\) tulips missing under"):
        flowers.parse_folder(folder)


def test_missing_folder_names_the_param(tmp_path):
    with pytest.raises(DataSourceError, match="--data: .*/nowhere not found or not a folder .*one subfolder"):
        flowers.parse_folder(tmp_path / "nowhere", param="--data")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataSourceError, match="data.flowers_dir: .*/file not found or not a folder"):
        flowers.prepare_local(tmp_path / "file", tmp_path / "out", max_image_side=MAX_SIDE)
    assert not (tmp_path / "out").exists()


def test_prepare_local_reports_and_stores_tfds_features(quirky, tmp_path, capsys):
    out = tmp_path / "prepared"
    report = flowers.prepare_local(quirky, out, max_image_side=MAX_SIDE)
    assert report.dataset == "tf_flowers" and report.split_counts == {"train": 15}  # 16 images, 1 truncated
    assert report.class_counts["train"] == {"dandelion": 3, "daisy": 3, "tulips": 2, "sunflowers": 4, "roses": 3}
    skipped = {row["file"]: row["reason"] for row in report.skipped}
    assert set(skipped) == {"LICENSE.txt", "daisy/notes.txt", "tulips/1_tulips.jpg"}
    assert skipped["daisy/notes.txt"] == "not an image (.txt file); not used"
    assert skipped["tulips/1_tulips.jpg"].startswith("cannot decode image (image file is truncated")
    assert {row["file"]: row["fix"] for row in report.fixed} == {
        "roses/0_roses.jpg": "png in .jpg, rgba->rgb; re-encoded as jpeg",
        "sunflowers/big.jpg": "downscaled 128x100->64x50; re-encoded as jpeg",
        "dandelion/2_dandelion.jpg": "grayscale->rgb; re-encoded as jpeg",
    }
    assert "tf_flowers (directory): 15 images (train 15); skipped 3, fixed 3" in capsys.readouterr().out

    builder = open_prepared(out)
    registered = tfds.builder("tf_flowers", data_dir=str(tmp_path / "unused"))
    assert builder.info.features.to_json() == registered.info.features.to_json()
    assert (builder.name, str(builder.version)) == ("tf_flowers", "3.0.1")
    seen = []
    for ex in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)):
        assert ex["image"].dtype == np.uint8 and ex["image"].ndim == 3 and ex["image"].shape[-1] == 3
        seen.append((ex["image"].shape, int(ex["label"])))
    assert ((50, 64, 3), flowers.CLASS_NAMES.index("sunflowers")) in seen
    assert ((20, 30, 3), flowers.CLASS_NAMES.index("roses")) in seen  # the 20x30 PNG in 0_roses.jpg
    raw = builder.as_dataset(split="train", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    stored = {bytes(ex["image"]) for ex in tfds.as_numpy(raw)}
    assert (quirky / "daisy" / "0_daisy.jpg").read_bytes() in stored  # untouched files kept byte for byte


def test_prepare_local_is_byte_reproducible(quirky, tmp_path):
    flowers.prepare_local(quirky, tmp_path / "a", max_image_side=MAX_SIDE)
    flowers.prepare_local(quirky.parent, tmp_path / "b", max_image_side=MAX_SIDE)

    def tree(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert "tf_flowers/3.0.1/dataset_info.json" in tree(tmp_path / "a")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    import tensorflow as tf

    for shard in (tmp_path / "a").glob("*/*/*.tfrecord-*"):  # the same bytes in any process (see test_pets)
        for record in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
            assert record == tf.train.Example.FromString(record).SerializeToString(deterministic=True)


def test_all_unreadable_is_an_empty_split_error(folder, tmp_path):
    for path in folder.glob("*/*.jpg"):
        path.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DataSourceError, match=r"data.flowers_dir: no usable image under .*every one was rejected: 15 x cannot decode image, e.g. daisy/0_daisy.jpg: cannot decode"):
        flowers.prepare_local(folder, tmp_path / "out", max_image_side=MAX_SIDE)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["flower_photos"]  # no staging folder left behind


def test_real_sample(flowers_sample, tmp_path):
    items, skipped = flowers.parse_folder(flowers_sample)
    assert skipped == [] and len(items) == 500
    assert np.bincount([label for _, label in items]).tolist() == [100] * 5
    report = flowers.prepare_local(flowers_sample, tmp_path / "out", max_image_side=1024)
    assert report.split_counts == {"train": 500}
    assert report.class_counts["train"] == {name: 100 for name in flowers.CLASS_NAMES}
    assert report.skipped == [] and report.fixed == []  # all baseline RGB JPEGs, stored as they are
    assert report.image_size["width"]["max"] <= 500 and report.image_size["height"]["min"] >= 120
