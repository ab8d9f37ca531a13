"""Cross-validated sweeps as queued DVC experiments: every grid point times every fold, then mean +- std.

    python -m visionflow.sweep configs/real.yaml -n NAME --folds 5 [--seeds 42,7] [-S key=a,b ...] [-S key=value ...]
        [STAGE ...]

`make sweep` calls this. A `-S` value with commas is a grid axis; the grid's product times `data.fold` =
0 .. folds-1 is queued with `dvc exp run --queue` (each experiment checked first, as `make run-real` checks one),
run by `dvc queue start`, and summarised from the experiments' commits as one row per grid point: the mean +- std
over the folds of the headline metrics (also written to reports/sweep-NAME.csv). Stage names (for example
evaluate_segmentation) limit every experiment to that stage and what it depends on, and the summary to the metrics
those stages produced. The experiments stay in `dvc exp show` and, as parent runs named after them, in the MLflow UI.

`--seeds` repeats the k-fold cross-validation: every grid point runs once per seed (params.yaml's `seed`, which
draws the folds and seeds the training), and each row pools all its seeds' folds. One partition's folds are not
the only draw, and settings chosen on the folds that score them are flattered by them.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from visionflow.config import ConfigError
from visionflow.files import write_text
from visionflow.experiment import command, split_set_params
from visionflow.summary import COMPARED, headline_values

_DVC = [sys.executable, "-m", "dvc"]


def grid(set_params: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """(fixed `key=value` flags, one `{key: value}` per grid point) from `-S` values; `a,b` makes an axis."""
    fixed, axes = [], {}
    for flag in set_params:
        key, _, value = flag.partition("=")
        if "," in value and not value.lstrip().startswith(("[", "{")):
            axes[key] = [v.strip() for v in value.split(",")]
        else:
            fixed.append(flag)
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    return fixed, points


def parse_seeds(text: str | None) -> list[int]:
    """`--seeds 42,7`: the seeds to repeat the folds with, each once; [] (no flag): params.yaml's seed alone."""
    if not text:
        return []
    try:
        seeds = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text}: expected comma-separated whole numbers, e.g. --seeds 42,7,1234") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {text}: each seed once, none negative (e.g. --seeds 42,7,1234)")
    return seeds


def queue(settings: Path, name: str, folds: int, args: list[str],
          seeds: list[int] | None = None) -> list[tuple[str, dict[str, str], int]]:
    """Check and queue every (grid point, seed, fold) experiment; returns (experiment name, point, fold) for each."""
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-validation needs at least 2 folds")
    set_params, rest = split_set_params(args)
    fixed, points = grid(set_params)
    if seeds and any(f.partition("=")[0] == "seed" for f in set_params):
        raise ConfigError("--seeds and -S seed=...: give the seeds once (--seeds repeats the folds with each)")
    queued = []
    for i, point in enumerate(points):
        for seed in seeds or [None]:  # None: params.yaml's seed, and the names without one
            for fold in range(folds):
                exp = f"{name}-{i}-f{fold}" if seed is None else f"{name}-{i}-s{seed}-f{fold}"
                repeat = [f"seed={seed}"] if seed is not None else []
                flags = [*fixed, *(f"{k}={v}" for k, v in point.items()), *repeat, f"data.folds={folds}",
                         f"data.fold={fold}"]
                argv = command(settings, ["--queue", "-n", exp, *rest, *(a for f in flags for a in ("-S", f))])
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                queued.append((exp, point, fold))
    repeats = f" x {len(seeds)} seeds" if seeds else ""
    print(f"queued {len(queued)} experiments: {len(points)} grid point(s){repeats} x {folds} folds", flush=True)
    return queued


def run_queue(names: set[str], poll_s: float = 10.0) -> list[str]:
    """`dvc queue start` (one worker: training uses every core) and wait; returns the names that failed."""
    subprocess.run([*_DVC, "queue", "start", "-j", "1"], check=True, stdout=subprocess.DEVNULL)
    done = -1
    while True:
        status = _queue_status()
        # A task no longer in the queue (removed with `dvc queue remove`, say) will never finish: count it failed.
        mine = {n: status.get(n, "Failed") for n in names}
        finished = [n for n, s in mine.items() if s in ("Success", "Failed")]
        if len(finished) != done:
            done = len(finished)
            print(f"sweep: {done}/{len(names)} experiments done", flush=True)
        if done == len(names):
            return sorted(n for n, s in mine.items() if s == "Failed")
        time.sleep(poll_s)


