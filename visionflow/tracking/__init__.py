"""MLflow in one place (with `visionflow.runs`, its read side): where runs go, how they are grouped and tagged.

One pipeline execution (a `dvc repro`, a `dvc exp run`, queued or `--temp`) is one parent run in the project's
experiment, named after the DVC experiment (or the commit for a plain repro), holding every param and the
headline metrics read from the metrics files after each stage, so stages DVC skipped still count. Every stage
that runs is a child run with its params, inputs (DVC path and md5 as MLflow datasets), metrics, figures and
models. The stages of one execution find their parent by the DVC process that started them.

Tracking is on by default (a SQLite store at the repository root) and off with VISIONFLOW_TRACKING=off.

Modules: store (where runs go), provenance (digests, git, processes), parents (pipeline runs), run (a stage's
run). The names below are re-exported from them; a test that patches one patches it in the module using it.
"""

from __future__ import annotations

from visionflow.tracking.parents import (EXECUTION_TAG, FAILURE_TAG, PARENT_TAG, PROCESS_TAG, close_stale,
                                         create_parent, headline_metrics, metric)
from visionflow.tracking.provenance import (dvc_digests, execution_alive, execution_key, file_sha256, git_dirty,
                                            process_key)
from visionflow.tracking.run import (CANDIDATE_ALIAS, INSERT_RACE_ATTEMPTS, MODEL_TAG, REGISTERED_MODELS, Run,
                                     start_run)
from visionflow.tracking.store import (EXPERIMENT, EXPERIMENT_TAGS, OFF_HINT, RELOG_HINT, check_store, connect, enabled,
                                       experiment_id, is_store_lost, repo_root, runs_table_url, tracking_uri)

__all__ = [
    "CANDIDATE_ALIAS", "EXECUTION_TAG", "EXPERIMENT", "EXPERIMENT_TAGS", "FAILURE_TAG", "INSERT_RACE_ATTEMPTS",
    "MODEL_TAG", "OFF_HINT", "PARENT_TAG", "PROCESS_TAG", "REGISTERED_MODELS", "RELOG_HINT", "Run", "check_store",
    "close_stale", "connect", "create_parent", "dvc_digests", "enabled", "execution_alive", "execution_key",
    "experiment_id", "file_sha256", "git_dirty", "headline_metrics", "is_store_lost", "metric", "process_key",
    "repo_root", "runs_table_url", "start_run", "tracking_uri",
]
