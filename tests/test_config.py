"""params.yaml -> frozen dataclasses: every shipped config loads, every key is required, and bad values fail naming
the key."""

import dataclasses
import json
import re
import typing

import pytest
import yaml

from tests.conftest import REPO
from visionflow.config import (
    ConfigError,
    FineTuneConfig,
    Params,
    SplitFractions,
    WindowsConfig,
    flatten,
    load_params,
    merge,
    parse_params,
    shipped_params,
    to_dict,
)

SHIPPED = yaml.safe_load((REPO / "params.yaml").read_text())
OVERLAYS = sorted((REPO / "configs").glob("*.yaml"))


def test_shipped_params_load_with_seed_on_top():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)
    assert next(iter(yaml.safe_load((REPO / "params.yaml").read_text()))) == "seed"
    assert params.data.source == "synthetic"
    assert params.segmentation.encoder.weights is None  # the default path needs no download


def test_the_overlays_are_found():
    assert {"real.yaml", "real-base.yaml"} <= {path.name for path in OVERLAYS}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.name)
def test_every_shipped_overlay_validates_on_top_of_params_yaml(overlay):
    # As `make run-real` / `make sweep SETTINGS=...` apply it: its leaves become -S flags that DVC's override
    # parser applies to a copy of params.yaml, and the result is validated.
    from visionflow.experiment import apply
    from visionflow.overrides import overrides

    params = apply(REPO / "params.yaml", overrides(overlay, REPO / "params.yaml"), label=overlay.name)
    assert isinstance(params, Params)
    got = json.loads(json.dumps(flatten(to_dict(params))))  # tuples as lists, as YAML has them
    for key, value in flatten(yaml.safe_load(overlay.read_text())).items():
        assert got[key] == value, key


def _without(raw: dict, key: str) -> dict:
    out = merge(raw, {})
    *sections, last = key.split(".")
    inner = out
    for section in sections:
        inner[section] = dict(inner[section])
        inner = inner[section]
    del inner[last]
    return out


@pytest.mark.parametrize("key", [*SHIPPED, *flatten(SHIPPED)])
def test_every_key_is_required_and_a_missing_one_is_named(key):
    # The dataclasses have no defaults: params.yaml is the one place values live.
    with pytest.raises(ConfigError) as err:
        parse_params(_without(SHIPPED, key), source="params.yaml")
    lines = str(err.value).splitlines()
    assert lines == ["params.yaml: invalid parameters",
                     f"  {key}: missing; add it (every key is required: copy it from the params.yaml shipped with "
                     "visionflow)"]


def test_no_config_field_has_a_default():
    todo, seen = [Params], set()
    while todo:
        cls = todo.pop()
        seen.add(cls)
        types = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, (
                f"{cls.__name__}.{field.name}: a default in code; its value belongs in params.yaml")
            if dataclasses.is_dataclass(types[field.name]) and types[field.name] not in seen:
                todo.append(types[field.name])
    assert {SplitFractions, FineTuneConfig, WindowsConfig} <= seen  # the walk reaches the subsections


