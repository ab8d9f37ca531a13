"""The `visionflow` command line on the real samples and on image files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from visionflow.cli import main


@pytest.fixture(scope="module")
def unet_file(tmp_path_factory):
    """An (untrained) U-Net saved the way the training stage saves it."""
    from visionflow.config import shipped_params
    from visionflow.models.segmentation import build_unet

    path = tmp_path_factory.mktemp("models") / "segmentation.keras"
    build_unet(shipped_params({"segmentation": {"image_size": 64}}).segmentation).save(path)
    return path


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    from visionflow.config import shipped_params
    from visionflow.models.classifier import build_classifier

    path = tmp_path_factory.mktemp("models") / "classifier.keras"
    build_classifier(shipped_params({"classifier": {"image_size": 64}}).classifier, num_classes=5).save(path)
    return path


def test_evaluate_segmentation_on_the_real_sample(unet_file, pets_sample, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    main(["evaluate", "segmentation", "--model", str(unet_file), "--data", str(pets_sample), "--out", str(out)])
    metrics = json.loads(out.read_text())
    assert metrics["images"] == 150  # every image of the sample's test list is readable
    assert set(metrics["iou"]) == {"pet", "background", "border"}
    assert metrics["mean_iou"] == pytest.approx(np.mean([v for v in metrics["iou"].values() if v is not None]))
    assert json.loads(capsys.readouterr().out)["mean_iou"] == metrics["mean_iou"]


def test_evaluate_classifier_on_the_real_sample(classifier_file, flowers_sample, tmp_path):
    out = tmp_path / "metrics.json"
    main(["evaluate", "classifier", "--model", str(classifier_file), "--data", str(flowers_sample), "--out", str(out)])
    metrics = json.loads(out.read_text())
    assert metrics["images"] == 500  # every image counted
    assert sum(c["support"] for c in metrics["per_class"].values()) == 500
    assert {"accuracy", "macro_f1", "per_class"} <= set(metrics)


def test_predict_writes_masks_overlays_and_top_k(unet_file, classifier_file, pets_sample, tmp_path, capsys):
    images = [pets_sample / "images" / "Abyssinian_5.jpg", pets_sample / "images" / "Bengal_101.jpg"]
    main(["predict", "segmentation", "--model", str(unet_file), *map(str, images), "--out-dir", str(tmp_path)])
    mask = np.asarray(Image.open(tmp_path / "Abyssinian_5_mask.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 2}
    assert (tmp_path / "Bengal_101_overlay.png").is_file()
    capsys.readouterr()
    main(["predict", "classifier", "--model", str(classifier_file), str(images[0]), "--top-k", "2"])
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(images[0])) and line.count(",") == 1  # two classes with probabilities


def test_predict_classifier_resizes_a_photo_as_resize_says(tmp_path, capsys):
    """A model that answers dandelion when any input pixel is black: of a white wide photo, only `--resize pad` (black
    bars) makes one; `stretch` and `crop` give the model white only, and five equal classes."""
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(-1.0, offset=1.0),
                              keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(5)])
    kernel = np.zeros((3, 5), np.float32)
    kernel[:, 0] = 10.0  # dandelion, FLOWER_CLASSES[0]
    model.layers[-1].set_weights([kernel, np.zeros(5, np.float32)])
    model.save(tmp_path / "probe.keras")
    Image.fromarray(np.full((40, 80, 3), 255, np.uint8)).save(tmp_path / "wide.png")
    said = {}
    for mode in ("stretch", "crop", "pad"):
        main(["predict", "classifier", "--model", str(tmp_path / "probe.keras"), str(tmp_path / "wide.png"),
              "--top-k", "1", "--resize", mode])
        said[mode] = capsys.readouterr().out.strip()
    assert said["pad"].endswith(": dandelion 1.000"), said
    assert said["stretch"].endswith(" 0.200") and said["crop"].endswith(" 0.200"), said


def test_predict_detection_draws_boxes_only_where_a_flower_wins(tmp_path, capsys):
    from visionflow.classes import FLOWER_CLASSES
    from visionflow.detection.draw import _colour

    image = tmp_path / "scene.png"
    pixels = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(image)
    drawn = {}
    for case, (flower, background) in {"tulips": (0.9, 0.05), "background": (0.05, 0.9)}.items():
        model = tmp_path / f"{case}.keras"
        _background_classifier(model, flower, background)
        main(["predict", "detection", "--model", str(model), str(image), "--out-dir", str(tmp_path / case),
              "--params", str(REPO / "params.yaml")])
        drawn[case] = np.asarray(Image.open(tmp_path / case / "scene_detections.png"))
    capsys.readouterr()
    tulip = np.array(_colour(FLOWER_CLASSES.index("tulips")), np.uint8)
    assert drawn["tulips"].shape == pixels.shape and (drawn["tulips"] != pixels).any(axis=-1).sum() > 100
    assert (drawn["tulips"] == tulip).all(axis=-1).sum() > 100  # boxes in the tulips colour
    np.testing.assert_array_equal(drawn["background"], pixels)  # background wins every window: nothing drawn


def _background_classifier(path, flower, background):
    """A 64-px classifier with background whose every image scores `flower` for tulips and `background`."""
    from visionflow.config import shipped_params
    from visionflow.data.layout import CLASS_NAMES
    from visionflow.models.classifier import build_classifier

    model = build_classifier(shipped_params({"classifier": {"image_size": 64}}).classifier, num_classes=5,
                             background=True)
    probs = np.full(6, (1.0 - flower - background) / 4, np.float32)
    probs[CLASS_NAMES.index("tulips")], probs[5] = flower, background
    logits = model.get_layer("head").layers[-1]
    logits.set_weights([np.zeros_like(logits.get_weights()[0]), np.log(probs)])
    model.save(path)
    return path


def test_background_is_never_reported_as_a_flower(tmp_path, capsys):
    image = tmp_path / "scene.png"
    Image.fromarray((np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)).save(image)
    empty = _background_classifier(tmp_path / "empty.keras", flower=0.3, background=0.6)
    main(["predict", "classifier", "--model", str(empty), str(image), "--top-k", "5"])
    line = capsys.readouterr().out.strip()
    flowers, _, extra = line.split(": ", 1)[1].partition(" (")
    assert [name.split()[0] for name in flowers.split(", ")][0] == "tulips" and len(flowers.split(", ")) == 5
    assert "background" not in flowers and extra == "background 0.600)"
    with pytest.raises(SystemExit):  # five flowers: a sixth "class" is not offered
        main(["predict", "classifier", "--model", str(empty), str(image), "--top-k", "6"])
    assert "from 1 to 5" in capsys.readouterr().err
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["detection"]["score_threshold"] = 0.2
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    main(["predict", "detection", "--model", str(empty), str(image), "--out-dir", str(tmp_path), "--params",
          str(params)])
    assert "0 objects" in capsys.readouterr().out  # tulips (0.3) above the threshold, but background is best
    tulips = _background_classifier(tmp_path / "tulips.keras", flower=0.6, background=0.3)
    main(["predict", "detection", "--model", str(tulips), str(image), "--out-dir", str(tmp_path), "--params",
          str(params)])
    assert "0 objects" not in capsys.readouterr().out


def test_bad_data_folder_is_one_clear_error(unet_file, tmp_path):
    result = subprocess.run([sys.executable, "-m", "visionflow.cli", "evaluate", "segmentation", "--model",
                             str(unet_file), "--data", str(tmp_path / "missing")], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 1
    assert "--data" in result.stderr and "missing" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "visionflow.cli", "predict", "classifier", "--model",
                             str(tmp_path / "none.keras"), "x.jpg"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1 and "--model" in result.stderr
