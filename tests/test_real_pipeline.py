"""The whole DVC pipeline on the real samples (data.source: directory), as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, require_shared


@pytest.mark.slow
def test_dvc_repro_on_the_real_samples(tmp_path):
    pets = require_shared("datasets", "oxford_iiit_pet")
    flowers = require_shared("datasets", "flower_photos", "flower_photos")
    require_shared("keras", "models")
    assert os.environ.get("KERAS_HOME"), "conftest points KERAS_HOME at a copy of the shared Keras cache"

    # A clean checkout of the tracked files, as `git clone` would give.
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    repo = tmp_path / "repo"
    for name in files:
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    (repo / "dvc.lock").unlink()  # a fresh run, not the lock of the synthetic run

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="directory", pets_dir=str(pets), flowers_dir=str(flowers))
    params["segmentation"].update(epochs=1, encoder={"weights": "imagenet", "alpha": 0.35, "trainable": False})
    params["classifier"].update(epochs=1)
    params["detection"].update(num_images=6)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = {**os.environ, "VISIONFLOW_TRACKING": "on", "DVC_NO_ANALYTICS": "1",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    run = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    report = json.loads((repo / "metrics/data_pets.json").read_text())
    assert report["source"] == "directory" and report["total_images"] == 297
    named = {item["file"]: item for item in report["fixed"] + report["skipped"]}
    assert any("Abyssinian_5.jpg" in f for f in named), "the PNG-in-.jpg must be listed by name"
    assert sum(".mat" in item["file"] for item in report["skipped"]) == 3
    assert json.loads((repo / "metrics/data_flowers.json").read_text())["total_images"] == 500

    seg = json.loads((repo / "metrics/segmentation.json").read_text())
    assert 0 < seg["mean_iou"] <= 1 and set(seg["iou"]) == {"pet", "background", "border"}
    cls = json.loads((repo / "metrics/classifier.json").read_text())
    assert 0 <= cls["accuracy"] <= 1 and len(cls["per_class"]) == 5
    det = json.loads((repo / "metrics/detection.json").read_text())
    assert set(det["strategies"]) == {"crops", "feature_crops", "dense"} and 0 <= det["map50"] <= 1

    # Nothing changed: a second repro runs no stage.
    again = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert (repo / "mlflow.db").is_file()

    # A segmentation training param reruns training (and then evaluation), nothing upstream.
    params["segmentation"]["learning_rate"] = 0.002
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dry = subprocess.run([sys.executable, "-m", "dvc", "repro", "--dry"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=600)
    assert [line for line in dry.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'train_segmentation':"], dry.stdout
