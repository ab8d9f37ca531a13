"""The shared TFDS machinery: the data report, atomic output, open_prepared, the `tfds` source on local files."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import socket

import numpy as np
import pytest
import requests
import tensorflow_datasets as tfds

from visionflow.data.images import DataSourceError
from visionflow.data.report import DataReport
from visionflow.data.tfds_source import _VERSIONS, open_prepared, prepare_builder, prepare_tfds


def _no_network(monkeypatch):
    """Any connection attempt fails the way an offline machine does."""

    def refuse(address, *args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)


# --- DataReport -------------------------------------------------------------------------------------------------


def test_report_counts_sizes_and_stable_json(tmp_path):
    report = DataReport(dataset="tf_flowers", source="synthetic")
    report.set_contents({"train": [("roses", 10, 20), ("daisy", 30, 40), ("roses", 50, 60)], "test": [("daisy", 7, 8)]})
    report.skip("b.jpg", "truncated")
    report.skip("a.jpg", "not an image")
    report.fix("c.jpg", "cmyk->rgb")
    assert report.split_counts == {"train": 3, "test": 1} and report.total_images == 4
    assert report.class_counts == {"train": {"daisy": 1, "roses": 2}, "test": {"daisy": 1}}
    assert report.image_size == {
        "width": {"min": 7, "max": 50, "mean": 24.25, "median": 20.0},
        "height": {"min": 8, "max": 60, "mean": 32.0, "median": 30.0},
    }
    as_dict = report.to_dict()
    assert [row["file"] for row in as_dict["skipped"]] == ["a.jpg", "b.jpg"]  # sorted, whatever the order found
    assert report.summary() == "tf_flowers (synthetic): 4 images (test 1, train 3); skipped 2, fixed 1, notes 0"

    path = tmp_path / "metrics" / "data_flowers.json"
    report.write_json(path)
    text = path.read_text()
    assert json.loads(text) == as_dict
    assert list(json.loads(text)) == sorted(as_dict)  # sorted keys
    report.write_json(path)
    assert path.read_text() == text
    assert [p.name for p in path.parent.iterdir()] == ["data_flowers.json"]  # no temp file left


def test_report_of_nothing_has_no_sizes():
    report = DataReport(dataset="oxford_iiit_pet", source="directory")
    report.set_contents({"train": []})
    assert report.total_images == 0 and report.image_size == {} and report.split_counts == {"train": 0}


# --- atomic output and open_prepared ------------------------------------------------------------------------------


def test_prepare_builder_is_all_or_nothing(tmp_path, tfds_on_local_files):
    import tensorflow_datasets as tfds

    out = tmp_path / "out"
    prepare_builder(lambda d: tfds.builder("tf_flowers:3.0.1", data_dir=d), out, DataReport("tf_flowers", "x"))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def crash(data_dir):
        builder = tfds.builder("tf_flowers:3.0.1", data_dir=data_dir)
        builder.download_and_prepare = lambda **kw: (_ for _ in ()).throw(RuntimeError("crash"))
        return builder

    with pytest.raises(RuntimeError, match="crash"):
        prepare_builder(crash, out, DataReport("tf_flowers", "x"))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the earlier output, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "release"]  # no temp folder left


def test_open_prepared_errors(tmp_path):
    with pytest.raises(DataSourceError, match="prepared dataset folder not found"):
        open_prepared(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="no prepared TFDS dataset"):
        open_prepared(tmp_path / "empty")
    for name in ("tf_flowers/3.0.1", "tf_flowers/3.0.2"):
        (tmp_path / "two" / name).mkdir(parents=True)
        (tmp_path / "two" / name / "dataset_info.json").write_text("{}")
    with pytest.raises(DataSourceError, match=r"several prepared datasets \(tf_flowers/3.0.1, tf_flowers/3.0.2\)"):
        open_prepared(tmp_path / "two")


# --- the tfds source, offline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "splits", "features"),
    [
        ("oxford_iiit_pet", ("train", "test"), {"image", "label", "species", "file_name", "segmentation_mask",
                                                "head_bbox"}),
        ("tf_flowers", ("train",), {"image", "label"}),
    ],
)
def test_prepare_tfds_runs_the_builder_and_publishes_it(tmp_path, tfds_on_local_files, name, splits, features):
    report = prepare_tfds(name, tmp_path / "data", tmp_path / "downloads")
    builder = open_prepared(tmp_path / "data")
    examples = list(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)))
    assert tfds_on_local_files == [f"{name}:{_VERSIONS[name]}"]  # the pinned version, asked once
    assert report.source == "tfds" and report.dataset == name
    assert set(report.split_counts) == set(splits)
    assert report.split_counts["train"] == len(examples) > 0
    assert sum(report.class_counts["train"].values()) == len(examples)
    assert builder.name == name and set(builder.info.features) == features
    for ex in examples:
        assert ex["image"].dtype == np.uint8 and ex["image"].ndim == 3 and ex["image"].shape[-1] == 3
        assert 0 <= ex["label"] < builder.info.features["label"].num_classes
    if name == "oxford_iiit_pet":
        assert all(ex["segmentation_mask"].shape[:2] == ex["image"].shape[:2] for ex in examples)
    assert (tmp_path / "data" / name).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "downloads", "release"]  # no staging left
    assert not any((tmp_path / "data").rglob("*downloads*"))  # TFDS's download area stays out of the output


@pytest.mark.parametrize(("name", "param"), [("oxford_iiit_pet", "data.pets_dir"), ("tf_flowers", "data.flowers_dir")])
def test_prepare_tfds_offline_is_a_clear_error(tmp_path, monkeypatch, name, param):
    _no_network(monkeypatch)
    with pytest.raises(DataSourceError) as info:
        prepare_tfds(name, tmp_path / "data", tmp_path / "downloads")
    message = str(info.value)
    assert f"cannot download {name}" in message and "unreachable" in message
    assert "data.source: synthetic" in message and "data.source: directory" in message and param in message
    assert not (tmp_path / "data").exists()
    assert list(tmp_path.iterdir()) == []


def test_prepare_tfds_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    from tensorflow_datasets.core import dataset_builder
    from tensorflow_datasets.core.download import downloader

    if importlib.util.find_spec("importlib_resources") is None:
        # TFDS finds its checksum table through importlib_resources.abc.Traversable, a dependency missing
        # from some environments; the standard library's importlib.resources has the same class.
        monkeypatch.setattr(dataset_builder, "importlib_resources", importlib.resources)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: socket.socket())  # the probe passes
    calls = []

    def unreachable(url, **kwargs):
        calls.append(url)
        raise requests.exceptions.ConnectionError(f"Failed to resolve host of {url}")

    monkeypatch.setattr(downloader, "_open_url", unreachable)
    with pytest.raises(DataSourceError, match="cannot download tf_flowers: Failed to resolve") as info:
        prepare_tfds("tf_flowers", tmp_path / "data", tmp_path / "downloads")
    assert calls and calls[0].endswith("flower_photos.tgz")  # the real download code ran
    assert "data.source: synthetic" in str(info.value) and "data.flowers_dir" in str(info.value)
    assert not (tmp_path / "data").exists()


def test_prepare_tfds_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        prepare_tfds("mnist", tmp_path / "data", tmp_path / "downloads")
    with pytest.raises(ValueError, match="download_dir .* is inside data_dir"):
        prepare_tfds("tf_flowers", tmp_path / "data", tmp_path / "data" / "downloads")
    assert not (tmp_path / "data").exists()

