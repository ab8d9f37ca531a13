"""MLflow lands in the user's repository, also from DVC's temporary experiment copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionflow import tracking


@pytest.fixture
def exp_copy(tmp_path, monkeypatch):
    """A repository and one of DVC's temporary experiment copies inside it, as the working folder."""
    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc123"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(copy))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("VISIONFLOW_TRACKING", "on")
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-lamb")
    return repo


def test_repo_root_and_store_resolve_out_of_the_experiment_copy(exp_copy):
    assert tracking.repo_root() == exp_copy.resolve()
    assert tracking.tracking_uri() == f"sqlite:///{exp_copy.resolve() / 'mlflow.db'}"
    assert tracking.repo_root(Path("/somewhere/else")) == Path("/somewhere/else")


def test_runs_and_artifacts_land_in_the_repository(exp_copy, tmp_path):
    import mlflow

    figure = tmp_path / "figure.png"
    figure.write_bytes(b"\x89PNG")
    with tracking.start_run("segmentation", "train_segmentation") as run:
        run.log_params({"segmentation": {"epochs": 3, "encoder": {"weights": None}}})
        run.log_metrics({"loss": 0.5, "iou": {"pet": 0.7}, "name": "not a number"}, step=0)
        run.log_artifact(figure, "plots")
    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())
    experiment = client.get_experiment_by_name("visionflow-segmentation")
    assert experiment.artifact_location == (exp_copy.resolve() / "mlruns" / "visionflow-segmentation").as_uri()
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.params == {"segmentation.epochs": "3", "segmentation.encoder.weights": "null"}
    assert logged.data.metrics == {"loss": 0.5, "iou.pet": 0.7}
    assert logged.data.tags["visionflow.dvc_exp_name"] == "lucky-lamb"
    assert (exp_copy / "mlflow.db").is_file() and not (Path.cwd() / "mlruns").exists()
    assert [a.path for a in client.list_artifacts(logged.info.run_id, "plots")] == ["plots/figure.png"]


def test_tracking_off_logs_nothing(exp_copy, monkeypatch):
    monkeypatch.setenv("VISIONFLOW_TRACKING", "off")
    with tracking.start_run("classifier", "train_classifier") as run:
        run.log_metrics({"loss": 1.0})
        assert run.id is None
    assert not (exp_copy / "mlflow.db").exists()
