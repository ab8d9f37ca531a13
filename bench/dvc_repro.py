"""Benchmark 5: `dvc repro` in the repository when every stage is up to date, in seconds (an absolute time).

What a user waits for after `git pull` or `make run` with nothing changed: DVC reads dvc.yaml, dvc.lock and
params.yaml, hashes the dependencies and finds nothing to run. The pipeline is checked first with
`dvc status`: when a stage is out of date the benchmark is skipped (with the reason), because timing
`dvc repro` then would run the pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, figure, median

NAME = "dvc"
TITLE = "`dvc repro`, nothing to do"
GOAL = ("<=", 3.0)


def _dvc() -> str:
    """The dvc next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if found is None:
        raise RuntimeError("dvc benchmark: no `dvc` beside the running Python or on PATH; run it with `make bench`")
    return found


def _dvc_run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([_dvc(), *args], cwd=repo, capture_output=True, text=True,
                         env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if run.returncode != 0:
        last = (run.stderr.strip() or run.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"`dvc {' '.join(args)}` failed in {repo} (exit {run.returncode}): {last[0]}")
    return run


def measure(repo: Path, repeats: int) -> dict:
    """Seconds of `dvc repro` in `repo` (median of `repeats`), or {"skipped": why} when a stage is out of date."""
    changed = json.loads(_dvc_run(repo, "status", "--json").stdout or "{}")
    if changed:
        names = ", ".join(sorted(changed)[:4]) + (", ..." if len(changed) > 4 else "")
        return {"skipped": f"the pipeline is not up to date ({len(changed)} changed: {names}); timing `dvc repro` "
                           "would run it: run `dvc repro` (or `make run`) first"}
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run = _dvc_run(repo, "repro")
        seconds.append(time.perf_counter() - start)
        if "Running stage" in run.stdout:
            raise RuntimeError(f"dvc benchmark: `dvc repro` ran a stage in {repo}: the pipeline changed while it "
                               f"was timed\n{run.stdout[-2000:]}")
    return {"figures": {"seconds": figure(median(seconds), "s", "seconds of `dvc repro` with nothing to do "
                                          f"(median of {repeats})", GOAL)},
            "details": {"seconds": seconds,
                        "stages": len(_dvc_run(repo, "stage", "list", "--name-only").stdout.split())}}


def run(ctx) -> dict:
    print(f"  `dvc repro` in the repository, {ctx.sizes.dvc_repeats} runs", flush=True)
    return measure(REPO, ctx.sizes.dvc_repeats)
