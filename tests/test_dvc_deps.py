"""dvc.yaml's deps equal what each stage imports: a change to any project module reruns the stages using it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("visionflow", "stages")
# The package that touches only MLflow, never a DVC output: a change there must not rerun the pipeline.
NOT_RESULTS = "visionflow/tracking/"
# The stages package's marker holds no code. visionflow's sets TensorFlow's kernels before TensorFlow loads, which
# changes results, so every stage names it.
TOP_INITS = {"stages/__init__.py"}


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """Project modules `path` imports anywhere in its body (function-level imports included)."""
    names: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    out = set()
    for name in names:
        if name.split(".")[0] in PACKAGES:
            # A package import runs its __init__ and every parent package's.
            parts = name.split(".")
            out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def imported_files(entry: Path) -> set[str]:
    """Every project file `entry` reaches through imports, as repo-relative paths, tracking excluded."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        rel = path.relative_to(ROOT).as_posix()
        if rel in seen or rel.startswith(NOT_RESULTS):
            continue
        seen.add(rel)
        todo.extend(p for p in map(_module_file, _imports(path)) if p is not None)
    return seen


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


def _missing(spec: dict) -> list[str]:
    """Project files the stage's module imports that its deps do not name."""
    module = re.search(r"python -m (stages\.\w+)", spec["cmd"]).group(1)
    files = imported_files(_module_file(module))
    return sorted(f for f in files - TOP_INITS if not _covered(f, spec["deps"]))


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_deps_cover_every_imported_project_file(stage):
    missing = _missing(_stages()[stage])
    assert not missing, f"dvc.yaml stage {stage}: add these imported files (or their folders) to deps: {missing}"


def test_the_import_walk_sees_function_level_and_relative_imports():
    files = imported_files(ROOT / "stages" / "train_segmentation.py")
    assert "visionflow/training.py" in files  # imported inside main()
    assert "visionflow/models/segmentation.py" in files  # imported inside a training function
    assert not any(f.startswith("visionflow/tracking") for f in files)


def test_a_dep_left_out_is_caught_and_only_the_tracking_package_is_exempt():
    spec = _stages()["train_segmentation"]
    deps = [d for d in spec["deps"] if d != "visionflow/training.py"]
    assert _missing({**spec, "deps": deps}) == ["visionflow/training.py"]
    assert imported_files(ROOT / "visionflow" / "tracking" / "run.py") == set()  # every module of the package
    files = imported_files(ROOT / "visionflow" / "runs.py")  # beside the package, not in it: walked as usual
    assert {"visionflow/runs.py", "visionflow/summary.py"} <= files


def test_every_uncached_output_is_a_metric_or_a_plot_so_each_stage_reaches_the_run_cache():
    """DVC saves no run-cache entry for a stage with an uncached output that is neither a metric nor a plot
    (`Stage.run`), so that stage would train again at every repeated sweep point, and `make pull` could bring no
    run-cache entry of it: a point someone else ran would train again too."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        plain = [f"{stage.addressing}: {out.def_path}" for stage in repo.index.stages for out in stage.outs
                 if not (out.use_cache or out.is_metric or out.is_plot)]
    assert plain == [], f"dvc.yaml: list these under the stage's plots (or metrics), or cache them: {plain}"
