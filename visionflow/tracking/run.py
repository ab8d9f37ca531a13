"""A stage's child run: `start_run` and the `Run` handle it yields, which logs params, metrics, inputs, figures
and models, and lets the stage go on when the store stops answering."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

from visionflow.config import Params, flatten
from visionflow.tracking.parents import PROCESS_TAG, _parent_run, close_stale, headline_metrics, metric
from visionflow.tracking.provenance import dvc_digests, file_sha256, process_key
from visionflow.tracking.store import RELOG_HINT, connect, enabled, experiment_id, is_store_lost, tracking_uri

MODEL_TAG = "visionflow.model_sha256"
CANDIDATE_ALIAS = "candidate"
REGISTERED_MODELS = {"segmentation": "visionflow-segmentation", "classifier": "visionflow-classifier"}


class _KerasFlavor:
    """mlflow.keras, with the model folder made first: its save_model (3.17) writes the input example into a
    folder it only creates afterwards, so `mlflow.keras.log_model(..., input_example=...)` fails."""

    @staticmethod
    def save_model(path, **kwargs):
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)


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
            _retry_insert_race(lambda: self._mlflow.log_input(dataset, context), "dataset")

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
        # The first `candidate` of a model is an insert: two experiments registering at once can race for it.
        _retry_insert_race(lambda: client.set_registered_model_alias(name, CANDIDATE_ALIAS,
                                                                     info.registered_model_version),
                           "registered_model_alias")

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


INSERT_RACE_ATTEMPTS = 3


def _retry_insert_race(call, table: str, attempts: int = INSERT_RACE_ATTEMPTS, wait_s: float = 0.5) -> None:
    """Call `call` (an MLflow write that creates a row of `table` when it is missing), again when the tracking
    server lost a race to create that row for a concurrent run.

    MLflow's SQL store looks such a row up and inserts it when it finds none. Two queued experiments whose stages
    reach the same write at the same moment can both miss it and both insert it; the database's unique key refuses
    the second insert and the server answers BAD_REQUEST. By then the row exists, so a second call finds it: a
    dataset is linked, an alias is moved. Any other error, or the same one `attempts` times, is raised.
    """
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MlflowException as exc:
            text = str(exc)
            lost_race = table in text and ("UniqueViolation" in text or "UNIQUE constraint failed" in text)
            if not lost_race or attempt == attempts:
                raise
            time.sleep(wait_s * attempt)
