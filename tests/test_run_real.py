"""`make run-real` on the real samples, typed as the README shows it, in a fresh clone and a fresh shell."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import SHARED, clone, fresh_shell_env, require_shared

# Short runs: few epochs, 128-px inputs (the ImageNet weights exist for 96 to 224 px), few detection canvases.
SHORT = ("-S segmentation.epochs=3 -S classifier.epochs=2 -S detection.num_images=6 -S segmentation.image_size=128 "
         "-S classifier.image_size=128")


def _make(repo, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], cwd=repo, env=fresh_shell_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def keras_home(tmp_path):
    """A writable copy of the shared Keras cache, as the README tells users to make."""
    require_shared("keras", "models")
    home = tmp_path / "keras"
    shutil.copytree(SHARED / "keras" / "models", home / "models")
    return home


@pytest.mark.slow
def test_make_run_real_on_the_samples(tmp_path, keras_home):
    pets = require_shared("datasets", "oxford_iiit_pet")
    flowers = require_shared("datasets", "flower_photos", "flower_photos")
    repo = clone(tmp_path / "repo")

    run = _make(repo, "run-real", f"PETS_DIR={pets}", f"FLOWERS_DIR={flowers}", f"KERAS_HOME={keras_home}",
                f"EXTRA={SHORT}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "Headline metrics" in run.stdout  # the summary make run-real ends with

    # The experiment ran with configs/real.yaml on top of params.yaml, plus the EXTRA settings.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    real = yaml.safe_load((repo / "configs/real.yaml").read_text())
    assert params["data"] | {"source": "directory"} == params["data"]
    assert params["data"]["pets_dir"] == str(pets) and params["data"]["flowers_dir"] == str(flowers)
    assert params["segmentation"]["encoder"] == real["segmentation"]["encoder"]
    assert params["classifier"]["backbone"] == real["classifier"]["backbone"] == "mobilenet_v2"
    assert params["augment"]["segmentation"] == real["augment"]["segmentation"]
    assert params["segmentation"]["epochs"] == 3 and params["classifier"]["epochs"] == 2
    assert params["data"]["flowers_split"] == real["data"]["flowers_split"]
    # configs/real.yaml's flowers split: the validation split keeps one photo per class, the rest trains.
    counts = json.loads((repo / "data/cache/flowers/info.json").read_text())["counts"]
    assert counts == {"train": 445, "val": 5, "test": 50}, counts
    exps = subprocess.run([str(repo / ".venv/bin/dvc"), "exp", "list", "--name-only"], cwd=repo,
                          env=fresh_shell_env(), capture_output=True, text=True, check=True).stdout.split()
    assert exps == ["real-directory"]

    # Every metrics file it writes.
    report = json.loads((repo / "metrics/data_pets.json").read_text())
    assert report["source"] == "directory" and report["total_images"] == 297
    named = {item["file"]: item for item in report["fixed"] + report["skipped"]}
    assert any("Abyssinian_5.jpg" in f for f in named), "the PNG-in-.jpg must be listed by name"
    assert sum(".mat" in item["file"] for item in report["skipped"]) == 3
    flowers_report = json.loads((repo / "metrics/data_flowers.json").read_text())
    assert flowers_report["source"] == "directory" and flowers_report["total_images"] == 500
    seg = json.loads((repo / "metrics/segmentation.json").read_text())
    assert set(seg["iou"]) == {"pet", "background", "border"}
    # Three epochs from the ImageNet encoder already beat predicting the majority class everywhere.
    assert seg["pixel_accuracy"] > seg["majority_baseline"]["pixel_accuracy"], seg
    cls = json.loads((repo / "metrics/classifier.json").read_text())
    assert len(cls["per_class"]) == 5 and cls["accuracy"] > 0.4, cls  # chance is 0.2
    det = json.loads((repo / "metrics/detection.json").read_text())
    assert set(det["strategies"]) == {"crops", "feature_crops", "dense"} and 0 <= det["map50"] <= 1

    # The experiment's results are in the workspace: a plain repro runs no stage.
    again = subprocess.run([str(repo / ".venv/bin/dvc"), "repro"], cwd=repo, env=fresh_shell_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert (repo / "mlflow.db").is_file()

    # A second experiment that changes a segmentation training param reruns segmentation training and its
    # evaluation; every other stage comes from the DVC cache.
    second = _make(repo, "run-real", f"PETS_DIR={pets}", f"FLOWERS_DIR={flowers}", f"KERAS_HOME={keras_home}",
                   f"EXTRA={SHORT} -S segmentation.learning_rate=0.002", "EXP=lr")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    ran = [line for line in second.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'train_segmentation':", "Running stage 'evaluate_segmentation':"], second.stdout


@pytest.mark.parametrize(("args", "message"), [
    ("KERAS_HOME={keras}", "data.pets_dir: required when data.source is 'directory'"),
    ("PETS_DIR={pets} KERAS_HOME={keras}", "data.flowers_dir: required when data.source is 'directory'"),
    ("PETS_DIR=/nowhere FLOWERS_DIR={flowers} KERAS_HOME={keras}", "data.pets_dir: /nowhere is not a folder"),
    ("SOURCE=tfds KERAS_HOME={keras}", "data.source: tfds: cannot download oxford_iiit_pet"),
    ("SOURCE=web KERAS_HOME={keras}", "data.source: Input should be 'synthetic', 'directory' or 'tfds'"),
    ("PETS_DIR={pets} FLOWERS_DIR={flowers} KERAS_HOME={keras}",
     "segmentation.encoder.weights: imagenet needs {keras}/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
     "0.5_224_no_top.h5, which is missing"),
    ("PETS_DIR={pets} FLOWERS_DIR={flowers} KERAS_HOME={keras}/absent",
     "KERAS_HOME={keras}/absent: not a writable folder"),
    ("PETS_DIR={pets} FLOWERS_DIR={flowers} KERAS_HOME={keras} EXTRA=-S|segmentaton.epochs=2",
     "-S segmentaton.epochs=2: no such key in params.yaml"),
    ("PETS_DIR={pets} FLOWERS_DIR={flowers} KERAS_HOME={keras} EXTRA=-S|classifier.epochs=0",
     "classifier.epochs: Input should be greater than or equal to 1 (got 0)"),
])
def test_make_run_real_refuses_bad_input_before_any_stage(tmp_path, args, message):
    """One clear error, before DVC runs a stage; `keras` is an empty (writable) Keras home."""
    where = {"pets": require_shared("datasets", "oxford_iiit_pet"), "keras": tmp_path / "keras",
             "flowers": require_shared("datasets", "flower_photos", "flower_photos")}
    where["keras"].mkdir()
    repo = clone(tmp_path / "repo")
    run = _make(repo, "run-real", *(arg.format(**where).replace("|", " ") for arg in args.split()), timeout=300)
    assert run.returncode != 0
    assert run.stderr.startswith("error: ") and message.format(**where) in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "Running stage" not in run.stdout
    assert not (repo / "data/pets").exists() and not (repo / "mlflow.db").exists()
