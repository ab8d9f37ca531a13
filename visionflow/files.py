"""Writing result files: strict JSON, written whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _strict(value: Any) -> Any:
    # NaN (e.g. the IoU of a class absent from both truth and prediction) is not JSON: write null.
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def to_json(data: Any) -> str:
    """Sorted, indented, strict JSON text (NaN becomes null)."""
    return json.dumps(_strict(data), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(data: Any, path: Path) -> None:
    """Write JSON atomically (temp file + rename), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(to_json(data))
    tmp.replace(path)
