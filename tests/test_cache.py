"""tf.data caches: splits, element contracts, and the `tfds` source end to end (its builders on local files)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from visionflow import cache
from visionflow.data.tfds_source import open_prepared, prepare_tfds


def test_stratified_indices_are_disjoint_complete_and_per_class():
    labels = np.repeat(np.arange(5), 20)
    parts = cache.stratified_indices(labels, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(100))
    for name, expected in (("train", 16), ("val", 2), ("test", 2)):
        assert np.bincount(labels[parts[name]], minlength=5).tolist() == [expected] * 5
    again = cache.stratified_indices(labels, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = cache.stratified_indices(labels, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=4)
    assert not np.array_equal(parts["test"], other["test"])


def test_stratified_val_split_keeps_one_image_per_class_when_its_fraction_gives_fewer():
    labels = np.repeat(np.arange(5), 100)
    parts = cache.stratified_indices(labels, {"train": 0.89, "val": 0.01, "test": 0.1}, seed=42)
    assert {k: len(v) for k, v in parts.items()} == {"train": 445, "val": 5, "test": 50}
    assert np.bincount(labels[parts["val"]]).tolist() == [1] * 5
    assert sorted(np.concatenate(list(parts.values()))) == list(range(500))
    # A fraction that already gives one image per class is split as asked.
    parts = cache.stratified_indices(labels, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=42)
    assert {k: len(v) for k, v in parts.items()} == {"train": 400, "val": 50, "test": 50}


def test_stratified_split_of_too_few_images_names_the_param():
    with pytest.raises(cache.CacheError, match="data.flowers_split"):
        cache.stratified_indices([0, 1, 2], {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)


def test_val_membership_is_seeded_and_near_the_fraction():
    names = tf.constant([f"Breed_{i}.jpg" for i in range(2000)])
    member = cache.in_val(names, 0.2, seed=1).numpy()
    assert 0.17 < member.mean() < 0.23
    assert np.array_equal(member, cache.in_val(names, 0.2, seed=1).numpy())
    assert not np.array_equal(member, cache.in_val(names, 0.2, seed=2).numpy())


def test_mask_resize_keeps_classes_and_shifts_them():
    trimap = np.ones((40, 30, 1), np.uint8)
    trimap[10:20] = 2
    trimap[20:] = 3
    mask = cache.resize_mask(trimap, 16).numpy()
    assert mask.shape == (16, 16, 1) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1, 2}


def _wide_photo() -> np.ndarray:
    """40 x 80: red left quarter, blue right quarter, green between (its central 40 x 40 square)."""
    photo = np.zeros((40, 80, 3), np.uint8)
    photo[:, :20, 0] = photo[:, 60:, 2] = photo[:, 20:60, 1] = 255
    return photo


def test_stretch_resizes_the_whole_photo_as_before():
    photo = _wide_photo()
    expected = tf.clip_by_value(tf.image.resize(tf.cast(photo, tf.float32), (32, 32), antialias=True) / 255.0, 0, 1)
    np.testing.assert_array_equal(cache.resize_image(photo, 32).numpy(), expected.numpy())
    np.testing.assert_array_equal(cache.resize_image(photo, 32, "stretch").numpy(), expected.numpy())


def test_crop_keeps_the_central_square_and_pad_adds_black_bars():
    photo = _wide_photo()
    crop = cache.resize_image(photo, 32, "crop").numpy()
    np.testing.assert_allclose(crop, np.broadcast_to([0.0, 1.0, 0.0], (32, 32, 3)), atol=1e-6)  # green only
    pad = cache.resize_image(photo, 32, "pad").numpy()
    assert pad.shape == (32, 32, 3)
    # The 2:1 photo fills the middle 16 rows (the rows at its edges blend with the bars), between black bars.
    assert np.all(pad[:7] == 0) and np.all(pad[25:] == 0)
    middle = pad[9:23]
    np.testing.assert_allclose(middle[:, :7], np.broadcast_to([1.0, 0.0, 0.0], (14, 7, 3)), atol=1e-6)
    np.testing.assert_allclose(middle[:, 25:], np.broadcast_to([0.0, 0.0, 1.0], (14, 7, 3)), atol=1e-6)


def test_tfds_source_flows_through_cache_and_training(tmp_path, small_params, tfds_on_local_files):
    """The `tfds` source (its builders on local files): prepare -> cache -> one training epoch."""
    from visionflow.classifier_training import train_classifier

    pets_report = prepare_tfds("oxford_iiit_pet", tmp_path / "pets", tmp_path / "downloads")
    prepare_tfds("tf_flowers", tmp_path / "flowers", tmp_path / "downloads")
    pets = cache.pets_splits(open_prepared(tmp_path / "pets"), 32, 0.5, seed=0)
    pets_info = cache.write_cache(pets, tmp_path / "cache_pets", {"class_names": list(cache.MASK_CLASSES)}, 2)
    builder = open_prepared(tmp_path / "flowers")
    flowers = cache.flowers_splits(builder, 64, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    info = {"class_names": builder.info.features["label"].names, "image_size": 64}
    flowers_info = cache.write_cache(flowers, tmp_path / "cache_flowers", info, 2)
    assert pets_info["counts"]["test"] == pets_report.split_counts["test"]
    assert sum(pets_info["counts"].values()) == pets_report.total_images
    element = next(iter(cache.load_split(tmp_path / "cache_pets", "train")))
    assert element["image"].shape == (32, 32, 3) and element["mask"].shape == (32, 32, 1)
    assert 0.0 <= float(tf.reduce_min(element["image"])) and float(tf.reduce_max(element["image"])) <= 1.0
    assert flowers_info["counts"] == {"train": 18, "val": 6, "test": 6}  # 30 flowers, 0.6 / 0.2 / 0.2
    model, history = train_classifier(tmp_path / "cache_flowers", small_params)
    assert list(history["epoch"]) == [1] and np.isfinite(history["loss"]).all()
    assert model.output_shape == (None, 6)  # the five flowers, and background (params.yaml's classifier.windows)


def test_write_cache_refuses_an_empty_split_and_leaves_nothing(tmp_path):
    ds = tf.data.Dataset.from_tensor_slices({"label": tf.constant([1, 2], tf.int64)})
    with pytest.raises(cache.CacheError, match="split 'val' is empty"):
        cache.write_cache({"train": ds, "val": ds.take(0)}, tmp_path / "out", {}, 2)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cores", [1, 2, 8])
def test_splits_read_back_in_saved_order_on_any_core_count(tmp_path, monkeypatch, cores):
    # tf.data's default reader interleaves shards over cpu_count(): prove the patch bites, then that
    # load_split ignores it.
    import multiprocessing

    ds = tf.data.Dataset.from_tensor_slices({"label": tf.range(21, dtype=tf.int64)})
    cache.save_split(ds, tmp_path / "train", num_shards=4)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: cores)
    default = [int(i) for i, _ in tf.data.Dataset.load(str(tmp_path / "train")).as_numpy_iterator()]
    if cores < 4:
        assert default != list(range(21))
    assert [int(i) for i, _ in cache.load_indexed(tmp_path, "train").as_numpy_iterator()] == list(range(21))
    assert [int(x["label"]) for x in cache.load_split(tmp_path, "train").as_numpy_iterator()] == list(range(21))


def test_temps_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = tmp_path / f".pets.tmp-{dead}"  # what kill -9 during build_cache leaves
    (left / "train").mkdir(parents=True)
    running = tmp_path / f".pets.tmp-{os.getppid()}"  # another writer, still at work
    running.mkdir()
    ds = tf.data.Dataset.from_tensor_slices({"label": tf.constant([1, 2], tf.int64)})
    cache.write_cache({"train": ds}, tmp_path / "pets", {}, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pets", running.name])


def test_kfold_indices_partition_every_image_into_stratified_test_folds():
    labels = np.repeat(np.arange(5), 12)
    tests = []
    for fold in range(4):
        parts = cache.kfold_indices(labels, 4, fold, val_share=0.125, seed=3)
        assert sorted(np.concatenate(list(parts.values()))) == list(range(60))  # disjoint and complete
        assert np.bincount(labels[parts["test"]]).tolist() == [3] * 5  # stratified
        assert len(parts["val"]) == 6
        tests.append(parts["test"])
    assert sorted(np.concatenate(tests)) == list(range(60))  # every image is tested exactly once
    assert cache.kfold_indices(labels, 4, 1, 0.125, seed=3)["test"].tolist() == tests[1].tolist()
    with pytest.raises(cache.CacheError, match="data.folds: cannot split 60 images into 20 folds"):
        cache.kfold_indices(labels, 20, 0, 0.125, seed=3)


class _Builder:
    """The two splits of a prepared pets dataset, as `as_dataset` gives them (names only matter here)."""

    def __init__(self, names: dict[str, list[str]]):
        self.names = names

    def as_dataset(self, split: str, shuffle_files: bool):
        n = len(self.names[split])
        return tf.data.Dataset.from_tensor_slices({
            "file_name": self.names[split], "image": tf.zeros((n, 4, 4, 3), tf.uint8),
            "segmentation_mask": tf.ones((n, 4, 4, 1), tf.uint8), "species": tf.zeros(n, tf.int64)})


def test_pets_folds_pool_both_splits_and_test_each_image_once():
    names = {"train": [f"a_{i}.jpg" for i in range(40)], "test": [f"b_{i}.jpg" for i in range(20)]}
    tested = []
    for fold in range(3):
        splits = cache.pets_splits(_Builder(names), 4, 0.2, seed=0, folds=3, fold=fold)
        got = {k: [x.decode() for x in ds.map(lambda ex: ex["file_name"]).as_numpy_iterator()]
               for k, ds in splits.items()}
        assert sorted(sum(got.values(), [])) == sorted(names["train"] + names["test"])
        assert 10 <= len(got["test"]) <= 30
        tested += got["test"]
    assert sorted(tested) == sorted(names["train"] + names["test"])
    plain = cache.pets_splits(_Builder(names), 4, 0.2, seed=0)  # folds=1: the official test split
    assert [x.decode() for x in plain["test"].map(lambda ex: ex["file_name"]).as_numpy_iterator()] == names["test"]
