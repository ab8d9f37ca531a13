"""Pipeline (parent) runs: one per DVC execution, found by its DVC process, holding every param, the lineage
tags and the headline metrics; runs whose process is gone are closed as FAILED."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from visionflow.config import Params, flatten, to_dict
from visionflow.tracking.provenance import _git, execution_alive, execution_key, git_dirty

EXECUTION_TAG = "visionflow.execution"
PARENT_TAG = "visionflow.pipeline_run"
PROCESS_TAG = "visionflow.process"  # a stage run's own process (host:pid:start), to close it if killed
FAILURE_TAG = "visionflow.failure"  # why a run was closed as FAILED by a later one


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


def metric(key: str, value: float):
    """An MLflow Metric entity stamped now, for `log_batch`."""
    import time

    from mlflow.entities import Metric

    return Metric(key, value, int(time.time() * 1000), 0)
