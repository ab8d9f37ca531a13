"""flower_photos/ layout (one folder per class): a robust parser and the TFDS `tf_flowers` builder over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tensorflow_datasets.datasets.tf_flowers import tf_flowers_dataset_builder as tfds_flowers

from visionflow.data.images import DataSourceError, UnusableFileError, encode_jpeg, read_rgb
# The layout and its parser live in visionflow.data.layout (no TensorFlow); re-exported here.
from visionflow.data.layout import CLASS_NAMES, RELEASE_FOLDER, find_root, parse_folder  # noqa: F401
from visionflow.data.report import DataReport
from visionflow.data.tfds_source import prepare_builder


def read_example(path: Path, label: int, max_side: int) -> tuple[dict[str, Any], list[str]]:
    """TFDS `tf_flowers` features of one image (image as (H, W, 3) uint8), and the fixes applied.

    Raises UnreadableImageError (a ValueError) for a file that cannot be decoded.
    """
    image, fixes = read_rgb(path, max_side)  # (H, W, 3)
    return {"image": image, "label": label}, fixes


class LocalFlowersBuilder(tfds_flowers.Builder, skip_registration=True):
    """`tf_flowers` 3.0.1 generated from a local flower_photos/ folder instead of a download."""

    name = "tf_flowers"
    VERSION = tfds_flowers.Builder.VERSION
    # Description/citation from the registered builder's folder; nothing to download, so no checksum lookup.
    pkg_dir_path = tfds_flowers.Builder._get_pkg_dir_path()
    url_infos = None

    def __init__(self, *, items: list[tuple[Path, int]], root: Path, max_side: int, report: DataReport, param: str,
                 **kwargs: Any):
        self._items, self._root, self._max_side, self._report, self._param = items, root, max_side, report, param
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        del dl_manager  # the folder is already local
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        count, rejected = 0, []
        for path, label in self._items:
            rel = path.relative_to(self._root).as_posix()
            try:
                example, fixes = read_example(path, label, self._max_side)
            except UnusableFileError as exc:
                rejected.append({"file": rel, "reason": exc.reason})
                self._report.skip(**rejected[-1])
                continue
            if fixes:
                self._report.fix(rel, ", ".join(fixes) + "; re-encoded as jpeg")
            # Untouched files are stored byte for byte, as TFDS does; repaired ones re-encoded.
            example["image"] = encode_jpeg(example["image"]) if fixes else path.read_bytes()
            count += 1
            yield rel, example  # "<class>/<file>", the key TFDS uses
        if count == 0:
            raise DataSourceError(
                f"{self._param}: no usable image under {self._root}, every one was rejected: "
                f"{DataReport.reasons(rejected)}"
            )


def prepare_local(
    root: Path, data_dir: Path, *, max_image_side: int, param: str = "data.flowers_dir", source: str = "directory"
) -> DataReport:
    """Parse and validate a flower_photos/ folder, then write TFDS `tf_flowers` into `data_dir` atomically."""
    items, skipped = parse_folder(root, param=param)
    folder = find_root(root, param=param)
    report = DataReport(dataset=LocalFlowersBuilder.name, source=source)
    for row in skipped:
        report.skip(row["file"], row["reason"])

    def make_builder(stage_dir: Path) -> LocalFlowersBuilder:
        return LocalFlowersBuilder(
            items=items, root=folder, max_side=max_image_side, report=report, param=param, data_dir=str(stage_dir)
        )

    return prepare_builder(make_builder, data_dir, report)
