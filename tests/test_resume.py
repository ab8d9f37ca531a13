"""kill -9 during a training stage, then `dvc repro`: training resumes from its last epoch and ends with the
model (byte for byte) and curves of an uninterrupted run; the killed MLflow run is closed as FAILED."""

from __future__ import annotations

import signal
import subprocess

import psutil
import pytest

from tests.conftest import clone, fresh_shell_env
from visionflow.tracking import file_sha256

pytestmark = pytest.mark.slow

SMALL = {"data": {"synthetic": {"pets_images": 40, "pets_min_side": 96, "pets_max_side": 128}},
         "segmentation": {"image_size": 64, "epochs": 4, "batch_size": 8}}


def _dvc(repo, args: str, env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"source .venv/bin/activate; dvc {args}"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)


def test_kill_9_during_training_then_dvc_repro_resumes_to_the_uninterrupted_model(tmp_path):
    import mlflow

    env = fresh_shell_env()
    # The uninterrupted reference runs in a clone of its own: in the same clone, its dvc.lock entry and cached
    # model would be checked out by `dvc repro` (DVC's run-cache) instead of resuming. A killed run of settings
    # that never finished has neither.
    other = clone(tmp_path / "reference", SMALL)
    first = _dvc(other, "repro train_segmentation", env)
    assert first.returncode == 0, first.stderr[-3000:]
    reference = file_sha256(other / "models/segmentation.keras")
    reference_curves = (other / "plots/segmentation/history.csv").read_text()

    repo = clone(tmp_path / "repo", SMALL)
    model, curves = repo / "models/segmentation.keras", repo / "plots/segmentation/history.csv"
    killed = subprocess.Popen(["bash", "-c", "source .venv/bin/activate; exec dvc repro train_segmentation"],
                              cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in killed.stdout:
        output.append(line)
        if line.startswith("Epoch 3/4"):  # epochs 1 and 2 are checkpointed
            # the Python process itself, not a `sh -c` wrapper that some shells keep around it
            (stage,) = [p for p in psutil.Process(killed.pid).children(recursive=True)
                        if p.cmdline()[1:3] == ["-m", "stages.train_segmentation"]]
            stage.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=120) != 0, "".join(output)[-3000:]
    (checkpoint,) = (repo / ".checkpoints").iterdir()
    assert [p.name for p in checkpoint.iterdir()] == ["epoch-2"] and not model.exists()

    resumed = _dvc(repo, "repro train_segmentation", env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {checkpoint.relative_to(repo)}/epoch-2 (epoch 2 done)" in resumed.stdout
    assert "Epoch 3/4" in resumed.stdout and "Epoch 1/4" not in resumed.stdout
    assert file_sha256(model) == reference and curves.read_text() == reference_curves
    assert list((repo / ".checkpoints").iterdir()) == []
    assert _dvc(repo, "status train_segmentation", env).stdout.strip().endswith("up to date.")

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("visionflow").experiment_id],
                              "attributes.run_name = 'train_segmentation'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    (failed,) = [r for r in runs if r.info.status == "FAILED"]
    assert "killed" in failed.data.tags["visionflow.failure"]
