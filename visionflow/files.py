"""Result files and folders written whole or not at all (temp + rename); strict JSON; stale temps cleaned."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


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


@contextmanager
def atomic_output(path: Path, suffix: str = "", directory: bool = False) -> Iterator[Path]:
    """Yield a temp path beside `path` (an empty folder with `directory`) to write into; when the block succeeds
    it replaces `path` in one rename (a folder already there is moved aside first, then deleted), when it fails it
    is removed and `path` is as it was. The one way visionflow writes a result: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = temp_path(path, ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_text(text: str, path: Path) -> None:
    """Write a text file atomically (atomic_output), creating its folder."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_json(data: Any, path: Path) -> None:
    """Write strict JSON atomically (atomic_output), creating the folder; a failed write leaves no temp."""
    write_text(to_json(data), path)
