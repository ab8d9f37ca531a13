"""Shared fixtures: the real params.yaml shrunk for tests, the shared real-data samples, a Keras cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VISIONFLOW_TRACKING", "off")  # library tests run untracked; stage tests turn it on

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# params.yaml shrunk for tests (the small_params fixture, and the clones of the end-to-end tests): few images, one
# epoch, small sizes, 8 detection-window canvases instead of 400 (4,400 windows a classifier epoch otherwise).
SHRUNK = {
    "data": {"synthetic": {"pets_images": 40, "pets_min_side": 96, "pets_max_side": 128, "flowers_per_class": 12}},
    "segmentation": {"image_size": 64, "epochs": 1, "batch_size": 8},
    "classifier": {"image_size": 64, "epochs": 1, "batch_size": 8, "windows": {"canvases": 8}},
    "detection": {"num_images": 4, "canvas_size": 128, "batch_size": 16},
}


def _keras_home() -> None:
    # Keras reads KERAS_HOME once, at import, and only uses it when writable: give it a writable
    # copy of the shared ImageNet cache before anything imports keras.
    if "KERAS_HOME" in os.environ or not (SHARED / "keras" / "models").is_dir():
        return
    home = Path(tempfile.mkdtemp(prefix="visionflow-keras-"))
    shutil.copytree(SHARED / "keras" / "models", home / "models")
    os.environ["KERAS_HOME"] = str(home)


_keras_home()
import visionflow  # noqa: E402,F401  (its TensorFlow settings, before any test imports TensorFlow)


# `make test` runs the suite on TEST_WORKERS processes (pytest-xdist). Each test file is one unit of work, so its
# module fixtures (servers, clones, trained models) are built once, on one worker; the files that read the README's
# run share a unit, so it runs once. Units are handed out longest first (durations measured on a 2-core CPU), so
# the last ones are short and the workers finish together.
SHARED_GROUPS = {"tests/test_mlflow_runs.py": "tests/test_readme.py"}
LONGEST_FIRST = ("tests/test_reproduce.py", "tests/test_sweep.py", "tests/test_readme.py", "tests/test_server.py",
                 "tests/test_run_real.py", "tests/test_distribute.py", "tests/test_team.py",
                 "tests/test_checkpoints.py", "tests/test_stages.py", "tests/test_resume.py")


def group_of(nodeid: str) -> str:
    """The unit of work of a test: its file, or the file whose fixtures it shares."""
    path = nodeid.split("::")[0]
    return SHARED_GROUPS.get(path, path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(group_of(item.nodeid), len(rank)))  # stable: file order within a rank


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    # Whatever `--dist` says, with `-n`. Not xdist's `--dist loadgroup`: xdist 3.8 groups by renaming node ids, which
    # pytest 9 no longer reads, so its marks group nothing.
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return FileGroups(config, log)


def require_shared(*parts: str) -> Path:
    """Path under ../shared; skips on a user's machine where it is absent, fails under CI."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the repository")
        pytest.skip(f"{path} not present (real-data samples are only beside the repository in CI)")
    return path


@pytest.fixture
def pets_sample() -> Path:
    """The real Oxford-IIIT Pet sample in its release layout."""
    return require_shared("datasets", "oxford_iiit_pet")


@pytest.fixture
def flowers_sample() -> Path:
    """The real flower_photos sample (one subfolder per class)."""
    return require_shared("datasets", "flower_photos", "flower_photos")


@pytest.fixture
def imagenet_weights() -> None:
    """Skip (or fail under CI) when no ImageNet MobileNetV2 cache is reachable."""
    require_shared("keras", "models")
    if "KERAS_HOME" not in os.environ:
        pytest.skip("KERAS_HOME not set")


@pytest.fixture
def small_params():
    """The shipped params.yaml, shrunk: few images, one epoch, small sizes."""
    from visionflow.config import shipped_params

    return shipped_params(SHRUNK)


