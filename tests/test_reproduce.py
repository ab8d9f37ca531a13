"""Same results on any machine: `make run` from scratch in a fresh clone reproduces the committed run.

Every DVC hash up to the caches is exact; the metrics, which depend on float arithmetic that differs between
CPUs, TF builds and thread counts, agree within `visionflow.summary.TOLERANCE` (measured; README).
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.conftest import REPO, clone, fresh_shell_env
from visionflow.summary import TOLERANCE, beyond_tolerance, headline_values




def _outs(lock_text: str) -> dict[str, str]:
    stages = yaml.safe_load(lock_text)["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


@pytest.mark.slow
def test_make_run_in_a_fresh_clone_reproduces_the_committed_run(tmp_path):
    repo = clone(tmp_path / "repo")
    committed = _outs((REPO / "dvc.lock").read_text())
    reference = headline_values(REPO / "metrics")
    run = subprocess.run(["make", "run"], cwd=repo, env=fresh_shell_env(), capture_output=True, text=True,
                         timeout=2400)  # 13.5 minutes on a 2-core AVX2 CPU, 19.5 with oneDNN off
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("prepare_pets", "build_cache_pets", "train_segmentation", "train_classifier"):
        assert f"Running stage '{stage}'" in run.stdout  # from scratch: a clone has no DVC cache
    fresh = _outs((repo / "dvc.lock").read_text())
    for path in ("data/pets", "data/flowers", "data/cache/pets", "data/cache/flowers", "metrics/data_pets.json",
                 "metrics/data_flowers.json"):
        assert fresh[path] == committed[path], path
    assert set(reference) == set(TOLERANCE)
    assert beyond_tolerance(headline_values(repo / "metrics"), reference) == []


def test_beyond_tolerance_names_each_metric_that_moved_too_far():
    reference = {"segmentation.mean_iou": 0.47, "classifier.accuracy": 0.66, "detection.map50": 0.15}
    close = {"segmentation.mean_iou": 0.47 + 0.029, "classifier.accuracy": 0.66 - 0.06, "detection.map50": 0.22}
    assert beyond_tolerance(close, reference) == []
    far = {**close, "segmentation.mean_iou": 0.43, "detection.map50": None}
    del far["detection.map50"]
    assert beyond_tolerance(far, reference) == [
        "segmentation.mean_iou: 0.43 against 0.47 (tolerance 0.03)",
        "detection.map50: None against 0.15 (tolerance 0.08)"]
