"""The bad-input matrix: params, data layouts, image files, tracking and faults, each as the user types it.

Every case runs a real command (`make run`, `make run-real`, `dvc repro <stage>`) in a clone of the project
and asserts the one `error:` line (naming the input and the fix), no traceback, and that nothing was lost or
half-written: no stage ran when the check could come first, the tree is byte for byte as before, and no
`.tmp-` file is left anywhere. The CLI's rows are in tests/test_cli_input.py, the kill -9 row in
tests/test_resume.py, a tracking server killed mid-training in tests/test_server.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import clone, fresh_shell_env
from visionflow.data.synthetic import generate_flowers, generate_pets
from visionflow.overrides import merge

PRESERVED = {"models/segmentation.keras": b"the model of the last good run",
             "models/classifier.keras": b"the other model of the last good run"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A clone with a previous run's outputs (sentinels) and small local releases beside it."""
    root = tmp_path_factory.mktemp("bad")
    repo = clone(root / "repo")
    for name, data in PRESERVED.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    generate_pets(root / "pets", n_images=12, min_side=64, max_side=96, seed=0, jpeg_quality=90)
    generate_flowers(root / "flowers", per_class=3, seed=0, size_range=(64, 96), jpeg_quality=90)
    return repo


@pytest.fixture
def workspace(repo):
    """The clone, reset to its committed params and sentinel outputs after each case."""
    yield repo
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)
    for name in ("data", "mlflow.db", ".checkpoints", "dvc.lock.bak"):
        path = repo / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for copy in [*repo.parent.glob("pets-*"), *repo.parent.glob("flowers-*")]:
        shutil.rmtree(copy)
    for name, data in PRESERVED.items():
        (repo / name).write_bytes(data)


def _tree(repo: Path) -> dict[str, str]:
    skip = (".git/", ".venv", ".dvc/tmp/", ".dvc/cache/")
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file() and not p.relative_to(repo).as_posix().startswith(skip)}


def _params(**changes) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        raw = yaml.safe_load((repo / "params.yaml").read_text())
        (repo / "params.yaml").write_text(yaml.safe_dump(merge(raw, changes), sort_keys=False))
    return edit


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda repo: (repo / name).write_text(text)


_COPIES = itertools.count()


def _local(pets: Callable[[Path], None] | None = None, flowers: Callable[[Path], None] | None = None):
    """params.yaml on copies of the local releases, after `pets`/`flowers` damaged them."""
    def edit(repo: Path) -> None:
        dirs = {}
        for sub, damage in (("pets", pets), ("flowers", flowers)):
            # A new folder per case: DVC identifies a local release by its path (data.pets_dir), not its files.
            dirs[sub] = shutil.copytree(repo.parent / sub, repo.parent / f"{sub}-{next(_COPIES)}")
            if damage:
                damage(dirs[sub])
        _params(data={"source": "directory", "pets_dir": str(dirs["pets"]),
                      "flowers_dir": str(dirs["flowers"] / "flower_photos")})(repo)
    return edit


def _trimaps_zero_based(release: Path) -> None:  # values 0/1/2, as some converted copies hold
    for path in (release / "annotations" / "trimaps").glob("*.png"):
        Image.fromarray(np.asarray(Image.open(path)) - 1).save(path)


def _corrupt_all_flowers(root: Path) -> None:
    for path in root.glob("flower_photos/*/*.jpg"):
        path.write_bytes(b"\xff\xd8 not a jpeg")


def _corrupt_one_flower(root: Path) -> None:
    path = sorted(root.glob("flower_photos/daisy/*.jpg"))[0]
    path.write_bytes(path.read_bytes()[:100])


def _trimap_of_other_size(release: Path) -> None:
    path = sorted((release / "annotations" / "trimaps").glob("*.png"))[0]
    Image.open(path).resize((17, 13)).save(path)


def _remove(*parts: str) -> Callable[[Path], None]:
    return lambda root: shutil.rmtree(root.joinpath(*parts))


