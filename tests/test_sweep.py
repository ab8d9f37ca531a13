"""`make sweep`: a cross-validated grid as queued DVC experiments, summarised as mean +- std over the folds."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from tests.conftest import clone, fresh_shell_env
from tests.readme_session import SHRUNK
from visionflow.sweep import grid


def test_grid_axes_are_comma_lists_and_everything_else_is_fixed():
    fixed, points = grid(["a.b=1,2", "c=x", "d=[1, 2]", "e=3,4"])
    assert fixed == ["c=x", "d=[1, 2]"]
    assert points == [{"a.b": "1", "e": "3"}, {"a.b": "1", "e": "4"}, {"a.b": "2", "e": "3"}, {"a.b": "2", "e": "4"}]
    assert grid(["c=x"]) == (["c=x"], [{}])


@pytest.mark.slow
def test_make_sweep_runs_every_point_and_fold_and_reports_mean_and_std(tmp_path):
    repo = clone(tmp_path / "repo", SHRUNK)
    (repo / "configs" / "tiny.yaml").write_text("segmentation:\n  epochs: 1\n")
    run = subprocess.run(["make", "sweep", "SETTINGS=configs/tiny.yaml", "SOURCE=synthetic", "FOLDS=2", "SWEEP=t",
                          "GRID=-S segmentation.learning_rate=0.001,0.003", "TARGETS=evaluate_segmentation"], cwd=repo, env=fresh_shell_env(),
                         capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "queued 4 experiments: 2 grid point(s) x 2 folds" in run.stdout
    assert "sweep: 4/4 experiments done" in run.stdout
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| segmentation.learning_rate | segmentation.mean_iou |")
    assert "classifier" not in table[0] and "detection" not in table[0]  # stages the targets did not run
    assert [row.split(" | ")[0] for row in table[1:]] == ["| 0.001", "| 0.003"]
    assert all(" +- " in row for row in table[1:])
    summary = pd.read_csv(repo / "reports" / "sweep-t.csv", header=[0, 1], index_col=0)
    assert len(summary) == 2 and not summary.isna().any().any()
    listed = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc exp list --name-only"], cwd=repo,
                            env=fresh_shell_env(), capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listed) == ["t-0-f0", "t-0-f1", "t-1-f0", "t-1-f1"]


def test_a_sweep_whose_experiments_wrote_no_metrics_says_so(tmp_path, monkeypatch):
    from visionflow import sweep

    monkeypatch.setattr(sweep, "experiment_commits", lambda baseline: {"s-0-f0": "abc", "s-0-f1": "def"})
    monkeypatch.setattr(sweep, "_metrics_at", lambda rev: {})
    with pytest.raises(ValueError, match="no experiment of 2 changed a headline metrics file against 1234567"):
        sweep.summarise([("s-0-f0", {}, 0), ("s-0-f1", {}, 1)], "1234567890", tmp_path / "out.csv")
