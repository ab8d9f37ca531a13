"""The benchmark suite (`make bench`): every figure against a baseline run in this process on the same data.

    python -m bench [--quick] [--only NAME[,NAME...]] [--out bench/results.json] [--readme README.md]
                    [--pets-dir DIR] [--params params.yaml]

Writes the figures, the machine and whether each goal is met to bench/results.json (the benchmarks not run keep
their previous entries) and regenerates the README's table between its `<!-- bench:start -->` and
`<!-- bench:end -->` lines; both are written through a temp file and a rename, so an interrupted run leaves
them as they were. The training benchmarks run last: like the training stages they turn on TF op determinism,
which stays on for the rest of the process.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.common import BENCHMARKS, REPO, Context

MODULES = dict(zip(BENCHMARKS, ("bench.cache_build", "bench.detection", "bench.unet", "bench.tracking_overhead",
                                "bench.dvc_repro")))


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny sizes (seconds per benchmark; "
                        "its figures say little)")
    parser.add_argument("--only", default=",".join(MODULES), help=f"comma-separated, from: {', '.join(MODULES)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--pets-dir", type=Path, default=None,
                        help="an Oxford-IIIT Pet release folder to benchmark on (default: synthetic pets)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> tuple[list[str], object]:
    """The benchmarks to run and the params; ValueError naming the option for bad input, before any work."""
    from bench import report
    from visionflow.config import load_params

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODULES]
    if unknown or not names:
        raise ValueError(f"--only: unknown benchmark {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(MODULES)}")
    if args.pets_dir is not None and not args.pets_dir.is_dir():
        raise ValueError(f"--pets-dir {args.pets_dir}: not a folder (give an Oxford-IIIT Pet release folder)")
    report.check_readme(args.readme)
    report.load(args.out)  # the benchmarks not run keep their entries: read them now, not after minutes of work
    return [n for n in MODULES if n in names], load_params(args.params)


def _keras_home(workdir: Path) -> str | None:
    """A writable temp KERAS_HOME for this run (Keras reads it at import, and only uses it when writable), holding
    the ImageNet MobileNetV2 0.5/224 no-top file of the detection benchmark when found in $KERAS_HOME (else
    ~/.keras) or in ../shared/keras beside the repository (where the tests find it). Returns the weights to use."""
    from visionflow.keras_cache import keras_home, mobilenet_v2_file

    name = mobilenet_v2_file(224, 0.5)
    found = next((d / name for d in (keras_home() / "models", REPO.parent / "shared" / "keras" / "models")
                  if (d / name).is_file()), None)
    (workdir / "keras" / "models").mkdir(parents=True)
    if found is not None:
        shutil.copy(found, workdir / "keras" / "models" / name)
    os.environ["KERAS_HOME"] = str(workdir / "keras")
    return "imagenet" if found is not None else None


def _run(names: list[str], ctx: Context) -> dict[str, dict]:
    from bench.common import machine

    entries = {}
    for i, name in enumerate(names, 1):
        module = importlib.import_module(MODULES[name])
        print(f"[{i}/{len(names)}] {module.TITLE}{' (quick)' if ctx.quick else ''}", flush=True)
        start = time.perf_counter()
        measured = datetime.now(timezone.utc).isoformat(timespec="seconds")
        where = machine()
        result = module.run(ctx)
        entries[name] = {"title": module.TITLE, "quick": ctx.quick, "measured": measured, "machine": where,
                         "run_seconds": round(time.perf_counter() - start, 1), **result}
        shown = [f"{k} {f['value']:.3g}{f['unit']}" for k, f in result.get("figures", {}).items()]
        print(f"  done in {time.perf_counter() - start:.0f} s: " + (", ".join(shown) or result.get("skipped", "")),
              flush=True)
    return entries


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    try:
        names, params = _check(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    from bench import report

    try:
        with tempfile.TemporaryDirectory(prefix="visionflow-bench-") as workdir:
            weights = _keras_home(Path(workdir))
            import tensorflow_datasets as tfds

            tfds.disable_progress_bar()
            ctx = Context(params, args.quick, Path(workdir), args.pets_dir, weights)
            entries = _run(names, ctx)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.out} and {args.readme} are as they were", file=sys.stderr)
        sys.exit(130)
    results = report.merge(report.load(args.out), entries)
    report.write(results, args.out, args.readme)
    print(f"\n{report.summary(entries)}\n\nwrote {args.out} and the table in {args.readme}")


if __name__ == "__main__":
    main()