MAKE_RUN = ["make", "run"]
DVC_PETS = ["bash", "-c", "source .venv/bin/activate && dvc repro prepare_pets"]
DVC_FLOWERS = ["bash", "-c", "source .venv/bin/activate && dvc repro prepare_flowers"]

# (id, setup, environment, command, what the error line says). Checks that run before DVC: no stage runs.
BEFORE_DVC = [
    ("epochs-not-a-number", _params(segmentation={"epochs": "zwei"}), {}, MAKE_RUN,
     ["segmentation.epochs: Input should be a valid integer (got 'zwei')"]),
    ("rate-not-a-number", _params(segmentation={"learning_rate": "fast"}), {}, MAKE_RUN,
     ["segmentation.learning_rate: Input should be a valid number (got 'fast')"]),
    ("unknown-key", _params(segmentaton={"epochs": 2}), {}, MAKE_RUN, ["segmentaton: unknown key"]),
    ("unknown-nested-key", _params(classifier={"epoch": 2}), {}, MAKE_RUN, ["classifier.epoch: unknown key"]),
    ("source-unknown", _params(data={"source": "web"}), {}, MAKE_RUN,
     ["data.source: Input should be 'synthetic', 'directory' or 'tfds'"]),
    ("directory-without-folder", _params(data={"source": "directory"}), {}, MAKE_RUN,
     ["data.pets_dir: required when data.source is 'directory'", "make run-real PETS_DIR="]),
    ("val-fraction-range", _params(data={"val_fraction": 1.5}), {}, MAKE_RUN,
     ["data.val_fraction: Input should be less than 1 (got 1.5)"]),
    ("split-sum", _params(data={"flowers_split": {"train": 0.9, "val": 0.2, "test": 0.1}}), {}, MAKE_RUN,
     ["data.flowers_split: train + val + test must sum to 1, got 1.2"]),
    ("image-size-multiple", _params(segmentation={"image_size": 100}), {}, MAKE_RUN,
     ["segmentation.image_size: Input should be a multiple of 32 (got 100)"]),
    ("batch-size-zero", _params(classifier={"batch_size": 0}), {}, MAKE_RUN,
     ["classifier.batch_size: Input should be greater than or equal to 1 (got 0)"]),
    ("no-detection-canvases", _params(detection={"num_images": 0}), {}, MAKE_RUN,
     ["detection.num_images: Input should be greater than or equal to 1 (got 0)"]),
    ("strategy-unknown", _params(detection={"strategy": "fast"}), {}, MAKE_RUN,
     ["detection.strategy: Input should be 'crops', 'feature_crops' or 'dense' (got 'fast')"]),
    ("object-scales-crossed", _params(detection={"min_object_scale": 0.5, "max_object_scale": 0.3}), {}, MAKE_RUN,
     ["min_object_scale must not exceed max_object_scale"]),
    ("alpha-without-weights", _params(segmentation={"encoder": {"alpha": 0.3}}), {}, MAKE_RUN,
     ["segmentation.encoder.alpha: Input should be 0.35, 0.5"]),
    ("augment-op-unknown", _params(augment={"segmentation": [{"op": "random_spin"}]}), {}, MAKE_RUN,
     ["augment.segmentation: [0] random_spin: unknown op"]),
    ("augment-op-not-joint", _params(augment={"segmentation": [{"op": "random_flip"}]}), {}, MAKE_RUN,
     ["augment.segmentation: [0] random_flip: not allowed for segmentation"]),
    ("placement-unknown", _params(augment={"placement": "gpu"}), {}, MAKE_RUN,
     ["augment.placement: Input should be 'model' or 'dataset' (got 'gpu')"]),
    ("yaml-syntax", _write("params.yaml", "segmentation: [epochs: 2\n"), {}, MAKE_RUN,
     ["params.yaml: not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'; fix the syntax"]),
    ("params-not-a-mapping", _write("params.yaml", "- just\n- a list\n"), {}, MAKE_RUN,
     ["params.yaml: expected a mapping of sections (seed:, data:, segmentation: ...) at the top level, got a list"]),
    ("pets-dir-is-a-file", _params(data={"source": "directory", "pets_dir": "README.md",
                                         "flowers_dir": "README.md"}), {}, MAKE_RUN,
     ["data.pets_dir: README.md is not a folder"]),
    ("pets-without-annotations", _local(pets=_remove("annotations")), {}, MAKE_RUN,
     ["data.pets_dir: annotations/ not found under", "(expected the Oxford-IIIT Pet release layout"]),
    ("pets-without-trimaps", _local(pets=_remove("annotations", "trimaps")), {}, MAKE_RUN,
     ["data.pets_dir: annotations/trimaps/ not found under"]),
    ("flowers-without-classes", _local(flowers=lambda root: [shutil.rmtree(p) for p in
                                                             (root / "flower_photos").iterdir()]), {}, MAKE_RUN,
     ["data.flowers_dir: class folder(s) dandelion, daisy, tulips, sunflowers, roses missing under"]),
    ("stale-digest", lambda repo: (_local()(repo), _params(data={"pets_digest": "0" * 32})(repo)), {}, MAKE_RUN,
     ["data.pets_digest:", "changed since the digest 00000000000000000000000000000000 was set",
      "run make run-real again"]),
    ("server-down", None, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, MAKE_RUN,
     ["MLFLOW_TRACKING_URI=http://127.0.0.1:9: the tracking server does not answer", "VISIONFLOW_TRACKING=off"]),
    ("store-not-a-database", _write("mlflow.db", "these are not the runs you are looking for"), {}, MAKE_RUN,
     ["mlflow.db cannot take a write (file is not a database)", "MLFLOW_TRACKING_URI", "VISIONFLOW_TRACKING=off"]),
    ("store-folder-missing", None, {"MLFLOW_TRACKING_URI": "sqlite:////nonexistent/folder/mlflow.db"}, MAKE_RUN,
     ["MLflow store /nonexistent/folder/mlflow.db is not writable", "VISIONFLOW_TRACKING=off"]),
]

