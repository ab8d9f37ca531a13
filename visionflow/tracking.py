"""MLflow in one place (with `visionflow.runs`, its read side): where runs go, how they are grouped and tagged.

One pipeline execution (a `dvc repro`, a `dvc exp run`, queued or `--temp`) is one parent run in the project's
experiment, named after the DVC experiment (or the commit for a plain repro), holding every param and the
headline metrics read from the metrics files after each stage, so stages DVC skipped still count. Every stage
that runs is a child run with its params, inputs (DVC path and md5 as MLflow datasets), metrics, figures and
models. The stages of one execution find their parent by the DVC process that started them.

Tracking is on by default (a SQLite store at the repository root) and off with VISIONFLOW_TRACKING=off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from visionflow.config import Params, flatten, to_dict

EXPERIMENT = "visionflow"
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",  # the runs table, not the GenAI overview
    "mlflow.note.content": "visionflow pipeline runs: one parent run per `dvc repro` / `dvc exp run`, its "
    "stages as child runs. Compare parents by their params, data digests and headline metrics.",
}
MODEL_TAG = "visionflow.model_sha256"
EXECUTION_TAG = "visionflow.execution"
PARENT_TAG = "visionflow.pipeline_run"
PROCESS_TAG = "visionflow.process"  # a stage run's own process (host:pid:start), to close it if killed
FAILURE_TAG = "visionflow.failure"  # why a run was closed as FAILED by a later one
CANDIDATE_ALIAS = "candidate"
REGISTERED_MODELS = {"segmentation": "visionflow-segmentation", "classifier": "visionflow-classifier"}
OFF_HINT = "set VISIONFLOW_TRACKING=off to run without tracking"


def enabled() -> bool:
    """Whether runs are logged (VISIONFLOW_TRACKING=off disables)."""
    return os.environ.get("VISIONFLOW_TRACKING", "on").lower() not in {"off", "0", "false", "no"}


def repo_root(start: Path | None = None) -> Path:
    """The user's repository, also from inside a DVC experiment's temporary copy (.dvc/tmp/exps/...)."""
    path = Path(start or os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:///<repo root>/mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def check_store(timeout_s: float = 5.0) -> None:
    """Raise ValueError within seconds when the store cannot take runs (before a stage does any work)."""
    if not enabled():
        return
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
        except requests.RequestException as exc:
            raise ValueError(f"MLFLOW_TRACKING_URI={uri}: the tracking server does not answer ({exc}); start it, "
                             f"point MLFLOW_TRACKING_URI at a running one, or {OFF_HINT}") from None
    elif uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        problem = _sqlite_problem(db, timeout_s)
        if problem:
            raise ValueError(f"MLflow store {db} {problem}: fix or move it, set MLFLOW_TRACKING_URI to "
                             f"another store, or {OFF_HINT}")


def _sqlite_problem(db: Path, timeout_s: float) -> str | None:
    """Why an SQLite store cannot take a write (read-only, locked, not a database), or None."""
    import sqlite3

    if not os.access(db if db.exists() else db.parent, os.W_OK):
        return "is not writable"
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=timeout_s)
        try:
            con.execute("PRAGMA schema_version")
            con.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only or locked database
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"cannot take a write ({exc})"
    return None


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


def connect():
    """mlflow, pointed at this project's store."""
    # A server that went away should cost seconds, not MLflow's default minutes of retries per call.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def experiment_id(client, own_store: bool = False) -> str:
    """The project's experiment (created once, also when two stages race to create it)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        # In our own store pin artifacts under the repository root: a new experiment's default is ./mlruns under
        # the current folder, which for a `dvc exp run --temp` is a copy DVC deletes.
        location = (repo_root() / "mlruns" / EXPERIMENT).as_uri() if own_store else None
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=location, tags=EXPERIMENT_TAGS)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(EXPERIMENT)
    return experiment.experiment_id


def _parent_run(client, exp_id: str, params: Params | None) -> str | None:
    """The execution's parent run: found by its key, or created with every param and the lineage tags."""
    key = execution_key()
    if key is None:  # a stage run by hand, outside DVC
        return None
    found = client.search_runs([exp_id], f"tags.`{EXECUTION_TAG}` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    return create_parent(client, exp_id, params, {EXECUTION_TAG: key})


def create_parent(client, exp_id: str, params: Params | None, tags: Mapping[str, str], prefix: str = "") -> str:
    """A new pipeline (parent) run with every param and the lineage tags; returns its id."""
    commit = _git("rev-parse", "HEAD").strip() or "unknown"
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    run = client.create_run(exp_id, run_name=prefix + (exp_name or f"repro {commit[:7]}"), tags={
        PARENT_TAG: "true",
        "visionflow.git_commit": commit,
        "visionflow.git_dirty": str(git_dirty()),
        "visionflow.dvc_exp_name": exp_name,
        "visionflow.dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", commit),
        **tags,
    })
    if params is not None:
        _log_params(client, run.info.run_id, to_dict(params))
    return run.info.run_id


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


