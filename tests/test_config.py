"""params.yaml -> frozen dataclasses: the shipped file loads, and bad values fail naming the key."""

import dataclasses

import pytest
import yaml

from tests.conftest import REPO
from visionflow.config import ConfigError, Params, load_params, parse_params, shipped_params, to_dict


def test_shipped_params_load_with_seed_on_top():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)
    assert next(iter(yaml.safe_load((REPO / "params.yaml").read_text()))) == "seed"
    assert params.data.source == "synthetic"
    assert params.segmentation.encoder.weights is None  # the default path needs no download


def test_shipped_params_equal_code_defaults_where_documented():
    # Every key of params.yaml is a field: round-tripping through to_dict changes nothing.
    params = load_params(REPO / "params.yaml")
    assert parse_params(to_dict(params)) == params


def test_config_is_frozen():
    params = shipped_params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw, key, words",
    [
        ({"segmentaton": {}}, "segmentaton", "unknown key"),
        ({"segmentation": {"epoch": 3}}, "segmentation.epoch", "unknown key"),
        ({"segmentation": {"epochs": "ten"}}, "segmentation.epochs", "valid integer"),
        ({"segmentation": {"epochs": 0}}, "segmentation.epochs", "greater than or equal to 1"),
        ({"segmentation": {"learning_rate": "1e-3"}}, "segmentation.learning_rate", "write 0.001"),
        ({"segmentation": {"image_size": 100}}, "segmentation.image_size", "multiple of 32"),
        ({"segmentation": {"encoder": {"weights": "imagenet21k"}}}, "segmentation.encoder.weights", "imagenet"),
        ({"data": {"source": "s3"}}, "data.source", "synthetic"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction", "less than 1"),
        ({"data": {"flowers_split": {"train": 0.5, "val": 0.1, "test": 0.1}}}, "data.flowers_split", "sum to 1"),
        ({"seed": True}, "seed", "valid integer"),
        ({"detection": {"stride": 0}}, "detection.stride", "greater than 0"),
        ({"classifier": {"image_size": 600}}, "detection", "classifier.image_size=600"),
        ({"augment": {"placement": "gpu"}}, "augment.placement", "model"),
        ({"segmentation": {"fine_tune": {"epochs": 2}}}, "segmentation", "encoder.trainable: false"),
        ({"segmentation": {"encoder": {"trainable": False}, "epochs": 4, "fine_tune": {"epochs": 4}}}, "segmentation",
         "must be below segmentation.epochs (4)"),
        ({"classifier": {"fine_tune": {"epochs": 2}}}, "classifier", "backbone: mobilenet_v2"),
        ({"segmentation": {"fine_tune": {"from_block": 17}}}, "segmentation.fine_tune.from_block", "less than or equal"),
        ({"classifier": {"label_smoothing": 1.0}}, "classifier.label_smoothing", "less than 1"),
        ({"segmentation": {"dice_weight": -1}}, "segmentation.dice_weight", "greater than or equal to 0"),
        ({"evaluation": {"test_time_flip": "sometimes"}}, "evaluation.test_time_flip", "valid boolean"),
        ({"classifier": {"windows": {"canvases": -1}}}, "classifier.windows.canvases", "greater than or equal to 0"),
        ({"classifier": {"windows": {"partial_iou": 0.6}}}, "classifier.windows", "must be below object_iou (0.6)"),
        ({"classifier": {"windows": {"canvases": 5, "objects": 0, "background": 0, "partial": 0}}},
         "classifier.windows", "give some windows per canvas"),
        ({"classifier": {"windows": {"window": 3}}}, "classifier.windows.window", "unknown key"),
        ({"detection": {"max_object_overlap": 1.0}}, "detection.max_object_overlap", "less than 1"),
    ],
)
def test_bad_values_fail_naming_the_key(raw, key, words):
    with pytest.raises(ConfigError) as err:
        shipped_params(raw)
    message = str(err.value)
    assert f"  {key}" in message or message.startswith(key), message
    assert words in message, message


def test_bad_augment_op_names_the_op():
    with pytest.raises(ConfigError, match=r"augment.classifier: \[0\] random_rotation"):
        shipped_params({"augment": {"classifier": [{"op": "random_rotation", "factor": 3.0}]}})
    with pytest.raises(ConfigError, match="augment.segmentation"):
        shipped_params({"augment": {"segmentation": [{"op": "no_such_op"}]}})


def test_load_params_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(bad)


def test_a_fold_outside_the_folds_is_refused():
    with pytest.raises(ConfigError, match=r"data.fold: 3 is not a fold of data.folds: 3 \(folds count from 0"):
        shipped_params({"data": {"folds": 3, "fold": 3}})
