"""Benchmark 3: what MLflow tracking costs a training stage.

The same short classifier training (`visionflow.classifier_training.train_classifier`, the train_classifier stage's
function, on a flowers cache of synthetic images at params.yaml's sizes, a few epochs) runs inside
`visionflow.tracking.start_run` with the stage's Keras callback (`Run.keras_callback`: one log per epoch), once
with tracking on, logging to an MLflow file store in a temp folder, and once with VISIONFLOW_TRACKING=off (the
same code, every logging call a no-op). Pairs run in alternating order after an untimed tracked run (MLflow's
import and the store's creation are paid once per stage process, not per training). Three figures:
- `overhead`: median over pairs of (tracked / untracked wall-clock seconds - 1), in percent;
- `overhead_cpu`: the same with this process's CPU seconds, which other jobs on the machine disturb far less;
- `calls`: the seconds spent inside the tracking calls themselves (starting and ending the run, the callback)
  against the untracked training's seconds.
Model logging, which the training stages also do, is not in these figures.
"""

from __future__ import annotations

import contextlib
import os
import time

from bench.common import Context, figure, median

NAME = "tracking"
TITLE = "MLflow tracking overhead"
GOAL = ("<", 2.0)


@contextlib.contextmanager
def _environ(**values: str):
    """Set environment variables for the block; put the previous values back after it."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _training_params(ctx: Context):
    from visionflow.config import parse_params, to_dict

    raw = to_dict(ctx.params)
    # The photos only, no detection windows (classifier.windows): shorter epochs, so the per-epoch logging weighs
    # more than in the stage itself; the overhead measured is an upper bound.
    raw["classifier"].update(image_size=ctx.sizes.classifier_size, epochs=ctx.sizes.tracking_epochs,
                             fine_tune={**raw["classifier"]["fine_tune"], "epochs": 0},
                             windows={**raw["classifier"]["windows"], "canvases": 0})
    return parse_params(raw, source="bench/tracking_overhead.py")


def _timed_callback(callback, spent: list[float]):
    """`callback`, with the seconds each of its epoch-end logs takes added to `spent`."""
    log = callback.on_epoch_end

    def on_epoch_end(epoch, logs=None):
        start = time.perf_counter()
        log(epoch, logs)
        spent.append(time.perf_counter() - start)

    callback.on_epoch_end = on_epoch_end
    return callback


def _train(ctx: Context, params, tracked: bool) -> dict[str, float]:
    """Wall-clock and CPU seconds of one tracked or untracked training, and the seconds inside the tracking calls."""
    from visionflow import tracking
    from visionflow.classifier_training import train_classifier

    spent: list[float] = []
    with _environ(VISIONFLOW_TRACKING="on" if tracked else "off"):
        start, cpu = time.perf_counter(), time.process_time()
        with tracking.start_run("bench_training", params) as mlrun:
            entered = time.perf_counter()
            train_classifier(ctx.flowers_cache, params, callbacks=[_timed_callback(mlrun.keras_callback(), spent)])
            trained = time.perf_counter()
        end = time.perf_counter()
    return {"seconds": end - start, "cpu_seconds": time.process_time() - cpu,
            "tracking_seconds": (entered - start) + sum(spent) + (end - trained)}


def _overhead(runs: dict[bool, list[dict]], key: str) -> list[float]:
    return [100.0 * (t[key] / u[key] - 1.0) for t, u in zip(runs[True], runs[False])]


def run(ctx: Context) -> dict:
    params = _training_params(ctx)
    store, pairs = ctx.workdir / "mlruns", ctx.sizes.tracking_pairs
    ctx.flowers_cache  # noqa: B018 - made before the timing
    print(f"  classifier training ({params.classifier.backbone}, {params.classifier.image_size}px, "
          f"{params.classifier.epochs} epochs), {pairs} tracked/untracked pairs; MLflow file store in a temp folder",
          flush=True)
    runs: dict[bool, list[dict]] = {True: [], False: []}
    with _environ(MLFLOW_TRACKING_URI=store.as_uri(), MLFLOW_ALLOW_FILE_STORE="true"):
        _train(ctx, params, tracked=True)  # untimed: imports MLflow, creates the store and the experiment
        for pair in range(pairs):
            for tracked in ((False, True) if pair % 2 == 0 else (True, False)):
                runs[tracked].append(_train(ctx, params, tracked))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store.as_uri())
    logged = client.search_runs([e.experiment_id for e in client.search_experiments()])
    if len(logged) != pairs + 1 or any(len(r.data.metrics) == 0 for r in logged):
        raise RuntimeError(f"tracking benchmark: expected {pairs + 1} runs with metrics in the store, found "
                           f"{len(logged)}: the tracked trainings did not log")
    untracked = median([r["seconds"] for r in runs[False]])
    in_calls = median([r["tracking_seconds"] for r in runs[True]])
    return {
        "figures": {
            "overhead": figure(median(_overhead(runs, "seconds")), "%",
                               "tracked / untracked training, wall-clock seconds - 1 (median of pairs)", GOAL),
            "overhead_cpu": figure(median(_overhead(runs, "cpu_seconds")), "%",
                                   "tracked / untracked training, CPU seconds - 1 (median of pairs)", GOAL),
            "calls": figure(100.0 * in_calls / untracked, "%",
                            "seconds inside the tracking calls / untracked training seconds", GOAL),
        },
        "details": {"training": f"train_classifier, {params.classifier.backbone} at {params.classifier.image_size}px, "
                                f"{params.classifier.epochs} epochs", "pairs": pairs,
                    "tracked": runs[True], "untracked": runs[False], "untracked_seconds": untracked,
                    "tracking_seconds": in_calls},
    }
