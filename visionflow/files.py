"""Writing result files: strict JSON, written whole or not at all; temp files of killed processes cleaned."""

from __future__ import annotations

import json
import os
import shutil
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def temp_path(path: Path, suffix: str = "") -> Path:
    """`.<name>.tmp-<pid><suffix>` beside `path`, to write into and rename; temps that a killed process left
    beside `path` (their pid no longer runs) are removed first, so a crash costs no disk for ever."""
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    if path.parent.is_dir():
        for old in path.parent.glob(prefix + "*"):
            pid = old.name[len(prefix):].split(".")[0]
            if pid.isdigit() and not _alive(int(pid)):
                _remove(old)
    tmp = path.with_name(f"{prefix}{os.getpid()}{suffix}")
    if tmp.exists() or tmp.is_symlink():  # this process's own leftover of an earlier failed write
        _remove(tmp)
    return tmp


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def write_json(data: Any, path: Path) -> None:
    """Write JSON atomically (temp file + rename), creating the folder; a failed write leaves no temp."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = to_json(data)
    tmp = temp_path(path)
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