def test_an_unknown_key_in_params_yaml_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(merge(SHIPPED, {"segmentation": {"fine_tune": {"epoch": 2}}, "tracking": {}}),
                                   sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: invalid parameters"
    assert sorted(lines[1:]) == [
        "  segmentation.fine_tune.epoch: unknown key (check its spelling against the params.yaml shipped with "
        "visionflow) (got 2)",
        "  tracking: unknown key (check its spelling against the params.yaml shipped with visionflow) (got {})"]


def test_shipped_params_merges_onto_params_yaml_and_round_trips():
    params = load_params(REPO / "params.yaml")
    assert shipped_params() == params and parse_params(to_dict(params)) == params
    changed = shipped_params({"segmentation": {"encoder": {"alpha": 0.5}}, "classifier": {"filters": [8, 16]}})
    assert changed.segmentation.encoder == dataclasses.replace(params.segmentation.encoder, alpha=0.5)
    assert changed.classifier.filters == (8, 16)
    assert dataclasses.replace(changed, segmentation=params.segmentation,
                               classifier=params.classifier) == params  # nothing else moved


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
        ({"segmentation": {"learning_rate": "fast"}}, "segmentation.learning_rate", "valid number"),
        ({"segmentation": {"image_size": 100}}, "segmentation.image_size", "multiple of 32"),
        ({"segmentation": {"encoder": {"weights": "imagenet21k"}}}, "segmentation.encoder.weights", "imagenet"),
        ({"data": {"source": "s3"}}, "data.source", "synthetic"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction", "less than 1"),
        ({"data": {"flowers_split": {"train": 0.5, "val": 0.1, "test": 0.1}}}, "data.flowers_split", "sum to 1"),
        ({"data": {"flowers_resize": "squash"}}, "data.flowers_resize", "'stretch', 'crop' or 'pad'"),
        ({"seed": True}, "seed", "valid integer"),
        ({"detection": {"stride": 0}}, "detection.stride", "greater than 0"),
        ({"classifier": {"image_size": 600}}, "detection", "classifier.image_size=600"),
        ({"augment": {"placement": "gpu"}}, "augment.placement", "model"),
        ({"segmentation": {"fine_tune": {"epochs": 2}}}, "segmentation", "encoder.trainable: false"),
        ({"segmentation": {"encoder": {"trainable": False}, "epochs": 4, "fine_tune": {"epochs": 4}}}, "segmentation",
         "must be below segmentation.epochs (4)"),
        ({"classifier": {"fine_tune": {"epochs": 2}}}, "classifier", "backbone: mobilenet_v2"),
        ({"classifier": {"head_init": "linear_probe"}}, "classifier", "head_init: linear_probe needs classifier.backbone"),
        ({"classifier": {"head_init": "probe"}}, "classifier.head_init", "linear_probe"),
        ({"classifier": {"probe_c": 0}}, "classifier.probe_c", "greater than 0"),
        ({"classifier": {"head_refit": True}}, "classifier", "head_refit: true needs classifier.backbone"),
        ({"classifier": {"backbone": "mobilenet_v2", "wise_alpha": 0.5}}, "classifier",
         "wise_alpha: 0.5 needs classifier.head_init: linear_probe"),
        ({"classifier": {"wise_alpha": 0}}, "classifier.wise_alpha", "greater than 0"),
        ({"classifier": {"backbone": "mobilenet_v2", "head_refit_pretrained": True}}, "classifier",
         "head_refit_pretrained: true needs classifier.head_refit: true"),
        ({"classifier": {"backbone": "mobilenet_v2", "head_refit": True, "head_refit_pretrained": True}}, "classifier",
         "head_refit_pretrained: true needs classifier.encoder.weights: imagenet"),
        ({"classifier": {"backbone": "mobilenet_v2", "encoder": {"trainable": False}, "epochs": 3,
                         "fine_tune": {"epochs": 4}, "head_init": "linear_probe"}}, "classifier",
         "must be at most classifier.epochs (3)"),
        ({"segmentation": {"fine_tune": {"from_block": 17}}}, "segmentation.fine_tune.from_block", "less than or equal"),
        ({"classifier": {"label_smoothing": 1.0}}, "classifier.label_smoothing", "less than 1"),
        ({"classifier": {"weight_ema": 1.0}}, "classifier.weight_ema", "less than 1"),
        ({"classifier": {"layer_decay": 0}}, "classifier.layer_decay", "greater than 0"),
        ({"classifier": {"layer_decay": 1.5}}, "classifier.layer_decay", "less than or equal to 1"),
        ({"classifier": {"layer_decay": 0.8}}, "classifier", "layer_decay: 0.8 needs classifier.backbone: mobilenet_v2"),
        ({"classifier": {"backbone": "mobilenet_v2", "optimizer": "sgd", "layer_decay": 0.8}}, "classifier",
         "layer_decay: 0.8 needs classifier.optimizer: adam"),
        ({"classifier": {"sam_rho": -0.05}}, "classifier.sam_rho", "greater than or equal to 0"),
        ({"classifier": {"sam_rho": 0.05}, "train": {"distribution": "multi_worker"}}, "classifier.sam_rho",
         "trains on one device"),
        ({"classifier": {"optimizer": "rmsprop"}}, "classifier.optimizer", "'adam' or 'sgd'"),
        ({"classifier": {"momentum": 1.0}}, "classifier.momentum", "less than 1"),
        ({"segmentation": {"dice_weight": -1}}, "segmentation.dice_weight", "greater than or equal to 0"),
        ({"evaluation": {"test_time_flip": "sometimes"}}, "evaluation.test_time_flip", "valid boolean"),
        ({"evaluation": {"classifier_crops": []}}, "evaluation.classifier_crops", "at least 1 item"),
        ({"evaluation": {"classifier_crops": [1.0, 1.2]}}, "evaluation.classifier_crops.1", "less than or equal to 1"),
        ({"evaluation": {"classifier_crops": [1.0, 0.875, 1.0]}}, "evaluation",
         "classifier_crops [1.0, 0.875, 1.0] repeats a crop; list each once"),
        ({"evaluation": {"classifier_scales": [1.0, 4.5]}}, "evaluation.classifier_scales.1",
         "less than or equal to 4"),
        ({"classifier": {"backbone": "mobilenet_v2"}, "evaluation": {"classifier_scales": [1.0, 1.3, 1.0]}},
         "evaluation", "classifier_scales [1.0, 1.3, 1.0] repeats a scale; list each once"),
        ({"evaluation": {"classifier_scales": [1.0, 1.5]}}, "evaluation.classifier_scales",
         "[1.0, 1.5] needs classifier.backbone: mobilenet_v2 (the small_cnn head flattens"),
        ({"classifier": {"backbone": "mobilenet_v2", "image_size": 224},
          "evaluation": {"classifier_scales": [1.0, 1.15, 1.16]}}, "evaluation.classifier_scales",
         "give the sides [224, 256, 256] at classifier.image_size 224"),
        ({"classifier": {"windows": {"canvases": -1}}}, "classifier.windows.canvases", "greater than or equal to 0"),
        ({"classifier": {"windows": {"partial_iou": 0.6}}}, "classifier.windows", "must be below object_iou (0.6)"),
        ({"classifier": {"windows": {"canvases": 5, "objects": 0, "background": 0, "partial": 0}}},
         "classifier.windows", "give some windows per canvas"),
        ({"classifier": {"windows": {"window": 3}}}, "classifier.windows.window", "unknown key"),
        ({"detection": {"max_object_overlap": 1.0}}, "detection.max_object_overlap", "less than 1"),
        ({"segmentation": {"decoder_filters": [512, 256, 128]}}, "segmentation.decoder_filters", "at least 4 items"),
        ({"segmentation": {"decoder_filters": [512, 256, 0, 64]}}, "segmentation.decoder_filters.2", "greater than 0"),
        ({"segmentation": {"decoder_init_std": 0}}, "segmentation.decoder_init_std", "greater than 0"),
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


@pytest.mark.parametrize("typed, value", [("1e-3", 0.001), ("5e-05", 5e-05), ("1.0e-3", 0.001), ("0.0003", 0.0003)])
def test_exponent_floats_in_params_yaml_are_numbers_as_dvc_reads_them(tmp_path, typed, value):
    text = (REPO / "params.yaml").read_text()
    edited, n = re.subn(r"(?m)^(segmentation:\n(?:  .*\n)*?  learning_rate: )\S+", rf"\g<1>{typed}", text)
    assert n == 1
    (tmp_path / "params.yaml").write_text(edited)
    assert load_params(tmp_path / "params.yaml").segmentation.learning_rate == value


def test_a_small_rate_set_with_dash_s_is_still_a_number_after_dvc_writes_it():
    """DVC's override writer puts 0.00005 into params.yaml as `5e-05` (YAML 1.2), which YAML 1.1 reads as text."""
    from visionflow.experiment import apply

    params = apply(REPO / "params.yaml", ["classifier.learning_rate=0.00005"], label="test")
    assert params.classifier.learning_rate == 5e-05
