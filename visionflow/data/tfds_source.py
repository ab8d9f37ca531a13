"""TFDS machinery shared by every source: atomic preparation, the registered builders, reading back."""

from __future__ import annotations

import contextlib
import shutil
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import requests
import tensorflow as tf
import tensorflow_datasets as tfds
from tqdm import tqdm

from visionflow.data.images import DataSourceError
from visionflow.data.report import DataReport
from visionflow.data.sources import offline_error, probe
from visionflow.files import atomic_output, temp_path

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


def canonicalize_records(builder_dir: Path) -> None:
    """Rewrite the TFRecord shards of `builder_dir` with deterministically serialized tf.Examples."""
    # protobuf writes a tf.Example's feature map in an order that changes from one process to the next, so
    # the same data gives different bytes (and DVC hashes); sorted keys give one canonical form.
    for shard in sorted(Path(builder_dir).glob("*.tfrecord-*-of-*")):
        with atomic_output(shard) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            records = tf.data.TFRecordDataset(str(shard)).as_numpy_iterator()
            for record in tqdm(records, desc=f"canonical records: {shard.name}", unit=" ex", leave=False):
                writer.write(tf.train.Example.FromString(record).SerializeToString(deterministic=True))


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
        total = builder.info.splits[split].num_examples
        rows = []
        progress = tqdm(ds.as_numpy_iterator(), total=total, desc=f"{builder.name}: reading back {split}", unit=" img")
        for (h, w), y in progress:
            rows.append((label.int2str(int(y)), int(w), int(h)))
        per_split[split] = rows
    report.set_contents(per_split)


def prepare_builder(
    make_builder: Callable[[Path], tfds.core.DatasetBuilder], data_dir: Path, report: DataReport,
    download_dir: Path | None = None, splits: tuple[str, ...] | None = None,
) -> DataReport:
    """Generate `make_builder(temp data dir)` (downloads in `download_dir`, else a temp folder beside the output),
    read `splits` (default: all) back into `report`, then publish it as `data_dir` in one rename."""
    with contextlib.ExitStack() as stack:
        stage = stack.enter_context(atomic_output(data_dir, directory=True))
        if download_dir is None:  # a local builder downloads nothing; TFDS still wants a download area
            download_dir = temp_path(Path(data_dir), ".downloads")
            download_dir.mkdir()
            stack.callback(shutil.rmtree, download_dir, True)
        builder = make_builder(stage)
        builder.download_and_prepare(download_dir=str(download_dir))
        canonicalize_records(Path(builder.data_dir))
        describe(builder, report, splits or tuple(builder.info.splits.keys()))
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
    probe(name, probe_timeout_s)
    try:
        return prepare_builder(lambda stage: tfds.builder(f"{name}:{_VERSIONS[name]}", data_dir=str(stage)),
                               data_dir, DataReport(dataset=name, source="tfds"), download_dir, SPLITS[name])
    except _DOWNLOAD_ERRORS as exc:
        raise offline_error(name, str(exc)) from exc


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
    return tfds.builder_from_directory(str(builder_dir_of(data_dir)))