# Stage-time failures: only the stage's own output is gone (DVC removes it first), nothing half-written.
IN_STAGE = [
    ("trimaps-zero-based", _local(pets=_trimaps_zero_based), {}, DVC_PETS,
     ["data.pets_dir: split 'train' is empty: every image listed", "was rejected:",
      "trimap values [0] outside {1, 2, 3} (0-based? the release's trimaps hold 1 pet, 2 background, 3 border)"]),
    ("every-flower-corrupt", _local(flowers=_corrupt_all_flowers), {}, DVC_FLOWERS,
     ["data.flowers_dir: no usable image under", "every one was rejected: 15 x cannot decode image"]),
]


def _run(repo: Path, setup, env: dict, command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    if setup:
        setup(repo)
    start = time.monotonic()
    result = subprocess.run(command, cwd=repo, env=fresh_shell_env(**env), capture_output=True, text=True,
                            timeout=600)
    return result, time.monotonic() - start


def _one_error_line(result: subprocess.CompletedProcess, says: list[str]) -> str:
    assert result.returncode != 0, result.stdout[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    message = "\n".join([errors[0], *[l for l in result.stderr.splitlines() if l.startswith("  ")]])
    for text in says:
        assert text in message, message
    assert "Traceback" not in result.stderr + result.stdout
    return message


def _no_temps(repo: Path) -> None:
    left = [p for p in repo.rglob("*.tmp-*") if ".venv" not in p.parts and ".git" not in p.parts]
    assert left == [], left


@pytest.mark.parametrize(("case", "setup", "env", "command", "says"), BEFORE_DVC, ids=[c[0] for c in BEFORE_DVC])
def test_refused_before_any_stage_and_nothing_changes(workspace, case, setup, env, command, says):
    repo = workspace
    if setup:
        setup(repo)
    before = _tree(repo)
    result, seconds = _run(repo, None, env, command)
    _one_error_line(result, says)
    assert "Running stage" not in result.stdout and seconds < 30
    assert _tree(repo) == before  # the last run's models and plots, params, dvc.lock: all as they were
    for name, data in PRESERVED.items():
        assert (repo / name).read_bytes() == data
    assert not (repo / "data" / "pets").exists() and not (repo / ".checkpoints").exists()
    _no_temps(repo)


@pytest.mark.parametrize(("case", "setup", "env", "command", "says"), IN_STAGE, ids=[c[0] for c in IN_STAGE])
def test_a_failing_stage_says_why_and_leaves_no_output(workspace, case, setup, env, command, says):
    repo = workspace
    dataset = "pets" if "pets" in command[-1] else "flowers"
    lock, report = (repo / "dvc.lock").read_bytes(), repo / "metrics" / f"data_{dataset}.json"
    committed = report.read_bytes()
    result, _ = _run(repo, setup, env, command)
    _one_error_line(result, says)
    assert not (repo / "data" / dataset).exists()  # no prepared dataset DVC could take as complete
    assert not report.exists() or report.read_bytes() == committed  # no half-written report
    assert (repo / "dvc.lock").read_bytes() == lock
    _no_temps(repo)


@pytest.mark.parametrize(("case", "damage", "dataset", "reported", "images"), [
    ("one-truncated-jpeg", _local(flowers=_corrupt_one_flower), "flowers", "cannot decode image", 14),
    ("trimap-of-another-size", _local(pets=_trimap_of_other_size), "pets", "trimap", 12),
])
def test_one_bad_file_is_reported_and_the_rest_prepared(workspace, case, damage, dataset, reported, images):
    repo = workspace
    result, _ = _run(repo, damage, {}, DVC_PETS if dataset == "pets" else DVC_FLOWERS)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((repo / "metrics" / f"data_{dataset}.json").read_text())
    problems = [row for row in report["skipped"] + report["fixed"] if reported in json.dumps(row)]
    assert len(problems) == 1, report
    assert report["total_images"] == images
    _no_temps(repo)


def test_make_run_real_gives_dvc_the_folders_digests_so_a_changed_file_reruns_preparation(workspace):
    from visionflow.data.sources import folder_digest

    repo = workspace
    pets, flowers = repo.parent / "pets", repo.parent / "flowers" / "flower_photos"

    def queued() -> str:
        no_weights = ("-S segmentation.encoder.weights=null -S classifier.encoder.weights=null "
                      "-S classifier.head_refit_pretrained=false")  # no ImageNet encoder to keep a copy of
        result = subprocess.run(["make", "run-real", f"PETS_DIR={pets}", f"FLOWERS_DIR={flowers}",
                                 f"EXTRA=--queue {no_weights}"], cwd=repo, env=fresh_shell_env(),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    first = queued()
    assert f"-S data.pets_digest={folder_digest(pets)}" in first
    assert f"-S data.flowers_digest={folder_digest(flowers)}" in first
    image = sorted((pets / "images").glob("*.jpg"))[0]
    original = image.read_bytes()
    try:
        image.write_bytes(original[:-1] + b"\0")  # one byte of one image
        second = queued()
    finally:
        image.write_bytes(original)
    assert f"-S data.pets_digest={folder_digest(pets)}" not in second and "-S data.pets_digest=" in second
    subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc queue remove --all"], cwd=repo, check=True,
                   capture_output=True)


def test_a_killed_cache_build_leaves_nothing_for_ever(workspace):
    """kill -9 during build_cache left `.pets.tmp-<pid>/` beside the output: the next build removes it."""
    repo = workspace
    probe = subprocess.Popen(["true"])  # a pid that has certainly exited
    probe.wait()
    left = repo / "data" / "cache" / f".pets.tmp-{probe.pid}"
    (left / "train").mkdir(parents=True)
    (left / "train" / "shard").write_bytes(b"\0" * 1024)
    result = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc repro build_cache_pets"], cwd=repo,
                            env=fresh_shell_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not left.exists() and (repo / "data" / "cache" / "pets" / "info.json").is_file()
    _no_temps(repo)