def fresh_shell_env(**extra: str) -> dict[str, str]:
    """The environment of a new terminal: no venv on PATH, none of the test-session settings above."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "KERAS_HOME", "VISIONFLOW_TRACKING", "MLFLOW_TRACKING_URI", "PYTHONPATH"}}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p and p != venv_bin)
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def clone(dest: Path, params: dict | None = None) -> Path:
    """A git clone of the working tree at `dest`, sharing this session's installed .venv, params updated.

    `make setup` in the clone finds the venv up to date, as it would after `make setup` in a real clone.
    """
    import yaml

    stamp = Path(sys.prefix) / ".installed"
    if not stamp.is_file():
        pytest.skip("run through `make test`: the clone shares the venv that `make setup` installed")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    old = stamp.stat().st_mtime - 60
    for name in ("pyproject.toml", "requirements.lock"):
        os.utime(dest / name, (old, old))
    if params:
        from visionflow.overrides import merge

        raw = yaml.safe_load((dest / "params.yaml").read_text())
        (dest / "params.yaml").write_text(yaml.safe_dump(merge(raw, params), sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def readme_session(tmp_path_factory):
    """The README's shell commands, run once, in order, as typed in a fresh clone (tests/readme_session.py)."""
    from tests.readme_session import run_readme

    return run_readme(tmp_path_factory.mktemp("readme"))


@pytest.fixture
def tfds_on_local_files(tmp_path, monkeypatch):
    """`tfds.builder` answering with the Oxford-IIIT Pet and tf_flowers builders over local release-layout copies
    (synthetic, 2 images per pet class and 6 per flower), and a download probe that passes: the `tfds` source's
    real prepare, download_and_prepare included, with no network."""
    import socket

    import tensorflow_datasets as tfds

    from visionflow.data import flowers, pets, synthetic
    from visionflow.data.report import DataReport

    pets_root = synthetic.generate_pets(tmp_path / "release" / "pets", 24, 64, 96, seed=0, jpeg_quality=90)
    flowers_root = synthetic.generate_flowers(tmp_path / "release" / "flowers", 6, seed=0, size_range=(64, 96),
                                              jpeg_quality=90)
    pet_splits = {split: pets.parse_release(pets_root, name)[0] for split, name in pets.SPLIT_LISTS.items()}
    flower_items = flowers.parse_folder(flowers_root)[0]
    asked = []

    def builder(name: str, data_dir: str):
        asked.append(name)
        if name.startswith("oxford_iiit_pet:"):
            return pets.LocalPetsBuilder(splits=pet_splits, max_side=512, report=DataReport(dataset="x", source="x"),
                                         root=pets_root, param="data.pets_dir", data_dir=data_dir)
        assert name.startswith("tf_flowers:"), name
        return flowers.LocalFlowersBuilder(items=flower_items, root=flowers.find_root(flowers_root), max_side=512,
                                           report=DataReport(dataset="x", source="x"), param="data.flowers_dir",
                                           data_dir=data_dir)

    monkeypatch.setattr(tfds, "builder", builder)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: socket.socket())
    return asked


BUCKET = "visionflow-team"  # the bucket of the `s3` endpoint


@pytest.fixture(scope="module")
def s3():
    """A local S3 endpoint with one bucket, as dvc-s3's own tests run it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def write_tiny_cache(folder: Path, target: str, sizes: tuple[int, int, int] = (16, 4, 4)) -> Path:
    """A cache of random 32-px images (train, val, test sizes) with random trimap masks (`target` "mask") or
    labels 0..4 (`target` "label"): enough to train a step without preparing any data."""
    import numpy as np
    import tensorflow as tf

    from visionflow import cache

    rng = np.random.default_rng(0)

    def split(n: int):
        y = (rng.integers(0, 3, (n, 32, 32, 1), np.uint8) if target == "mask" else np.arange(n, dtype=np.int64) % 5)
        return tf.data.Dataset.from_tensor_slices({"image": rng.random((n, 32, 32, 3), np.float32), target: y})

    info = {"image_size": 32, **({"class_names": list("abcde")} if target == "label" else {})}
    cache.write_cache(dict(zip(("train", "val", "test"), map(split, sizes))), folder, info, 2)
    return folder