def _queue_status() -> dict[str, str]:
    """`{experiment name: state}` of the queue's tasks (Queued, Running, Success, Failed), as `dvc queue status`."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        return {task.get("name") or task["rev"][:7]: task["status"] for task in repo.experiments.celery_queue.status()}


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def _metrics_at(rev: str) -> dict[str, float]:
    """The headline metrics an experiment produced: its metrics/*.json at `rev`, leaving out every file that is the
    same as in its baseline commit (an experiment run with stage targets leaves the other stages' metrics as they
    were, and those are not its results)."""
    def read(name: str) -> str | None:
        path = f"metrics/{name}"
        if _git("rev-parse", f"{rev}:{path}") == _git("rev-parse", f"{rev}^:{path}"):
            return None
        return _git("show", f"{rev}:{path}")

    return headline_values(read=read)


def experiment_commits(baseline: str) -> dict[str, str]:
    """`{experiment name: commit}` of the experiments DVC keeps for the `baseline` commit: its git refs
    refs/exps/<sha[:2]>/<sha[2:]>/<name>, found whatever HEAD is now (`dvc exp show` lists HEAD's alone)."""
    prefix = f"refs/exps/{baseline[:2]}/{baseline[2:]}/"
    listed = _git("for-each-ref", "--format=%(refname) %(objectname)", prefix) or ""
    return {ref[len(prefix):]: sha for ref, sha in (line.split() for line in listed.splitlines())}


def summarise(queued: list[tuple[str, dict[str, str], int]], baseline: str, out_csv: Path):
    """One row per grid point: mean and std over the folds of every headline metric, from the experiments that
    succeeded on top of `baseline` (the commit they were queued on)."""
    import pandas as pd

    revs = experiment_commits(baseline)
    rows = [{**point, "fold": fold, **_metrics_at(revs[exp])} for exp, point, fold in queued if exp in revs]
    frame = pd.DataFrame(rows)
    keys = list(queued[0][1]) if queued else []
    metrics = [k for k in COMPARED if k in frame and frame[k].notna().any()]
    if not metrics:
        raise ValueError(f"no experiment of {len(queued)} changed a headline metrics file against {baseline[:7]}; "
                         "check `dvc queue logs NAME` and the TARGETS")
    table = (frame.groupby(keys) if keys else frame.assign(setting="all").groupby("setting"))[metrics].agg(
        ["mean", "std"])
    write_text(table.to_csv(), out_csv)
    return table


def markdown(table) -> str:
    """The summary as a Markdown table of `mean +- std` cells."""
    metrics = list(dict.fromkeys(m for m, _ in table.columns))
    lines = ["| " + " | ".join([", ".join(table.index.names), *metrics]) + " |", "|" + "---|" * (len(metrics) + 1)]
    for label, row in table.iterrows():
        cells = [f"{row[(m, 'mean')]:.3f} +- {row[(m, 'std')]:.3f}" for m in metrics]
        lines.append("| " + " | ".join([str(label), *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m visionflow.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("settings", type=Path, help="settings file applied to params.yaml (e.g. configs/real.yaml)")
    p.add_argument("-n", "--name", default="sweep", help="experiment name prefix (default: sweep)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", help="repeat the folds once per seed (comma-separated, e.g. 42,7,1234) and pool them")
    args, rest = p.parse_known_args(argv)
    baseline = (_git("rev-parse", "HEAD") or "").strip()
    try:
        seeds = parse_seeds(args.seeds)
        queued = queue(args.settings, args.name, args.folds, rest, seeds)
    except (ValueError, subprocess.CalledProcessError) as exc:
        sys.exit(f"error: {exc}")
    failed = run_queue({exp for exp, _, _ in queued})
    if failed:
        print(f"sweep: {len(failed)} experiment(s) failed: {', '.join(failed)} (dvc queue logs NAME shows why)",
              file=sys.stderr)
    succeeded = [item for item in queued if item[0] not in failed]
    if not succeeded:
        sys.exit("error: every experiment of the sweep failed; nothing to summarise")
    out = Path("reports") / f"sweep-{args.name}.csv"
    try:
        table = summarise(succeeded, baseline, out)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    print(markdown(table))
    ran = f"{args.folds} folds" + (f" x {len(seeds)} seeds ({args.seeds})" if seeds else "")
    if failed:  # the table pools only the experiments that ran
        ran = f"the {len(succeeded)} of {len(queued)} experiments ({ran}) that succeeded"
    print(f"(mean +- std over {ran}; written to {out})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
