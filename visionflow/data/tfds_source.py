"""TFDS machinery shared by every source: atomic preparation, the registered builders, reading back."""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import requests
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import dataset_info, read_only_builder
from tqdm import tqdm

from visionflow.data.images import DataSourceError
from visionflow.data.report import DataReport
from visionflow.data.sources import offline_error, probe
from visionflow.files import temp_path

DatasetName = Literal["oxford_iiit_pet", "tf_flowers"]

# Versions the pipeline is written against (features and splits), and the split names they hold.
_VERSIONS = {"oxford_iiit_pet": "4.*.*", "tf_flowers": "3.*.*"}
SPLITS: dict[str, tuple[str, ...]] = {"oxford_iiit_pet": ("train", "test"), "tf_flowers": ("train",)}
# What TFDS's downloader raises when the host cannot be reached or the transfer fails.
_DOWNLOAD_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    tfds.download.DownloadError,
    urllib.error.URLError,
    ConnectionError,
    TimeoutError,
)


@contextlib.contextmanager
def staged_output(data_dir: Path) -> Iterator[Path]:
    """Yield a temp dir beside `data_dir`; on success its `data/` replaces `data_dir` in one rename."""
    data_dir = Path(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = temp_path(data_dir)
    stage.mkdir()
    try:
        (stage / "data").mkdir()
        yield stage
        if data_dir.exists():
            data_dir.rename(stage / "previous")
        (stage / "data").rename(data_dir)
    finally:
        shutil.rmtree(stage)


def canonicalize_records(builder_dir: Path) -> None:
    """Rewrite the TFRecord shards of `builder_dir` with deterministically serialized tf.Examples."""
    # protobuf writes a tf.Example's feature map in an order that changes from one process to the next, so
    # the same data gives different bytes (and DVC hashes); sorted keys give one canonical form.
    for shard in sorted(Path(builder_dir).glob("*.tfrecord-*-of-*")):
        tmp = shard.with_name(f".{shard.name}.tmp")
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            records = tf.data.TFRecordDataset(str(shard)).as_numpy_iterator()
            for record in tqdm(records, desc=f"canonical records: {shard.name}", unit=" ex", leave=False):
                writer.write(tf.train.Example.FromString(record).SerializeToString(deterministic=True))
        os.replace(tmp, shard)


def describe(builder: tfds.core.DatasetBuilder, report: DataReport, splits: tuple[str, ...]) -> None:
    """Fill `report` with per-split/per-class counts and image sizes read back from `builder`."""
    label = builder.info.features["label"]
    per_split: dict[str, list[tuple[str, int, int]]] = {}
    for split in splits:
        ds = builder.as_dataset(split=split, shuffle_files=False)
        ds = ds.map(
            lambda ex: (tf.shape(ex["image"])[:2], ex["label"]),  # (H, W), label
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        total = builder.info.splits[split].num_examples if split in builder.info.splits else None  # None if mocked
        rows = []
        progress = tqdm(ds.as_numpy_iterator(), total=total, desc=f"{builder.name}: reading back {split}", unit=" img")
        for (h, w), y in progress:
            rows.append((label.int2str(int(y)), int(w), int(h)))
        per_split[split] = rows
    report.set_contents(per_split)


def prepare_builder(
    make_builder: Callable[[Path], tfds.core.DatasetBuilder], data_dir: Path, report: DataReport
) -> DataReport:
    """Generate `make_builder(staging data dir)`, read it back into `report`, then publish it as `data_dir`."""
    with staged_output(data_dir) as stage:
        builder = make_builder(stage / "data")
        # A local builder downloads nothing; TFDS still wants a download area, kept out of the output.
        builder.download_and_prepare(download_dir=str(stage / "downloads"))
        canonicalize_records(Path(builder.data_dir))
        describe(builder, report, tuple(builder.info.splits.keys()))
    print(report.summary())
    return report


def _within(path: str | Path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def prepare_tfds(
    name: DatasetName, data_dir: Path, download_dir: Path, *, probe_timeout_s: float = 5.0
) -> DataReport:
    """Download and prepare the registered TFDS dataset `name` into `data_dir` (downloads kept in `download_dir`)."""
    if name not in SPLITS:
        raise ValueError(f"prepare_tfds: unknown dataset {name!r} (expected one of {sorted(SPLITS)})")
    data_dir, download_dir = Path(data_dir), Path(download_dir)
    if _within(download_dir, data_dir):
        raise ValueError(
            f"prepare_tfds: download_dir {download_dir} is inside data_dir {data_dir}; keep TFDS's download area "
            "outside the prepared dataset (it would be tracked and hashed with it)"
        )
    report = DataReport(dataset=name, source="tfds")
    with staged_output(data_dir) as stage:
        builder = tfds.builder(f"{name}:{_VERSIONS[name]}", data_dir=str(stage / "data"))
        # tfds.testing.mock_data redirects every builder's data_dir and turns download_and_prepare into a
        # no-op: then there is nothing to download, and only the metadata is written for open_prepared.
        mocked = not _within(builder.data_dir, stage)
        if not mocked:
            probe(name, probe_timeout_s)
        try:
            builder.download_and_prepare(download_dir=str(download_dir))
        except _DOWNLOAD_ERRORS as exc:
            raise offline_error(name, str(exc)) from exc
        if mocked:
            builder_dir = stage / "data" / name / str(builder.version)
            builder_dir.mkdir(parents=True)
            builder.info.write_to_directory(builder_dir)
        else:
            canonicalize_records(Path(builder.data_dir))
        describe(builder, report, SPLITS[name])
    print(report.summary())
    return report


def builder_dir_of(data_dir: Path) -> Path:
    """The single `<name>/<version>/` folder holding a prepared dataset under `data_dir`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataSourceError(f"{data_dir}: prepared dataset folder not found (run the data preparation stage first)")
    found = sorted(
        info.parent for info in data_dir.glob("*/*/dataset_info.json") if tfds.core.Version.is_valid(info.parent.name)
    )
    if not found:
        raise DataSourceError(
            f"{data_dir}: no prepared TFDS dataset (<name>/<version>/dataset_info.json) inside; "
            "run the data preparation stage again"
        )
    if len(found) > 1:
        listed = ", ".join(str(p.relative_to(data_dir)) for p in found)
        raise DataSourceError(
            f"{data_dir}: several prepared datasets ({listed}); expected exactly one, "
            "delete the folder and prepare again"
        )
    return found[0]


def open_prepared(data_dir: Path) -> tfds.core.DatasetBuilder:
    """A read-only TFDS builder over the dataset prepared in `data_dir` (any source)."""
    builder_dir = builder_dir_of(data_dir)
    # Same as tfds.builder_from_directory, but with the features read into the proto up front, so that the
    # builder also works under tfds.testing.mock_data (which redirects the data_dir it reads features from).
    proto = dataset_info.read_full_proto_from_builder_dir(builder_dir)
    return read_only_builder.ReadOnlyBuilder(builder_dir=str(builder_dir), info_proto=proto)
