"""MLflow in one place: where runs go, how they are named and tagged, what they log.

Nothing else in visionflow imports mlflow. Tracking is on by default (a SQLite store at the repository
root) and can be turned off with VISIONFLOW_TRACKING=off (the test suite does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator, Mapping

from visionflow.config import flatten

EXPERIMENTS = {
    "data": "visionflow-data",
    "segmentation": "visionflow-segmentation",
    "classifier": "visionflow-classifier",
    "detection": "visionflow-detection",
}
MODEL_TAG = "visionflow.model_sha256"


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


def file_sha256(path: Path) -> str:
    """Content hash of a file (identifies a saved model across stages)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def _git_dirty() -> bool:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.stdout.strip())


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


class Run:
    """A handle on the active run; every method is a no-op when tracking is off."""

    def __init__(self, mlflow=None):
        self._mlflow = mlflow

    @property
    def id(self) -> str | None:
        return self._mlflow.active_run().info.run_id if self._mlflow else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a (nested) mapping of params as dotted keys."""
        if self._mlflow:
            flat = {k: ("null" if v is None else v) for k, v in flatten(params).items()}
            self._mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numeric leaves of a (nested) mapping as dotted keys."""
        if self._mlflow:
            flat = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self._mlflow.log_metrics(flat, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Attach a file (figure, metrics JSON, model) to the run."""
        if self._mlflow:
            self._mlflow.log_artifact(str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self._mlflow:
            self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_model_file(self, path: Path) -> None:
        """Attach a saved .keras model and tag the run with its hash, so evaluation can find the run."""
        if self._mlflow:
            self._mlflow.log_artifact(str(path), "model")
            self._mlflow.set_tag(MODEL_TAG, file_sha256(path))

    def keras_callback(self):
        """A Keras callback that logs every epoch's metrics to this run."""
        import keras

        run = self

        class _EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                run.log_metrics(logs or {}, step=epoch)

        return _EpochLogger()


def _find_run_for_model(mlflow, experiment_id: str, model_path: Path) -> str | None:
    if not Path(model_path).is_file():
        return None
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{MODEL_TAG}` = '{file_sha256(model_path)}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def _experiment(mlflow, name: str, own_store: bool):
    # A new experiment's artifacts default to ./mlruns under the *current* folder, which for a
    # `dvc exp run --temp` is a copy DVC deletes: in our own store, pin them under the repository root.
    if own_store and mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=(repo_root() / "mlruns" / name).as_uri())
    return mlflow.set_experiment(name)


@contextlib.contextmanager
def start_run(task: str, stage: str, *, model: Path | None = None) -> Iterator[Run]:
    """A run in the task's experiment, tagged with git commit, DVC experiment and stage.

    With `model`, the run that trained that exact model file (same sha256) is resumed, so evaluation
    metrics and figures land beside the training params and curves.
    """
    if not enabled():
        yield Run(None)
        return
    own_store = not os.environ.get("MLFLOW_TRACKING_URI")  # read before mlflow.set_tracking_uri exports it
    mlflow = _mlflow()
    experiment = _experiment(mlflow, EXPERIMENTS[task], own_store)
    run_id = _find_run_for_model(mlflow, experiment.experiment_id, model) if model else None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"{stage}"):
        run = Run(mlflow)
        run.set_tags({
            f"visionflow.stage.{stage}": "done",
            "visionflow.git_commit": _git_commit(),
            "visionflow.git_dirty": _git_dirty(),
            "visionflow.dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
            "visionflow.dvc_stage": os.environ.get("DVC_STAGE", stage),
        })
        yield run


def ui_command() -> str:
    """The command that opens the MLflow UI on this store."""
    return f"mlflow ui --backend-store-uri {tracking_uri()}"
