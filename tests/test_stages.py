"""Smoke run of the stage entry points on a few images, as DVC runs them (one process per stage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO


def stage(name: str, *args: str, params: Path, env: dict | None = None, check: bool = True):
    """Run `python -m stages.<name>` from the repository root like dvc.yaml does."""
    cmd = [sys.executable, "-m", f"stages.{name}", "--params", str(params), *map(str, args)]
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("stages")


def write_params(small_params_dict: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(small_params_dict, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pets_run(workdir):
    """download -> build_cache -> train -> evaluate on ~40 synthetic pets, tracked in a temp MLflow store."""
    from visionflow.config import load_params, to_dict

    raw = to_dict(load_params(REPO / "params.yaml"))
    raw["data"]["synthetic"].update(pets_images=40, pets_min_side=96, pets_max_side=128)
    raw["segmentation"].update(image_size=64, epochs=2, batch_size=8)
    params = write_params(raw, workdir / "params.yaml")
    env = {"VISIONFLOW_TRACKING": "on", "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    w = workdir
    stage("prepare_data", "--dataset", "pets", "--out", w / "data/pets", "--report", w / "metrics/data_pets.json",
          params=params, env=env)
    stage("build_cache", "--dataset", "pets", "--data", w / "data/pets", "--out", w / "cache/pets", params=params)
    stage("train_segmentation", "--cache", w / "cache/pets", "--model", w / "models/segmentation.keras",
          "--history", w / "plots/history.csv", params=params, env=env)
    out = stage("evaluate_segmentation", "--cache", w / "cache/pets", "--model", w / "models/segmentation.keras",
                "--metrics", w / "metrics/segmentation.json", "--figure", w / "plots/predictions.png",
                params=params, env=env)
    return w, env, out


def test_pets_stages_write_their_outputs(pets_run):
    w, _, out = pets_run
    assert (w / "data/pets/tfds").is_dir() and (w / "data/pets/raw/images").is_dir()
    info = json.loads((w / "cache/pets/info.json").read_text())
    assert info["class_names"] == ["pet", "background", "border"]
    assert sum(info["counts"].values()) == 40 and min(info["counts"].values()) > 0
    assert (w / "models/segmentation.keras").stat().st_size > 100_000
    history = (w / "plots/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 3  # header + 2 epochs
    metrics = json.loads((w / "metrics/segmentation.json").read_text())
    assert set(metrics) >= {"pixel_accuracy", "mean_iou", "iou", "dice"}
    assert set(metrics["iou"]) == {"pet", "background", "border"}
    defined = [v for v in metrics["iou"].values() if v is not None]  # null: a class absent from truth and prediction
    assert metrics["mean_iou"] == pytest.approx(np.mean(defined))
    assert metrics["majority_baseline"]["majority_class"] in metrics["iou"]
    assert (w / "plots/predictions.png").read_bytes()[:4] == b"\x89PNG"
    assert "test mean IoU" in out.stdout


def _stage_runs(client) -> dict:
    experiment = client.get_experiment_by_name("visionflow")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    return {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}


def test_pets_run_is_tracked_in_mlflow(pets_run):
    import mlflow
    import numpy as np

    w, env, _ = pets_run
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = _stage_runs(client)
    # Run by hand (no DVC process above them), stages are stand-alone runs of the project's experiment.
    assert {"prepare_pets", "train_segmentation", "evaluate_segmentation"} <= set(runs)
    train, evaluate = runs["train_segmentation"], runs["evaluate_segmentation"]
    assert train.data.params["segmentation.epochs"] == "2" and train.data.params["seed"] == "42"
    assert "val_loss" in train.data.metrics and "test_mean_iou" in evaluate.data.metrics
    assert len(client.get_metric_history(train.info.run_id, "loss")) == 2  # one point per epoch
    assert {i.dataset.name for i in evaluate.inputs.dataset_inputs} == {"pets cache", "segmentation model"}
    assert runs["prepare_pets"].data.params["data.source"] == "synthetic"
    # The model is an MLflow model, registered, `candidate` on the newest version; it takes raw pixels.
    version = client.get_model_version_by_alias("visionflow-segmentation", "candidate")
    assert version.run_id == train.info.run_id
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    served = mlflow.pyfunc.load_model("models:/visionflow-segmentation@candidate")
    assert tuple(served.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 64, 64, 3)
    from visionflow import cache
    from visionflow.inference import load_model

    image = next(cache.load_split(w / "cache/pets", "test").take(1).as_numpy_iterator())["image"][None]
    pixels = np.round(image * 255).astype(np.float32)
    keras_model = load_model(w / "models/segmentation.keras")
    np.testing.assert_allclose(served.predict(pixels), keras_model.predict(pixels / 255, verbose=0), atol=1e-4)


def test_cache_is_byte_reproducible(pets_run, tmp_path):
    w, _, _ = pets_run
    stage("build_cache", "--dataset", "pets", "--data", w / "data/pets", "--out", tmp_path / "again",
          params=w / "params.yaml")

    def digest(root: Path) -> dict:
        import hashlib

        return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digest(w / "cache/pets") == digest(tmp_path / "again")


def test_directory_source_with_missing_folder_fails_before_work(workdir, tmp_path):
    from visionflow.config import load_params, to_dict

    raw = to_dict(load_params(REPO / "params.yaml"))
    raw["data"].update(source="directory", pets_dir=str(tmp_path / "nowhere"))
    params = write_params(raw, tmp_path / "params.yaml")
    result = stage("prepare_data", "--dataset", "pets", "--out", tmp_path / "out", "--report", tmp_path / "r.json",
                   params=params, check=False)
    assert result.returncode == 1
    assert "data.pets_dir" in result.stderr and "nowhere" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.json").exists()


def test_bad_params_fail_before_any_work(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text().replace("epochs: 8", "epochs: -1"))
    result = stage("train_segmentation", "--cache", tmp_path / "none", "--model", tmp_path / "m.keras",
                   "--history", tmp_path / "h.csv", params=params, check=False)
    assert result.returncode == 1
    assert "segmentation.epochs" in result.stderr
    assert not (tmp_path / "m.keras").exists()


@pytest.fixture(scope="module")
def flowers_run(workdir, pets_run):
    """download -> cache -> train (augmentation in the model) -> evaluate -> detection, on 60 synthetic flowers."""
    from visionflow.config import load_params, to_dict

    raw = to_dict(load_params(REPO / "params.yaml"))
    raw["data"]["synthetic"].update(flowers_per_class=12)
    raw["segmentation"].update(image_size=64)
    raw["classifier"].update(image_size=64, epochs=1, batch_size=8)
    raw["classifier"]["windows"].update(canvases=12)
    raw["augment"].update(placement="model")
    raw["detection"].update(num_images=3, canvas_size=128, batch_size=32)
    params = write_params(raw, workdir / "params_flowers.yaml")
    env = pets_run[1]
    w = workdir
    stage("prepare_data", "--dataset", "flowers", "--out", w / "data/flowers", "--report",
          w / "metrics/data_flowers.json", params=params)
    stage("build_cache", "--dataset", "flowers", "--data", w / "data/flowers", "--out", w / "cache/flowers",
          params=params)
    stage("train_classifier", "--cache", w / "cache/flowers", "--model", w / "models/classifier.keras",
          "--history", w / "plots/classifier.csv", "--augmented", w / "plots/augmented.png", params=params, env=env)
    stage("evaluate_classifier", "--cache", w / "cache/flowers", "--model", w / "models/classifier.keras",
          "--metrics", w / "metrics/classifier.json", "--confusion", w / "plots/confusion.csv",
          "--figure-dir", w / "plots/classifier", params=params, env=env)
    stage("evaluate_detection", "--model", w / "models/classifier.keras", "--flowers-cache", w / "cache/flowers",
          "--pets-cache", w / "cache/pets", "--metrics", w / "metrics/detection.json",
          "--figure", w / "plots/detections.png", params=params, env=env)
    return w, env


def test_flowers_stages_write_their_outputs(flowers_run):
    w, _ = flowers_run
    report = json.loads((w / "metrics/data_flowers.json").read_text())
    assert report["source"] == "synthetic" and report["total_images"] == 60
    info = json.loads((w / "cache/flowers/info.json").read_text())
    assert info["class_names"] == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    assert info["counts"] == {"train": 48, "val": 6, "test": 6}
    metrics = json.loads((w / "metrics/classifier.json").read_text())
    assert {"accuracy", "macro_f1", "per_class"} <= set(metrics)
    assert sum(c["support"] for c in metrics["per_class"].values()) == 6
    confusion = (w / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 7
    for png in ("plots/augmented.png", "plots/classifier/confusion.png", "plots/classifier/predictions.png",
                "plots/detections.png"):
        assert (w / png).read_bytes()[:4] == b"\x89PNG", png


def test_detection_metrics_have_every_key(flowers_run):
    w, _ = flowers_run
    metrics = json.loads((w / "metrics/detection.json").read_text())
    assert {"map50", "precision", "recall", "per_class_ap", "agreement", "random_baseline"} <= set(metrics)
    assert set(metrics["strategies"]) == {"crops", "feature_crops", "dense"}
    for name, stats in metrics["strategies"].items():
        assert stats["backbone_runs_per_image"] == (stats["classifier_calls_per_image"] if name == "crops" else 1)
    # No wall-clock number anywhere: speed is the benchmarks' business, the metrics only change with the results.
    flat = json.dumps(metrics)
    assert "second" not in flat and "time" not in flat
    # The objects (26-38 px) match the window footprint (64 px / 2): most are reachable by some window.
    assert metrics["window_recall_bound"] > 0.5
    assert metrics["map50"] == pytest.approx(np.mean(list(metrics["per_class_ap"].values())))


def test_classifier_and_detection_runs_are_tracked(flowers_run):
    import mlflow

    _, env = flowers_run
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = _stage_runs(client)
    train, evaluate, det = runs["train_classifier"], runs["evaluate_classifier"], runs["evaluate_detection"]
    assert train.data.params["augment.placement"] == "model" and "test_accuracy" in evaluate.data.metrics
    assert "augmented.png" in {a.path.split("/")[-1] for a in client.list_artifacts(train.info.run_id, "plots")}
    assert client.get_model_version_by_alias("visionflow-classifier", "candidate").run_id == train.info.run_id
    assert "map50" in det.data.metrics and "strategies.dense.map50" in det.data.metrics
    assert not [name for name in det.data.metrics if "second" in name or "time" in name]
    assert "test_flowers_called_background" in evaluate.data.metrics


def test_evaluate_detection_rerun_with_nothing_changed_writes_the_same_bytes(flowers_run):
    w, env = flowers_run
    first = (w / "metrics/detection.json").read_bytes()
    stage("evaluate_detection", "--model", w / "models/classifier.keras", "--flowers-cache", w / "cache/flowers",
          "--pets-cache", w / "cache/pets", "--metrics", w / "metrics/detection.json",
          "--figure", w / "plots/detections.png", params=w / "params_flowers.yaml", env=env)
    assert (w / "metrics/detection.json").read_bytes() == first


def test_the_classifier_learns_background_and_its_metrics_stay_over_the_flowers(flowers_run):
    from visionflow.inference import load_model
    from visionflow.models.classifier import has_background

    w, _ = flowers_run
    model = load_model(w / "models/classifier.keras")
    assert has_background(model) and model.output_shape == (None, 6)  # classifier.windows in params.yaml
    metrics = json.loads((w / "metrics/classifier.json").read_text())
    assert set(metrics["per_class"]) == {"dandelion", "daisy", "tulips", "sunflowers", "roses"}
    tested = sum(c["support"] for c in metrics["per_class"].values())
    called = metrics["flowers_called_background"] * tested  # a share of the test images
    assert called == pytest.approx(round(called)) and 0 <= round(called) <= tested
    predicted = {line.split(",")[1] for line in (w / "plots/confusion.csv").read_text().splitlines()[1:]}
    assert predicted <= set(metrics["per_class"])  # background is never a predicted flower


def test_offline_copies_are_written_into_the_cache(pets_run, tmp_path):
    w, _, _ = pets_run
    raw = yaml.safe_load((w / "params.yaml").read_text())
    raw["augment"]["offline_copies"] = 2
    params = write_params(raw, tmp_path / "params.yaml")
    stage("build_cache", "--dataset", "pets", "--data", w / "data/pets", "--out", tmp_path / "aug", params=params)
    plain = json.loads((w / "cache/pets/info.json").read_text())["counts"]
    info = json.loads((tmp_path / "aug/info.json").read_text())
    assert info["offline_copies"] == 2
    assert info["counts"] == {**plain, "train": 3 * plain["train"]}

    import tensorflow as tf

    from visionflow import cache

    names = [ex["file_name"].decode() for ex in cache.load_split(tmp_path / "aug", "train").as_numpy_iterator()]
    assert sum(n.endswith("#aug1") for n in names) == sum(n.endswith("#aug2") for n in names) == plain["train"]
    masks = tf.concat([ex["mask"] for ex in cache.load_split(tmp_path / "aug", "train")], 0).numpy()
    assert set(np.unique(masks)) <= {0, 1, 2}


def test_evaluate_classifier_hands_its_test_time_params_to_the_inference_loop(flowers_run, tmp_path, monkeypatch):
    """The stage passes evaluation.test_time_flip, classifier_crops and classifier_scales on: tests of
    predict_probabilities alone cannot see a stage that drops them (the scores would silently be the photo alone's)."""
    import inspect

    import stages.evaluate_classifier as evaluate
    import visionflow.inference as inference

    w, _ = flowers_run
    raw = yaml.safe_load((w / "params_flowers.yaml").read_text())
    raw["evaluation"].update(test_time_flip=True, classifier_crops=[1.0, 0.5], classifier_scales=[1.0, 1.5])
    raw["classifier"].update(backbone="mobilenet_v2")  # what classifier_scales needs; the model is the small CNN
    params = write_params(raw, tmp_path / "params.yaml")
    real, calls = inference.classify_batches, []

    def spy(*args, **kwargs):
        calls.append(dict(inspect.signature(real).bind(*args, **kwargs).arguments))
        return real(*args, **{**kwargs, "scales": (1.0,)})  # the small CNN's head takes one feature map size

    monkeypatch.setattr(inference, "classify_batches", spy)
    monkeypatch.setenv("VISIONFLOW_TRACKING", "off")
    monkeypatch.setattr(sys, "argv", [
        "evaluate_classifier", "--params", str(params), "--cache", str(w / "cache/flowers"),
        "--model", str(w / "models/classifier.keras"), "--metrics", str(tmp_path / "m.json"),
        "--confusion", str(tmp_path / "c.csv"), "--figure-dir", str(tmp_path / "figures")])
    evaluate.main()
    assert len(calls) == 1 and calls[0]["flip"] is True and list(calls[0]["crops"]) == [1.0, 0.5]
    assert list(calls[0]["scales"]) == [1.0, 1.5]
    assert json.loads((tmp_path / "m.json").read_text())["per_class"]  # the stage ran to its metrics
