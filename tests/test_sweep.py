"""`make sweep`: a cross-validated grid as queued DVC experiments, summarised as mean +- std over the folds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHRUNK, clone, fresh_shell_env
from visionflow.sweep import grid


def test_grid_axes_are_comma_lists_and_everything_else_is_fixed():
    fixed, points = grid(["a.b=1,2", "c=x", "d=[1, 2]", "e=3,4"])
    assert fixed == ["c=x", "d=[1, 2]"]
    assert points == [{"a.b": "1", "e": "3"}, {"a.b": "1", "e": "4"}, {"a.b": "2", "e": "3"}, {"a.b": "2", "e": "4"}]
    assert grid(["c=x"]) == (["c=x"], [{}])


def make_sweep(tmp_path, *variables: str) -> tuple[Path, subprocess.CompletedProcess]:
    """`make sweep VARIABLES` as typed, 2 folds of 1-epoch segmentation on the synthetic data, in a fresh clone."""
    repo = clone(tmp_path / "repo", SHRUNK)
    (repo / "configs" / "tiny.yaml").write_text("segmentation:\n  epochs: 1\n")
    run = subprocess.run(["make", "sweep", "SETTINGS=configs/tiny.yaml", "SOURCE=synthetic", "FOLDS=2", *variables,
                          "TARGETS=evaluate_segmentation"], cwd=repo, env=fresh_shell_env(),
                         capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return repo, run


@pytest.mark.slow
def test_make_sweep_runs_every_point_seed_and_fold_and_pools_each_points_runs(tmp_path):
    repo, run = make_sweep(tmp_path, "SEEDS=1,2", "SWEEP=t", "GRID=-S segmentation.learning_rate=0.001,0.003")
    assert "queued 8 experiments: 2 grid point(s) x 2 seeds x 2 folds" in run.stdout
    assert "sweep: 8/8 experiments done" in run.stdout
    assert "(mean +- std over 2 folds x 2 seeds (1,2);" in run.stdout
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| segmentation.learning_rate | segmentation.mean_iou |")
    assert "classifier" not in table[0] and "detection" not in table[0]  # stages the targets did not run
    assert [row.split(" | ")[0] for row in table[1:]] == ["| 0.001", "| 0.003"]
    assert all(" +- " in row for row in table[1:])

    shown = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc exp show --json"], cwd=repo,
                           env=fresh_shell_env(), capture_output=True, text=True, check=True).stdout
    runs = {}
    for exp in (exp for rev in json.loads(shown) for exp in rev["experiments"] or []):
        data = exp["revs"][0]["data"]
        params = data["params"]["params.yaml"]["data"]
        runs[exp["name"]] = (params["segmentation"]["learning_rate"], params["seed"], params["data"]["fold"],
                             data["metrics"]["metrics/segmentation.json"]["data"]["mean_iou"])
    assert {name: run[:3] for name, run in runs.items()} == {
        f"t-{i}-s{seed}-f{fold}": (rate, seed, fold)
        for i, rate in enumerate((0.001, 0.003)) for seed in (1, 2) for fold in (0, 1)}
    summary = pd.read_csv(repo / "reports" / "sweep-t.csv", header=[0, 1], index_col=0)
    assert len(summary) == 2 and not summary.isna().any().any()  # a row per point: its seeds' folds pooled
    for row, rate in enumerate((0.001, 0.003)):
        ious = [run[3] for run in runs.values() if run[0] == rate]
        assert summary[("segmentation.mean_iou", "mean")].iloc[row] == pytest.approx(np.mean(ious))
        assert summary[("segmentation.mean_iou", "std")].iloc[row] == pytest.approx(np.std(ious, ddof=1))


@pytest.mark.parametrize("text, problem", [("42,x", "comma-separated whole numbers"), ("7,7", "each seed once"),
                                           ("-1,3", "none negative")])
def test_bad_seeds_are_refused_by_name(text, problem):
    from visionflow.config import ConfigError
    from visionflow.sweep import parse_seeds

    with pytest.raises(ConfigError, match=f"--seeds {text}: .*{problem}"):
        parse_seeds(text)
    assert parse_seeds("") == [] and parse_seeds("42,7") == [42, 7]


def test_the_sweep_command_turns_bad_seeds_into_one_error_line(monkeypatch):
    from visionflow import sweep

    monkeypatch.setattr(sweep, "queue", lambda *a, **k: pytest.fail("queued despite bad seeds"))
    with pytest.raises(SystemExit, match=r"^error: --seeds 7,7: each seed once"):
        sweep.main(["configs/real.yaml", "--folds", "3", "--seeds", "7,7"])


def test_seeds_and_a_seed_setting_together_are_refused_before_anything_is_queued(monkeypatch):
    from visionflow import sweep
    from visionflow.config import ConfigError

    monkeypatch.setattr(sweep.subprocess, "run", lambda *a, **k: pytest.fail("queued despite the conflict"))
    with pytest.raises(ConfigError, match="--seeds and -S seed="):
        sweep.queue(Path("configs/real.yaml"), "s", 3, ["-S", "seed=5"], [1, 2])


def test_a_sweep_whose_experiments_wrote_no_metrics_says_so(tmp_path, monkeypatch):
    from visionflow import sweep

    monkeypatch.setattr(sweep, "experiment_commits", lambda baseline: {"s-0-f0": "abc", "s-0-f1": "def"})
    monkeypatch.setattr(sweep, "_metrics_at", lambda rev: {})
    with pytest.raises(ValueError, match="no experiment of 2 changed a headline metrics file against 1234567"):
        sweep.summarise([("s-0-f0", {}, 0), ("s-0-f1", {}, 1)], "1234567890", tmp_path / "out.csv")


def test_without_seeds_each_point_and_fold_is_queued_once_under_a_name_without_a_seed(monkeypatch, capsys):
    from visionflow import sweep

    queued = []
    monkeypatch.setattr(sweep.subprocess, "run", lambda argv, **kw: queued.append(argv[argv.index("-n") + 1]))
    names = [exp for exp, _, _ in sweep.queue(Path("configs/real.yaml"), "t", 2,
                                               ["-S", "segmentation.learning_rate=0.001,0.003"])]
    assert names == queued == ["t-0-f0", "t-0-f1", "t-1-f0", "t-1-f1"]
    assert "queued 4 experiments: 2 grid point(s) x 2 folds" in capsys.readouterr().out


def test_a_sweep_with_failed_experiments_summarises_the_rest_and_says_how_many(monkeypatch, capsys):
    from visionflow import sweep

    queued = [(f"s-0-s{seed}-f{fold}", {}, fold) for seed in (1, 2) for fold in (0, 1)]
    monkeypatch.setattr(sweep, "queue", lambda *a, **k: queued)
    monkeypatch.setattr(sweep, "run_queue", lambda names: ["s-0-s2-f0", "s-0-s2-f1"])
    summarised = []
    monkeypatch.setattr(sweep, "summarise", lambda items, *a: summarised.extend(items) or pd.DataFrame(
        {("m", "mean"): [0.5], ("m", "std"): [0.1]}, index=pd.Index(["all"], name="setting")))
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["configs/real.yaml", "--folds", "2", "--seeds", "1,2", "-n", "s"])
    assert exit_.value.code == 1 and summarised == queued[:2]
    out, err = capsys.readouterr()
    assert "sweep: 2 experiment(s) failed: s-0-s2-f0, s-0-s2-f1" in err
    assert "(mean +- std over the 2 of 4 experiments (2 folds x 2 seeds (1,2)) that succeeded;" in out
