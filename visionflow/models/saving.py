"""Saving .keras files byte-reproducibly, so the same weights give the same DVC hash."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras

from visionflow.files import atomic_output, temp_path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def _renumber_shared_objects(node, ids: dict[int, int]) -> None:
    # Keras writes Python id()s as `shared_object_id` (e.g. of a dtype policy several layers share): they only
    # link equal objects within one file, so number them in order of appearance instead.
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "shared_object_id" and isinstance(value, int):
                node[key] = ids.setdefault(value, len(ids))
            else:
                _renumber_shared_objects(value, ids)
    elif isinstance(node, list):
        for value in node:
            _renumber_shared_objects(value, ids)


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save(path)` without the save time, written whole or not at all (files.atomic_output)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = temp_path(path, ".raw.keras")  # Keras' own file, rewritten into the output
    try:
        model.save(raw)
        with atomic_output(path, ".keras") as tmp:
            _without_save_stamps(raw, tmp)
    finally:  # a failed save leaves no temp file
        raw.unlink(missing_ok=True)


def _without_save_stamps(raw: Path, out: Path) -> None:
    # Keras stamps metadata.json with "date_saved", the weights entry with the current time and config.json
    # with object ids of this process; the weights themselves are deterministic. Rewrite all three.
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta, sort_keys=True).encode()
            elif info.filename == "config.json":
                config = json.loads(data)
                _renumber_shared_objects(config, {})
                data = json.dumps(config).encode()
            entry = zipfile.ZipInfo(info.filename, date_time=_EPOCH)
            entry.compress_type = info.compress_type
            entry.external_attr = info.external_attr
            dst.writestr(entry, data)
