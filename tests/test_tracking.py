"""MLflow: one parent run per pipeline execution, stages as children, in the user's repository's store."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from visionflow import tracking
from visionflow.config import load_params, shipped_params
from visionflow.tracking import parents


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


def _client():
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())
    return client, client.get_experiment_by_name(tracking.EXPERIMENT)


def test_repo_root_and_store_resolve_out_of_the_experiment_copy(exp_copy):
    assert tracking.repo_root() == exp_copy.resolve()
    assert tracking.tracking_uri() == f"sqlite:///{exp_copy.resolve() / 'mlflow.db'}"
    assert tracking.repo_root(Path("/somewhere/else")) == Path("/somewhere/else")


def test_stages_of_one_execution_share_a_parent_with_all_params_and_headlines(exp_copy, monkeypatch, tmp_path):
    monkeypatch.setattr(parents, "execution_key", lambda: "host:1:2.0:lucky-lamb:/x")
    params = load_params(REPO / "params.yaml")
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"\x89PNG")
    with tracking.start_run("train_segmentation", params) as run:
        run.log_params({"segmentation": {"epochs": 3, "encoder": {"weights": None}}})
        run.log_metrics({"loss": 0.5, "iou": {"pet": 0.7}, "name": "not a number"}, step=0)
        run.log_artifact(figure, "plots")
    (Path("metrics")).mkdir()
    Path("metrics/segmentation.json").write_text(json.dumps(
        {"mean_iou": 0.5, "pixel_accuracy": 0.8, "iou": {"pet": 0.6, "background": 0.7, "border": 0.2}}))
    with tracking.start_run("evaluate_segmentation", params):
        pass
    client, experiment = _client()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location == (exp_copy.resolve() / "mlruns" / "visionflow").as_uri()
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"lucky-lamb", "train_segmentation", "evaluate_segmentation"}
    parent = runs["lucky-lamb"]
    assert parent.info.status == "FINISHED" and parent.data.tags[tracking.PARENT_TAG] == "true"
    assert parent.data.params["segmentation.epochs"] == str(params.segmentation.epochs)
    assert parent.data.params["detection.strategy"] == params.detection.strategy
    assert parent.data.metrics == {"segmentation.mean_iou": 0.5, "segmentation.pixel_accuracy": 0.8,
                                   "segmentation.iou.border": 0.2}
    for name in ("train_segmentation", "evaluate_segmentation"):
        assert runs[name].data.tags["mlflow.parentRunId"] == parent.info.run_id
    child = runs["train_segmentation"]
    assert child.data.params == {"segmentation.epochs": "3", "segmentation.encoder.weights": "null"}
    assert child.data.metrics == {"loss": 0.5, "iou.pet": 0.7}
    assert (exp_copy / "mlflow.db").is_file() and not (Path.cwd() / "mlruns").exists()
    assert [a.path for a in client.list_artifacts(child.info.run_id, "plots")] == ["plots/figure.png"]


def test_a_failing_stage_marks_the_parent_failed(exp_copy, monkeypatch):
    monkeypatch.setattr(parents, "execution_key", lambda: "host:1:2.0:lucky-lamb:/y")
    with pytest.raises(RuntimeError), tracking.start_run("train_classifier", None):
        raise RuntimeError("killed")
    client, experiment = _client()
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert statuses == {"lucky-lamb": "FAILED", "train_classifier": "FAILED"}


def test_inputs_carry_the_dvc_md5(exp_copy, monkeypatch):
    Path("dvc.lock").write_text("schema: '2.0'\nstages:\n  build_cache_pets:\n    outs:\n"
                                "    - path: data/cache/pets\n      md5: 0123456789abcdef0123456789abcdef.dir\n")
    with tracking.start_run("train_segmentation", None) as run:
        run.log_inputs({"pets cache": Path("data/cache/pets")}, "training")
    client, experiment = _client()
    (logged,) = client.search_runs([experiment.experiment_id])
    (item,) = logged.inputs.dataset_inputs
    assert (item.dataset.name, item.dataset.digest) == ("pets cache", "0123456789abcdef0123456789abcdef.dir")
    assert json.loads(item.dataset.source) == {"uri": "data/cache/pets"} and item.tags[0].value == "training"


def test_imagenet_weight_files_are_logged_with_their_sha256(exp_copy, monkeypatch, tmp_path):
    from visionflow.keras_cache import mobilenet_v2_file, weight_files

    params = shipped_params(yaml.safe_load((REPO / "configs" / "real.yaml").read_text()))  # ImageNet encoders
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    name = mobilenet_v2_file(params.segmentation.image_size, params.segmentation.encoder.alpha)
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / name).write_bytes(b"weights")
    files = weight_files(params, "segmentation")
    assert files == {"segmentation.encoder.weights": tmp_path / "keras" / "models" / name}
    with tracking.start_run("train_segmentation", None) as run:
        run.log_inputs(files, "weights")
    client, experiment = _client()
    (item,) = client.search_runs([experiment.experiment_id])[0].inputs.dataset_inputs
    assert item.dataset.digest == tracking.file_sha256(files["segmentation.encoder.weights"])[:36]
    assert item.tags[0].value == "weights"


def test_dirty_flag_ignores_what_the_pipeline_writes(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.chdir(tmp_path)
    Path("dvc.yaml").write_text("stages:\n  s:\n    cmd: x\n    outs: [models/m.keras]\n"
                                "    metrics: [{metrics/m.json: {cache: false}}]\n")
    for name in ("dvc.lock", "params.yaml", "metrics/m.json", "code.py"):
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_text("a")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t",
                                                              "commit", "-qm", "c"]):
        subprocess.run(cmd, check=True)
    for name in ("dvc.lock", "params.yaml", "metrics/m.json"):
        Path(name).write_text("b")
    assert not tracking.git_dirty()
    Path("code.py").write_text("b")
    assert tracking.git_dirty()


def _create(uri: str) -> str:
    import os

    os.environ["MLFLOW_TRACKING_URI"] = uri
    import mlflow

    return tracking.experiment_id(mlflow.MlflowClient(uri))


def test_two_processes_create_one_experiment(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # the store's schema exists, as after a first stage
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        ids = pool.map(_create, [uri, uri])
    assert ids[0] == ids[1]
    names = [e.name for e in mlflow.MlflowClient(uri).search_experiments()]
    assert names.count("visionflow") == 1


def test_an_unreachable_server_is_reported_in_seconds(monkeypatch):
    monkeypatch.setenv("VISIONFLOW_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI=http://127.0.0.1:9.*VISIONFLOW_TRACKING=off"):
        tracking.check_store(timeout_s=2)
    assert time.monotonic() - start < 10


def test_a_store_that_is_not_a_database_is_reported_before_any_work(exp_copy):
    (exp_copy / "mlflow.db").write_text("not sqlite")
    with pytest.raises(ValueError, match=r"mlflow.db cannot take a write \(file is not a database\).*"
                                         "VISIONFLOW_TRACKING=off"):
        tracking.check_store()


def test_tracking_off_logs_nothing(exp_copy, monkeypatch):
    monkeypatch.setenv("VISIONFLOW_TRACKING", "off")
    with tracking.start_run("train_classifier", None) as run:
        run.log_metrics({"loss": 1.0})
        assert run.id is None
    assert not (exp_copy / "mlflow.db").exists()


def test_runs_of_killed_processes_are_closed_as_failed_by_the_next_stage(exp_copy, monkeypatch):
    import socket

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())
    exp_id = tracking.experiment_id(client, own_store=True)
    dead = f"{socket.gethostname()}:999999:1.000"  # no such process
    other_host = "elsewhere:1:1.000"
    killed_stage = client.create_run(exp_id, run_name="train_segmentation", tags={tracking.PROCESS_TAG: dead})
    killed_parent = client.create_run(exp_id, run_name="p", tags={tracking.PARENT_TAG: "true",
                                                                   tracking.EXECUTION_TAG: f"{dead}:exp:/x"})
    its_stage = client.create_run(exp_id, run_name="build_cache_pets",
                                  tags={"mlflow.parentRunId": killed_parent.info.run_id})
    remote = client.create_run(exp_id, run_name="train_classifier", tags={tracking.PROCESS_TAG: other_host})
    alive = client.create_run(exp_id, run_name="evaluate", tags={tracking.PROCESS_TAG: tracking.process_key()})
    with tracking.start_run("train_classifier", None):
        pass
    status = {r.info.run_id: r for r in client.search_runs([exp_id])}
    for run in (killed_stage, killed_parent, its_stage):
        closed = status[run.info.run_id]
        assert closed.info.status == "FAILED" and "killed" in closed.data.tags[tracking.FAILURE_TAG]
    for run in (remote, alive):  # another host's run, or a live process: left alone
        assert status[run.info.run_id].info.status == "RUNNING"


def test_a_row_lost_to_a_concurrent_run_is_written_again_and_other_errors_are_raised():
    from mlflow.exceptions import MlflowException

    from visionflow.tracking.run import INSERT_RACE_ATTEMPTS, _retry_insert_race

    race = MlflowException('(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
                           '"dataset_pk" ... INSERT INTO datasets')
    calls = []

    def lose_once():
        calls.append(1)
        if len(calls) == 1:
            raise race

    _retry_insert_race(lose_once, "dataset", wait_s=0)
    assert len(calls) == 2

    def always(exc):
        def log():
            calls.append(1)
            raise exc
        return log

    calls.clear()
    with pytest.raises(MlflowException, match="UniqueViolation"):
        _retry_insert_race(always(race), "dataset", wait_s=0)
    assert len(calls) == INSERT_RACE_ATTEMPTS
    calls.clear()
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        _retry_insert_race(always(MlflowException("RESOURCE_DOES_NOT_EXIST: run gone")), "dataset", wait_s=0)
    assert len(calls) == 1
    calls.clear()  # a unique-key error on another table is not this race
    with pytest.raises(MlflowException, match="dataset_pk"):
        _retry_insert_race(always(race), "registered_model_alias", wait_s=0)
    assert len(calls) == 1
