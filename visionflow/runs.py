"""The read side of tracking: list pipeline runs, compare two, move a registry alias (`visionflow runs|models`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from visionflow import tracking
from visionflow.summary import COMPARED

HOW_TO_FIND = "list them with `visionflow runs list` (or open `make ui`)"


def _client():
    import mlflow

    if not tracking.enabled():
        raise ValueError("VISIONFLOW_TRACKING is off: unset it to read the MLflow store")
    tracking.check_store()
    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    if experiment is None:
        raise ValueError(f"no pipeline runs in {tracking.tracking_uri()} yet: run `make run` or `dvc exp run` first")
    return client, experiment.experiment_id


def pipeline_runs(client, exp_id: str) -> list:
    """Every parent run, newest first."""
    return client.search_runs([exp_id], f"tags.`{tracking.PARENT_TAG}` = 'true'", order_by=["attributes.start_time DESC"])


def resolve(client, exp_id: str, ref: str):
    """A pipeline run by run id, DVC experiment name or run name (the newest of that name)."""
    for run in pipeline_runs(client, exp_id):
        if ref in (run.info.run_id, run.data.tags.get("visionflow.dvc_exp_name"), run.info.run_name):
            return run
    raise ValueError(f"{ref}: no pipeline run with that run id or DVC experiment name; {HOW_TO_FIND}")


def _children(client, exp_id: str, parent_id: str) -> list:
    return client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")


def _inputs(client, exp_id: str, parent_id: str) -> dict[str, str]:
    """`{dataset name: digest}` over the stages that ran in a pipeline run."""
    found = {}
    for child in _children(client, exp_id, parent_id):
        for item in child.inputs.dataset_inputs if child.inputs else []:
            found[item.dataset.name] = item.dataset.digest
    return found


def compare(ref_a: str, ref_b: str) -> str:
    """The params, input digests and headline metrics that differ between two pipeline runs, as a table."""
    client, exp_id = _client()
    a, b = resolve(client, exp_id, ref_a), resolve(client, exp_id, ref_b)
    lines = [f"{'':<36} {a.info.run_name:<24} {b.info.run_name:<24}",
             f"{'run id':<36} {a.info.run_id[:24]:<24} {b.info.run_id[:24]:<24}"]

    def section(title: str, left: dict[str, Any], right: dict[str, Any], only_diff: bool) -> None:
        rows = [(k, left.get(k, "-"), right.get(k, "-")) for k in sorted(set(left) | set(right))]
        rows = [r for r in rows if not only_diff or str(r[1]) != str(r[2])]
        lines.append(f"{title}:" + ("" if rows else " none differ"))
        for key, x, y in rows:
            x, y = (f"{v:.4f}" if isinstance(v, float) else str(v) for v in (x, y))
            lines.append(f"  {key:<34} {x[:24]:<24} {y[:24]:<24}{'' if x == y else '  *'}")

    section("params that differ", a.data.params, b.data.params, only_diff=True)
    section("data digests that differ", _inputs(client, exp_id, a.info.run_id), _inputs(client, exp_id, b.info.run_id),
            only_diff=True)
    section("headline metrics (* differ)", {k: v for k, v in a.data.metrics.items() if k in COMPARED},
            {k: v for k, v in b.data.metrics.items() if k in COMPARED}, only_diff=False)
    return "\n".join(lines)


def list_runs() -> str:
    """One line per pipeline run, newest first: run id, name, status and headline metrics."""
    client, exp_id = _client()
    lines = []
    for run in pipeline_runs(client, exp_id):
        metrics = ", ".join(f"{k}={run.data.metrics[k]:.4f}" for k in COMPARED if k in run.data.metrics)
        lines.append(f"{run.info.run_id}  {run.info.run_name:<24} {run.info.status:<9} {metrics}")
    return "\n".join(lines) or "no pipeline runs yet"


def promote(ref: str, alias: str) -> str:
    """Point `alias` at the registered model versions a pipeline run (or one of its stage runs) produced."""
    from mlflow.exceptions import MlflowException

    client, exp_id = _client()
    try:
        run = resolve(client, exp_id, ref)
        run_ids = [child.info.run_id for child in _children(client, exp_id, run.info.run_id)]
    except ValueError:
        try:
            run_ids = [client.get_run(ref).info.run_id]
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ValueError(f"{ref}: no pipeline run with that run id or DVC experiment name; {HOW_TO_FIND}") from None
    done = []
    for run_id in run_ids:
        for version in client.search_model_versions(f"run_id = '{run_id}'"):
            client.set_registered_model_alias(version.name, alias, version.version)
            done.append(f"{version.name}@{alias} -> version {version.version}")
    if not done:
        raise ValueError(f"{ref}: that run registered no model (training stages register them); {HOW_TO_FIND}")
    return "\n".join(done)


def _training_stages() -> dict[str, tuple[str, str]]:
    """`{task: (model file, cache folder)}` of the training stages, read from dvc.yaml."""
    import yaml

    stages = yaml.safe_load(open("dvc.yaml"))["stages"]
    found = {}
    for task in tracking.REGISTERED_MODELS:
        stage = stages[f"train_{task}"]
        model = next(o if isinstance(o, str) else next(iter(o)) for o in stage["outs"])
        found[task] = (model, next(d for d in stage["deps"] if d.startswith("data/cache")))
    return found


def relog() -> str:
    """Log the workspace's DVC outputs (params, metrics, inputs, models) as a pipeline run, after the store was
    lost during a stage; the runs left RUNNING then are closed as FAILED with a note."""
    import mlflow

    from visionflow import cache
    from visionflow.config import load_params
    from visionflow.inference import load_model
    from visionflow.models.serving import pixel_examples, raw_pixel_model

    tracking.check_store()
    client = tracking.connect().MlflowClient()
    exp_id = tracking.experiment_id(client, own_store=not os.environ.get("MLFLOW_TRACKING_URI"))
    parent = tracking.create_parent(client, exp_id, load_params(), {"visionflow.relogged": "true"}, prefix="relog ")
    closed = tracking.close_stale(client, exp_id, f"the tracking store stopped answering during this run; its DVC outputs "
                                          f"were re-logged as run {parent}")
    for task, (model_path, cache_dir) in _training_stages().items():
        if not Path(model_path).is_file():
            continue
        with mlflow.start_run(experiment_id=exp_id, run_name=f"train_{task}", parent_run_id=parent,
                              tags={"visionflow.relogged": "true"}):
            run = tracking.Run(mlflow)
            run.log_inputs({f"{Path(cache_dir).name} cache": Path(cache_dir)}, "training")
            run.tag_model_file(Path(model_path))
            run.log_keras_model(raw_pixel_model(load_model(Path(model_path))), task,
                                pixel_examples(cache.load_split(Path(cache_dir), "val")))
    metrics = tracking.headline_metrics()
    if metrics:
        client.log_batch(parent, metrics=[tracking.metric(k, v) for k, v in metrics.items()])
    client.set_terminated(parent, status="FINISHED")
    return f"re-logged the workspace as run {parent}" + (f"; closed {len(closed)} stale run(s) as FAILED" if closed else "")


def add_commands(verbs: argparse._SubParsersAction) -> None:
    """`visionflow runs {list,compare}` and `visionflow models promote` on the argparse tree."""
    runs = verbs.add_parser("runs", help="pipeline runs in MLflow").add_subparsers(dest="task", required=True)
    runs.add_parser("list", help="every pipeline run, newest first").set_defaults(
        func=lambda args: print(list_runs()))
    cmp = runs.add_parser("compare", help="params, data digests and metrics that differ between two runs")
    cmp.add_argument("runs", nargs=2, metavar="RUN", help="run id or DVC experiment name")
    cmp.set_defaults(func=lambda args: print(compare(*args.runs)))
    runs.add_parser("relog", help="log the workspace's DVC outputs as a run after the store was lost").set_defaults(
        func=lambda args: print(relog()))
    models = verbs.add_parser("models", help="the model registry").add_subparsers(dest="task", required=True)
    pro = models.add_parser("promote", help="point an alias at the models a run registered")
    pro.add_argument("run", metavar="RUN", help="run id or DVC experiment name")
    pro.add_argument("--alias", default="champion")
    pro.set_defaults(func=lambda args: print(promote(args.run, args.alias)))
