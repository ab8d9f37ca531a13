"""Team sharing through a DVC remote on a real S3 endpoint (moto's server on 127.0.0.1) and a bare git repo:
clone A runs and pushes, clone B pulls and skips every stage, B's experiment reaches clone C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BUCKET, REPO, SHRUNK, clone, fresh_shell_env

TIMINGS = REPO / "build" / "team_timings.json"


def _env(**extra: str) -> dict[str, str]:
    return fresh_shell_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                           GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                           GIT_COMMITTER_EMAIL="t@t", **extra)


def sh(repo: Path, script: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """A command in a shell with the venv active, as a team member types it."""
    result = subprocess.run(["bash", "-c", f"set -e; source .venv/bin/activate; {script}"], cwd=repo,
                            env=env or _env(), capture_output=True, text=True, timeout=1200)
    if check:
        assert result.returncode == 0, f"{script}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _git_clone(bare: Path, dest: Path) -> Path:
    """`git clone` of the team repository, sharing this session's installed venv (as after `make setup`)."""
    subprocess.run(["git", "clone", "-q", "-b", "main", str(bare), str(dest)], check=True, capture_output=True)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    old = (Path(sys.prefix) / ".installed").stat().st_mtime - 60
    for name in ("pyproject.toml", "requirements.lock"):
        os.utime(dest / name, (old, old))
    return dest


def _timed(timings: dict, key: str, fn):
    start = time.monotonic()
    out = fn()
    timings[key] = round(time.monotonic() - start, 1)
    return out


@pytest.mark.slow
def test_two_clones_share_through_the_remote_and_an_experiment_reaches_a_third(tmp_path, s3):
    timings: dict[str, float] = {}
    bare = tmp_path / "team.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    a = clone(tmp_path / "a", params=SHRUNK)
    sh(a, f"dvc remote add -d team s3://{BUCKET}/visionflow && dvc remote modify team endpointurl {s3} && "
          "git add .dvc/config && git commit -qm 'team remote'")
    _timed(timings, "A: make run", lambda: sh(a, "make run"))
    sh(a, "git add -A && git commit -qm 'pipeline run' && git push -q " + str(bare) + " HEAD:refs/heads/main")
    push = _timed(timings, "A: make push", lambda: sh(a, "make push"))
    assert "DVC remote 'team' is reachable" in push.stdout

    b = _git_clone(bare, tmp_path / "b")
    _timed(timings, "B: make pull", lambda: sh(b, "make pull"))
    assert "up to date" in sh(b, "dvc status").stdout
    repro = sh(b, "dvc repro")
    assert "Running stage" not in repro.stdout, repro.stdout
    assert sh(b, "git status --porcelain").stdout == ""
    assert (b / "models/segmentation.keras").is_file() and (b / "data/cache/pets").is_dir()

    # One segmentation param: only its training and evaluation run; everything else comes from the remote.
    exp = _timed(timings, "B: dvc exp run (segmentation only)",
                 lambda: sh(b, "dvc exp run -n lr2 -S segmentation.learning_rate=0.002"))
    ran = [line for line in exp.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'train_segmentation':", "Running stage 'evaluate_segmentation':"], exp.stdout
    mean_iou = json.loads((b / "metrics/segmentation.json").read_text())["mean_iou"]
    sh(b, "dvc exp push origin lr2")
    sh(b, "make push")  # the run-cache entries of lr2's two stages reach the remote
    # The same point again from HEAD, as a sweep repeats one: both stages come back from the run-cache, so no
    # output of theirs may be a plain uncached out (DVC keeps no run-cache entry for a stage with one).
    sh(b, "git checkout -- . && dvc checkout -q")
    again = sh(b, "dvc exp run -n lr2-again -S segmentation.learning_rate=0.002")
    assert "Running stage" not in again.stdout, again.stdout
    assert "Stage 'train_segmentation' is cached - skipping run" in again.stdout, again.stdout
    assert json.loads((b / "metrics/segmentation.json").read_text())["mean_iou"] == pytest.approx(mean_iou)

    # A third clone pulls the run-cache and runs the same point: nothing trains, the model is B's.
    c = _git_clone(bare, tmp_path / "c")
    sh(c, "make pull")
    reused = sh(c, "dvc exp run -n lr2-c -S segmentation.learning_rate=0.002")
    assert "Running stage" not in reused.stdout, reused.stdout
    assert "Stage 'train_segmentation' is cached - skipping run" in reused.stdout, reused.stdout
    assert json.loads((c / "metrics/segmentation.json").read_text())["mean_iou"] == pytest.approx(mean_iou)
    sh(c, "git checkout -- . && dvc checkout -q")
    sh(c, "dvc exp pull origin lr2")
    shown = json.loads(sh(c, "dvc exp show --json").stdout)
    found = [e for rev in shown for e in rev.get("experiments") or [] if e.get("name") == "lr2"]
    assert found, shown
    data = found[0]["revs"][0]["data"]
    assert data["metrics"]["metrics/segmentation.json"]["data"]["mean_iou"] == pytest.approx(mean_iou)
    assert data["params"]["params.yaml"]["data"]["segmentation"]["learning_rate"] == 0.002
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps(timings, indent=2))
    print(timings)


@pytest.mark.parametrize(("setup", "message"), [
    ("", "no default DVC remote is set: add one with `dvc remote add -d team s3://BUCKET/visionflow"),
    ("dvc remote add -d team s3://missing-bucket/visionflow && dvc remote modify team endpointurl {s3}",
     "DVC remote 'team' (s3://missing-bucket/visionflow, endpoint {s3}): bucket 'missing-bucket' does not exist"),
    ("dvc remote add -d team s3://b/v && dvc remote modify team endpointurl http://127.0.0.1:9",
     "DVC remote 'team' (s3://b/v, endpoint http://127.0.0.1:9): the endpoint does not answer"),
    (f"dvc remote add -d team s3://{BUCKET}/v && dvc remote modify team endpointurl {{s3}} && NOCREDS",
     "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
])
@pytest.mark.parametrize("target", ["push", "pull"])
def test_make_push_and_pull_name_the_remote_and_the_fix(tmp_path, s3, setup, message, target):
    repo = clone(tmp_path / "repo")
    env = _env()
    if "NOCREDS" in setup:
        setup = setup.replace(" && NOCREDS", "")
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        env["AWS_SHARED_CREDENTIALS_FILE"] = env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    if setup:
        sh(repo, setup.format(s3=s3))
    run = subprocess.run(["make", target], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert run.stderr.startswith("error: ") and message.format(s3=s3) in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
