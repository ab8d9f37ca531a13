"""What a run is tied to: file and DVC digests, the git commit and whether it is dirty, and the processes (a
stage's own, its DVC execution's) that tell a live run from a killed one."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import yaml


def file_sha256(path: Path) -> str:
    """Content hash of a file (identifies a saved model across stages)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _pipeline_writes() -> set[str]:
    """Files the pipeline itself rewrites: dvc.lock, params.yaml (DVC's -S) and every stage output."""
    written = {"dvc.lock", "params.yaml"}
    stages = (yaml.safe_load(Path("dvc.yaml").read_text()) or {}).get("stages", {}) if Path("dvc.yaml").is_file() else {}
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for item in stage.get(key, []):
                written.add(next(iter(item)) if isinstance(item, dict) else item)
    return written


def git_dirty() -> bool:
    """Tracked files changed since the commit, other than what the pipeline writes (its params are logged)."""
    written = _pipeline_writes()
    changed = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return any(not any(path == w or path.startswith(w.rstrip("/") + "/") for w in written) for path in changed)


def dvc_digests() -> dict[str, str]:
    """`{output path: md5}` DVC recorded in dvc.lock (`md5.dir` for folders); empty outside a DVC workspace."""
    lock = Path("dvc.lock")
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values()
    return {out["path"].rstrip("/"): out["md5"] for stage in stages for out in stage.get("outs", []) if "md5" in out}


def process_key(proc=None) -> str:
    """host:pid:start time of a process (this one by default): unique, and checkable by `execution_alive`."""
    import psutil

    proc = proc or psutil.Process()
    return f"{socket.gethostname()}:{proc.pid}:{proc.create_time():.3f}"


def execution_key() -> str | None:
    """Identifies one DVC execution: the nearest `dvc` ancestor process, plus the experiment and folder."""
    import psutil

    for proc in psutil.Process().parents():
        try:
            cmd = proc.cmdline()
            if any(Path(arg).name == "dvc" for arg in cmd[:2]) or cmd[1:3] == ["-m", "dvc"]:
                return f"{process_key(proc)}:{os.environ.get('DVC_EXP_NAME', '')}:{Path.cwd()}"
        except psutil.Error:
            continue
    return None


def execution_alive(key: str) -> bool:
    """Whether the DVC process of an execution key still runs (keys of other hosts count as alive)."""
    import psutil

    host, pid, created = key.split(":")[:3]
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" == created
    except psutil.Error:
        return False
