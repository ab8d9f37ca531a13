"""Oxford-IIIT Pet release layout: a robust parser and the TFDS `oxford_iiit_pet` builder over a local folder."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.datasets.oxford_iiit_pet import oxford_iiit_pet_dataset_builder as tfds_pets

from visionflow.data.images import DataSourceError, UnreadableImageError, UnusableFileError, encode_jpeg, read_rgb
from visionflow.classes import TRIMAP_VALUES
from visionflow.data.layout import check_layout  # noqa: F401 - re-exported
from visionflow.data.report import DataReport
from visionflow.data.tfds_source import prepare_builder

NUM_BREEDS = 37
LIST_NAMES = ("trainval", "test", "list")
# TFDS split name -> list file, as the registered builder does.
SPLIT_LISTS = {"train": "trainval", "test": "test"}
# A listed name is a file stem under images/: no path separators, no hidden or parent entries.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_EMPTY_BBOX = tfds.features.BBox(0.0, 0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class PetRecord:
    """One listed image of the release, with its annotation files (xml_path is None when absent)."""

    name: str
    image_path: Path
    trimap_path: Path
    xml_path: Path | None
    label: int  # 0-based breed, TFDS order
    species: int  # 0 = cat, 1 = dog


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_list(path: Path) -> Iterator[tuple[int, str, int, int]]:
    """(line number, name, label, species) for each entry of a list file; `#` lines are comments."""
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4 or not _NAME.match(fields[0]) or not all(f.isdigit() for f in fields[1:]):
            raise DataSourceError(
                f"{path}:{lineno}: expected 'NAME CLASS-ID SPECIES BREED-ID', got {line!r} "
                "(is this an Oxford-IIIT Pet list file?)"
            )
        name, class_id, species_id = fields[0], int(fields[1]), int(fields[2])
        if not 1 <= class_id <= NUM_BREEDS or species_id not in (1, 2):
            raise DataSourceError(
                f"{path}:{lineno}: CLASS-ID must be 1..{NUM_BREEDS} and SPECIES 1 (cat) or 2 (dog), got {line!r}"
            )
        yield lineno, name, class_id - 1, species_id - 1


def parse_release(
    root: Path, list_name: str = "trainval", *, param: str = "data.pets_dir"
) -> tuple[list[PetRecord], list[dict[str, str]]]:
    """Records of the images listed in annotations/<list_name>.txt, and the listed files skipped (with reasons)."""
    if list_name not in LIST_NAMES:
        raise ValueError(f"parse_release: list_name must be one of {LIST_NAMES}, got {list_name!r}")
    root = Path(root)
    check_layout(root, (list_name,), param=param)
    list_rel = f"annotations/{list_name}.txt"
    records: list[PetRecord] = []
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    for lineno, name, label, species in _read_list(root / list_rel):
        image = root / "images" / f"{name}.jpg"
        trimap = root / "annotations" / "trimaps" / f"{name}.png"
        xml = root / "annotations" / "xmls" / f"{name}.xml"
        if name in seen:
            skipped.append({"file": _rel(image, root), "reason": f"listed twice in {list_rel} (line {lineno})"})
        elif not image.is_file():
            skipped.append({"file": _rel(image, root), "reason": f"listed in {list_rel} but the file is missing"})
        elif not trimap.is_file():
            skipped.append({"file": _rel(image, root), "reason": f"no trimap ({_rel(trimap, root)} is missing)"})
        else:
            records.append(PetRecord(name, image, trimap, xml if xml.is_file() else None, label, species))
        seen.add(name)
    return records, skipped


def unused_files(root: Path) -> list[dict[str, str]]:
    """Files in images/ that no split list names (e.g. the release's .mat files), as skipped entries."""
    root = Path(root)
    listed = {
        name
        for list_name in SPLIT_LISTS.values()
        if (root / "annotations" / f"{list_name}.txt").is_file()
        for _, name, _, _ in _read_list(root / "annotations" / f"{list_name}.txt")
    }
    out = []
    for path in sorted((root / "images").iterdir()):
        if path.suffix == ".jpg" and path.stem in listed:
            continue
        if path.suffix.lower() in (".jpg", ".jpeg"):
            reason = "in neither annotations/trainval.txt nor annotations/test.txt; not used"
        else:
            reason = f"not an image listed by the release ({path.suffix or 'no extension'} file); not used"
        out.append({"file": _rel(path, root), "reason": reason})
    return out


def _read_trimap(path: Path) -> np.ndarray:
    """(H, W) uint8 trimap with values in {1, 2, 3}; raises UnusableFileError otherwise."""
    try:
        with Image.open(path) as img:
            img.load()
            mode, trimap = img.mode, np.asarray(img)  # palette images give their indices, as wanted
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(path, f"cannot decode trimap ({exc})") from None
    if trimap.ndim != 2:
        raise UnusableFileError(path, f"trimap has {mode} pixels, expected one channel with values 1, 2, 3")
    bad = np.setdiff1d(np.unique(trimap), TRIMAP_VALUES)
    if bad.size:
        hint = " (0-based? the release's trimaps hold 1 pet, 2 background, 3 border)" if 0 in bad else ""
        raise UnusableFileError(path, f"trimap values {bad.tolist()} outside {{1, 2, 3}}{hint}")
    return trimap.astype(np.uint8)


def _head_bbox(xml_path: Path) -> tuple[tfds.features.BBox, str | None]:
    """Normalised head box from a release XML, and a fix message when it had to be clipped or dropped."""
    try:
        root = ET.parse(xml_path).getroot()
        width = float(root.find("size").find("width").text)
        height = float(root.find("size").find("height").text)
        box = root.find("object").find("bndbox")
        ymin, ymax = (float(box.find(k).text) / height for k in ("ymin", "ymax"))
        xmin, xmax = (float(box.find(k).text) / width for k in ("xmin", "xmax"))
    except (ET.ParseError, AttributeError, TypeError, ValueError, ZeroDivisionError) as exc:
        return _EMPTY_BBOX, f"unreadable head box ({type(exc).__name__}: {exc}); head_bbox left empty"
    if ymin > ymax or xmin > xmax:
        return _EMPTY_BBOX, "head box has min > max; head_bbox left empty"
    clipped = [min(max(v, 0.0), 1.0) for v in (ymin, xmin, ymax, xmax)]
    fix = "head box clipped to the image" if clipped != [ymin, xmin, ymax, xmax] else None
    return tfds.features.BBox(*clipped), fix


def read_example(record: PetRecord, max_side: int) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """TFDS `oxford_iiit_pet` features of one record (image as (H, W, 3) uint8), and the fixes applied.

    Raises UnusableFileError (a ValueError) for an unreadable image or trimap, or trimap values outside 1..3.
    """
    root = record.image_path.parents[1]
    fixes: list[dict[str, str]] = []
    image, image_fixes = read_rgb(record.image_path, max_side)  # (H, W, 3)
    trimap = _read_trimap(record.trimap_path)  # (h, w)
    with Image.open(record.image_path) as img:
        original = img.size  # header only: the size the annotations were drawn on
    if image_fixes:
        fixes.append({"file": _rel(record.image_path, root), "fix": ", ".join(image_fixes) + "; re-encoded as jpeg"})

    height, width = image.shape[:2]
    trimap_size = (trimap.shape[1], trimap.shape[0])
    if trimap_size != (width, height):
        why = "did not match the image" if trimap_size != original else "downscaled with the image"
        fixes.append({
            "file": _rel(record.trimap_path, root),
            "fix": f"trimap {trimap_size[0]}x{trimap_size[1]} {why}: resized to {width}x{height} (nearest)",
        })
        trimap = np.asarray(Image.fromarray(trimap).resize((width, height), Image.Resampling.NEAREST))

    bbox = _EMPTY_BBOX  # test images have no XML in the release, as in TFDS
    if record.xml_path is not None:
        bbox, bbox_fix = _head_bbox(record.xml_path)
        if bbox_fix:
            fixes.append({"file": _rel(record.xml_path, root), "fix": bbox_fix})

    example = {
        "image": image,
        "label": record.label,
        "species": record.species,
        "file_name": f"{record.name}.jpg",
        "segmentation_mask": trimap[..., None],  # (H, W, 1)
        "head_bbox": bbox,
    }
    return example, fixes


class LocalPetsBuilder(tfds_pets.Builder, skip_registration=True):
    """`oxford_iiit_pet` 4.0.0 generated from a local release folder instead of a download."""

    name = "oxford_iiit_pet"
    VERSION = tfds_pets.Builder.VERSION
    # Description/citation come from the registered builder's folder, not this module's (TFDS looks beside
    # the subclass); and there is nothing to download, so no checksum file is looked up.
    pkg_dir_path = tfds_pets.Builder._get_pkg_dir_path()
    url_infos = None

    def __init__(self, *, splits: dict[str, list[PetRecord]], max_side: int, report: DataReport, root: Path,
                 param: str, **kwargs: Any):
        self._splits, self._max_side, self._report, self._root, self._param = splits, max_side, report, root, param
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        del dl_manager  # the folder is already local
        return {split: self._generate_examples(split) for split in self._splits}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        count, rejected = 0, []
        for record in self._splits[split]:
            try:
                example, fixes = read_example(record, self._max_side)
            except UnusableFileError as exc:
                rejected.append({"file": _rel(exc.path, self._root), "reason": exc.reason})
                self._report.skip(**rejected[-1])
                continue
            for fix in fixes:
                self._report.fix(fix["file"], fix["fix"])
            repaired = _rel(record.image_path, self._root) in {fix["file"] for fix in fixes}
            # Untouched files are stored byte for byte, as TFDS does; repaired ones re-encoded.
            example["image"] = encode_jpeg(example["image"]) if repaired else record.image_path.read_bytes()
            count += 1
            yield example["file_name"], example
        if count == 0:
            listing = self._root / "annotations" / f"{SPLIT_LISTS[split]}.txt"
            raise DataSourceError(
                f"{self._param}: split {split!r} is empty: every image listed in {listing} was rejected: "
                f"{DataReport.reasons(rejected)}"
            )


def prepare_local(
    root: Path, data_dir: Path, *, max_image_side: int, param: str = "data.pets_dir", source: str = "directory"
) -> DataReport:
    """Parse and validate a release folder, then write TFDS `oxford_iiit_pet` into `data_dir` atomically."""
    root = Path(root)
    check_layout(root, tuple(SPLIT_LISTS.values()), param=param)
    report = DataReport(dataset=LocalPetsBuilder.name, source=source)
    splits: dict[str, list[PetRecord]] = {}
    for split, list_name in SPLIT_LISTS.items():
        records, skipped = parse_release(root, list_name, param=param)
        if not records:
            raise DataSourceError(
                f"{param}: split {split!r} is empty: no usable image listed in {root / 'annotations' / list_name}.txt "
                f"({len(skipped)} listed files skipped: missing image or trimap)"
            )
        splits[split] = records
        for row in skipped:
            report.skip(row["file"], row["reason"])
        if split == "train":  # test images have no XML in the release: only trainval ones are worth a note
            for record in records:
                if record.xml_path is None:
                    note = "trainval image without annotations/xmls/ head box XML; head_bbox left empty"
                    report.note(_rel(record.image_path, root), note)
    for row in unused_files(root):
        report.skip(row["file"], row["reason"])

    def make_builder(stage_dir: Path) -> LocalPetsBuilder:
        return LocalPetsBuilder(
            splits=splits, max_side=max_image_side, report=report, root=root, param=param, data_dir=str(stage_dir)
        )

    return prepare_builder(make_builder, data_dir, report)
