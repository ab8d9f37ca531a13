"""The release layouts, checked without TensorFlow: what `make run`'s preflight and the parsers share.

Oxford-IIIT Pet: images/, annotations/{trainval,test}.txt, annotations/trimaps/. tf_flowers: flower_photos/
with one folder of images per class.
"""

from __future__ import annotations

from pathlib import Path

from visionflow.classes import FLOWER_CLASSES
from visionflow.data.images import IMAGE_SUFFIXES, DataSourceError

PETS_LAYOUT = (
    "expected the Oxford-IIIT Pet release layout: images/*.jpg, annotations/trainval.txt, annotations/test.txt, "
    "annotations/trimaps/*.png, annotations/xmls/*.xml"
)


def check_layout(
    root: Path, list_names: tuple[str, ...] = ("trainval", "test"), *, param: str = "data.pets_dir"
) -> None:
    """Raise DataSourceError naming `param` unless `root` has the release folders and the given list files."""
    root = Path(root)
    if not root.is_dir():
        raise DataSourceError(f"{param}: {root} not found or not a folder ({PETS_LAYOUT})")
    required = ["images", "annotations", "annotations/trimaps", *(f"annotations/{n}.txt" for n in list_names)]
    for rel in required:
        path = root / rel
        ok = path.is_file() if rel.endswith(".txt") else path.is_dir()
        if not ok:
            shown = rel if rel.endswith(".txt") else f"{rel}/"
            raise DataSourceError(f"{param}: {shown} not found under {root} ({PETS_LAYOUT})")


CLASS_NAMES = FLOWER_CLASSES  # the folders a flower_photos/ tree must have
RELEASE_FOLDER = "flower_photos"
FLOWERS_LAYOUT = f"expected flower_photos/ with one subfolder of images per class: {', '.join(CLASS_NAMES)}"


def find_root(root: Path, *, param: str = "data.flowers_dir") -> Path:
    """The folder holding the class folders: `root` itself, or `root/flower_photos` as the release unpacks."""
    root = Path(root)
    if not root.is_dir():
        raise DataSourceError(f"{param}: {root} not found or not a folder ({FLOWERS_LAYOUT})")
    nested = root / RELEASE_FOLDER
    if nested.is_dir() and not any((root / name).is_dir() for name in CLASS_NAMES):
        return nested
    return root


def parse_folder(root: Path, *, param: str = "data.flowers_dir") -> tuple[list[tuple[Path, int]], list[dict[str, str]]]:
    """(image path, label) for every image of the class folders, sorted; and the files skipped, with reasons."""
    root = find_root(root, param=param)
    items: list[tuple[Path, int]] = []
    skipped: list[dict[str, str]] = []
    folders = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            # The release has LICENSE.txt at the top; hidden entries come from file managers.
            skipped.append({"file": entry.name, "reason": "not a class folder; not used"})
        elif entry.name not in CLASS_NAMES:
            raise DataSourceError(
                f"{param}: folder {entry} is not a tf_flowers class (allowed: {', '.join(CLASS_NAMES)}); "
                "rename or remove it"
            )
        else:
            folders[entry.name] = entry
    missing = [name for name in CLASS_NAMES if name not in folders]
    if missing:
        raise DataSourceError(f"{param}: class folder(s) {', '.join(missing)} missing under {root} ({FLOWERS_LAYOUT})")
    for name, folder in folders.items():
        images = []
        for path in sorted(folder.iterdir()):
            rel = path.relative_to(root).as_posix()
            if path.is_dir():
                skipped.append({"file": rel, "reason": "folder inside a class folder; not used"})
            elif path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                kind = path.suffix or "no extension"
                skipped.append({"file": rel, "reason": f"not an image ({kind} file); not used"})
            else:
                images.append((path, CLASS_NAMES.index(name)))
        if not images:
            raise DataSourceError(f"{param}: class folder {folder} has no images; add its images ({FLOWERS_LAYOUT})")
        items.extend(images)
    items.sort(key=lambda item: item[0].relative_to(root).as_posix())
    return items, skipped
