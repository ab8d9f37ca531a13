"""Where runs go: the store (a SQLite file at the repository root, or MLFLOW_TRACKING_URI), checked before a
stage does any work, and the project's experiment in it."""

from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT = "visionflow"
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",  # the runs table, not the GenAI overview
    "mlflow.note.content": "visionflow pipeline runs: one parent run per `dvc repro` / `dvc exp run`, its "
    "stages as child runs. Compare parents by their params, data digests and headline metrics.",
}
OFF_HINT = "set VISIONFLOW_TRACKING=off to run without tracking"
RELOG_HINT = "re-log it from the DVC outputs with `visionflow runs relog` once the store is back"


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


def is_store_lost(exc: BaseException) -> bool:
    """Whether `exc` says the tracking store stopped answering (not a bug in what was logged)."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, requests.RequestException | ConnectionError):
        return True
    return isinstance(exc, MlflowException) and (
        "API request to" in str(exc) or isinstance(exc.__cause__, requests.RequestException))


def runs_table_url(base: str) -> str:
    """The UI address of the project's runs table (the experiment, if it exists yet)."""
    if not enabled():
        return base
    client = connect().MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return f"{base}/#/experiments/{experiment.experiment_id}/runs" if experiment else base