def close_stale(client, exp_id: str, note: str) -> list[str]:
    """Mark FAILED the RUNNING runs of this host whose process is gone (a killed stage or DVC): pipeline runs
    by their DVC process, stage runs by their own process or their closed pipeline run. Returns their ids."""
    running = client.search_runs([exp_id], "attributes.status = 'RUNNING'")
    parents = {r.info.run_id for r in running
               if r.data.tags.get(EXECUTION_TAG) and not execution_alive(r.data.tags[EXECUTION_TAG])}
    closed = []
    for run in running:
        tags, run_id = run.data.tags, run.info.run_id
        own = tags.get(PROCESS_TAG)
        if run_id in parents or tags.get("mlflow.parentRunId") in parents or (own and not execution_alive(own)):
            client.set_tag(run_id, FAILURE_TAG, note)
            client.set_terminated(run_id, status="FAILED")
            closed.append(run_id)
    return closed


def _log_params(client, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    flat = [Param(k, "null" if v is None else str(v)) for k, v in flatten(params).items()]
    for i in range(0, len(flat), 100):
        client.log_batch(run_id, params=flat[i : i + 100])


def headline_metrics(metrics_dir: Path = Path("metrics")) -> dict[str, float]:
    """The numbers a pipeline run is compared by, from whichever metrics files exist now."""
    from visionflow.summary import headline_values

    return headline_values(metrics_dir)


class _KerasFlavor:
    """mlflow.keras, with the model folder made first: its save_model (3.17) writes the input example into a
    folder it only creates afterwards, so `mlflow.keras.log_model(..., input_example=...)` fails."""

    @staticmethod
    def save_model(path, **kwargs):
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)


RELOG_HINT = "re-log it from the DVC outputs with `visionflow runs relog` once the store is back"


def is_store_lost(exc: BaseException) -> bool:
    """Whether `exc` says the tracking store stopped answering (not a bug in what was logged)."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, requests.RequestException | ConnectionError):
        return True
    return isinstance(exc, MlflowException) and (
        "API request to" in str(exc) or isinstance(exc.__cause__, requests.RequestException))


def _guarded(method):
    """Run a logging method; when the store is lost, warn once and go on without tracking."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not self._mlflow:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only a lost store is absorbed; anything else is re-raised
            if not is_store_lost(exc):
                raise
            self.lose(exc)
            return None

    return wrapper


class Run:
    """A handle on the active stage run; every method is a no-op when tracking is off or the store was lost.

    A store that stops answering mid-stage costs a warning, not the stage: DVC still gets its outputs.
    """

    def __init__(self, mlflow=None):
        self._mlflow = mlflow
        self.lost = False

    def lose(self, exc: BaseException) -> None:
        """Stop tracking for the rest of the stage after the store stopped answering."""
        if not self.lost:
            print(f"warning: MLflow store {tracking_uri()} stopped answering ({str(exc).splitlines()[0][:200]}); "
                  f"the stage goes on without tracking: {RELOG_HINT}", file=sys.stderr, flush=True)
        self.lost, self._mlflow = True, None

    @property
    def id(self) -> str | None:
        return self._mlflow.active_run().info.run_id if self._mlflow else None

    @_guarded
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a (nested) mapping of params as dotted keys."""
        if self._mlflow:
            self._mlflow.log_params({k: ("null" if v is None else v) for k, v in flatten(params).items()})

    @_guarded
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numeric leaves of a (nested) mapping as dotted keys."""
        if self._mlflow:
            flat = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self._mlflow.log_metrics(flat, step=step)

    @_guarded
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Attach a file (figure, metrics JSON) to the run."""
        if self._mlflow:
            self._mlflow.log_artifact(str(path), artifact_path)

    @_guarded
    def log_inputs(self, inputs: Mapping[str, Path], context: str) -> None:
        """Record inputs as MLflow datasets: name, source = the path, digest = DVC's md5 for DVC-tracked paths,
        else the file's sha256 (files DVC does not track, such as ImageNet weights under KERAS_HOME)."""
        if not self._mlflow:
            return
        import warnings

        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        digests = dvc_digests()
        for name, path in inputs.items():
            with warnings.catch_warnings():  # "can be interpreted in multiple ways": twice the same local source
                warnings.simplefilter("ignore", UserWarning)
                source = resolve_dataset_source(Path(path).as_posix())
            digest = digests.get(Path(path).as_posix().rstrip("/"))
            if digest is None and Path(path).is_file():
                digest = file_sha256(Path(path))
            dataset = MetaDataset(source, name=name, digest=digest[:36] if digest else None)
            _retry_dataset_race(lambda: self._mlflow.log_input(dataset, context))

    @_guarded
    def log_keras_model(self, model, task: str, example) -> None:
        """Log `model` (raw pixels in) as an mlflow.keras model, register it and point `candidate` at it."""
        if not self._mlflow:
            return
        import keras
        import tensorflow as tf
        from mlflow.models import infer_signature

        name = REGISTERED_MODELS[task]
        info = self._mlflow.models.Model.log(
            artifact_path=None, name="model", flavor=_KerasFlavor, flavor_name="mlflow.keras", model=model,
            signature=infer_signature(example, model.predict(example, verbose=0)), input_example=example,
            registered_model_name=name,
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        )
        client = self._mlflow.MlflowClient()
        client.set_registered_model_alias(name, CANDIDATE_ALIAS, info.registered_model_version)

    @_guarded
    def tag_model_file(self, path: Path) -> None:
        """Tag the run with the saved .keras file's hash, so the run that made a model file can be found."""
        if self._mlflow:
            self._mlflow.set_tag(MODEL_TAG, file_sha256(path))

    def keras_callback(self):
        """A Keras callback that logs every epoch's metrics to this run."""
        import keras

        run = self

        class _EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                run.log_metrics(logs or {}, step=epoch)

        return _EpochLogger()


@contextlib.contextmanager
def start_run(stage: str, params: Params | None = None, log: bool = True) -> Iterator[Run]:
    """A child run of this execution's parent run; on exit the parent gets the current headline metrics.
    `log=False` (a training worker that is not the chief) gives a run that logs nothing."""
    if not (log and enabled()):
        yield Run(None)
        return
    own_store = not os.environ.get("MLFLOW_TRACKING_URI")  # read before mlflow.set_tracking_uri exports it
    mlflow = connect()
    client = mlflow.MlflowClient()
    exp_id = experiment_id(client, own_store)
    close_stale(client, exp_id, "its process ended without closing the run (killed?); closed by a later stage")
    parent = _parent_run(client, exp_id, params)
    if parent:
        client.update_run(parent, status="RUNNING")
    run = Run(mlflow)
    mlflow.start_run(experiment_id=exp_id, run_name=stage, parent_run_id=parent, tags={
        "visionflow.stage": stage,
        PROCESS_TAG: process_key(),
        "visionflow.dvc_stage": os.environ.get("DVC_STAGE", stage),
        "visionflow.dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
    })
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        _finish(mlflow, client, run, parent, status)


def _finish(mlflow, client, run: Run, parent: str | None, status: str) -> None:
    """End the stage run and refresh the parent; a store that is gone by now only costs the warning."""
    try:
        if not run.lost:
            mlflow.end_run(status)
            if parent:
                metrics = headline_metrics()
                if metrics:
                    client.log_batch(parent, metrics=[metric(k, v) for k, v in metrics.items()])
                client.set_terminated(parent, status=status)
    except Exception as exc:  # noqa: BLE001 - only a lost store is absorbed
        if not is_store_lost(exc):
            raise
        run.lose(exc)
    if run.lost and mlflow.active_run():
        try:  # drop the local active run (MLflow pops it before it calls the store), so exit does not retry
            mlflow.end_run("FAILED")
        except Exception as exc:  # noqa: BLE001 - only a lost store is absorbed
            if not is_store_lost(exc):
                raise


def metric(key: str, value: float):
    """An MLflow Metric entity stamped now, for `log_batch`."""
    import time

    from mlflow.entities import Metric

    return Metric(key, value, int(time.time() * 1000), 0)


def runs_table_url(base: str) -> str:
    """The UI address of the project's runs table (the experiment, if it exists yet)."""
    if not enabled():
        return base
    client = connect().MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return f"{base}/#/experiments/{experiment.experiment_id}/runs" if experiment else base


DATASET_RACE_ATTEMPTS = 3


def _retry_dataset_race(log, attempts: int = DATASET_RACE_ATTEMPTS, wait_s: float = 0.5) -> None:
    """Call `log` (an MLflow log_input), again when a tracking server lost a race to create the same dataset.

    Two runs that log one dataset (same experiment, name and digest) at the same moment, such as two queued
    experiments starting `dvc exp run` stages together, can both miss it and both insert it; the database's
    unique key refuses the second insert and the server answers BAD_REQUEST. By then the dataset exists, so a
    second call links it. Any other error, or the same one `attempts` times, is raised.
    """
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            return log()
        except MlflowException as exc:
            text = str(exc)
            lost_race = "dataset" in text and ("UniqueViolation" in text or "UNIQUE constraint failed" in text)
            if not lost_race or attempt == attempts:
                raise
            time.sleep(wait_s * attempt)
