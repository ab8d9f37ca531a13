"""The op registry: the shipped params validate; every bad op is named by position, op and argument."""

from __future__ import annotations

import subprocess
import sys

import pytest

from visionflow.augment.spec import OPS, allowed_ops, resolve, validate_ops
from visionflow.config import ConfigError, load_params, parse_params, to_dict
from tests.conftest import REPO


def test_shipped_params_validate_for_both_placements():
    params = load_params(REPO / "params.yaml")
    validate_ops(params.augment.classifier, "classifier", placement="model")
    validate_ops(params.augment.classifier, "classifier", placement="dataset")
    validate_ops(params.augment.segmentation, "segmentation")
    assert [op["op"] for op in params.augment.classifier] == ["random_flip", "random_rotation"]


@pytest.mark.parametrize(
    "ops, kind, message",
    [
        ([{"op": "random_flip"}, {"op": "random_rotation", "factor": 2.0}], "classifier",
         "[1] random_rotation: factor=2.0 out of range (expected 0 < factor <= 0.5)"),
        ([{"op": "random_rotation", "factor": 0.0}], "classifier",
         "[0] random_rotation: factor=0.0 out of range (expected 0 < factor <= 0.5)"),
        ([{"op": "random_flp"}], "classifier", "[0] random_flp: unknown op (known: resizing, rescaling, random_flip"),
        ([{"op": "zoom", "factor": 0.1}, {"op": "hue", "max_delta": 0.1}, {"op": "flip", "mod": "horizontal"}],
         "segmentation", "[2] flip: unknown argument 'mod' (allowed: mode)"),
        ([{"op": "rotate", "factor": "0.1"}], "segmentation",
         "[0] rotate: factor='0.1' has the wrong type (expected float: 0 < factor <= 0.5)"),
        ([{"op": "random_flip", "mode": True}], "classifier", "[0] random_flip: mode=True has the wrong type"),
        ([{"op": "jpeg_quality", "min_quality": 50.5, "max_quality": 90}], "segmentation",
         "[0] jpeg_quality: min_quality=50.5 has the wrong type (expected int: 0 <= min_quality <= 100)"),
        ([{"op": "random_invert", "probability": 0.5}], "segmentation",
         "[0] random_invert: not allowed for segmentation (allowed: flip, rot90, rotate"),
        ([{"op": "flip", "mode": "diagonal"}], "segmentation",
         "[0] flip: mode='diagonal' not allowed (expected mode one of horizontal, vertical, horizontal_and_vertical)"),
        ([{"op": "rotate"}], "segmentation", "[0] rotate: missing argument 'factor' (expected 0 < factor <= 0.5)"),
        ([{"op": "contrast", "lower": 1.2, "upper": 0.8}], "segmentation",
         "[0] contrast: lower=1.2 must be < upper=0.8"),
        ([{"op": "rescaling", "scale": 2.0, "offset": -1.0}, {"op": "random_flip"}], "classifier",
         "[0] rescaling: must be the last op"),
        ([{"mode": "horizontal"}], "classifier", "[0]: expected a mapping with an 'op' key"),
    ],
)
def test_bad_ops_are_named(ops, kind, message):
    with pytest.raises(ValueError) as err:
        validate_ops(ops, kind)
    assert str(err.value).startswith(message), str(err.value)


def test_placement_model_accepts_only_keras_layer_ops():
    ops = [{"op": "random_flip"}, {"op": "saturation", "lower": 0.5, "upper": 1.5}]
    validate_ops(ops, "classifier", placement="dataset")
    with pytest.raises(ValueError, match=r"^\[1\] saturation: not allowed for classifier with placement=model "
                                         r"\(Keras-layer ops only\) \(allowed: resizing, rescaling, random_flip"):
        validate_ops(ops, "classifier", placement="model")
    assert all(OPS[name].keras_layer for name in allowed_ops("classifier", "model"))


def test_a_list_is_required_and_kinds_are_checked():
    with pytest.raises(ValueError, match="expected a list of ops"):
        validate_ops({"op": "flip"}, "segmentation")
    with pytest.raises(ValueError, match="kind='detector' unknown"):
        validate_ops([], "detector")


def test_yaml_ints_are_accepted_for_floats_and_defaults_fill_in():
    validate_ops([{"op": "random_contrast", "factor": 1}], "classifier")
    assert resolve({"op": "random_rotation", "factor": 0.1}) == {
        "factor": 0.1, "fill_mode": "reflect", "fill_value": 0.0, "interpolation": "bilinear"}


def test_config_prefixes_the_section(small_params):
    raw = to_dict(small_params)
    raw["augment"]["segmentation"] = [{"op": "flip"}, {"op": "random_rotation", "factor": 0.1}]
    with pytest.raises(ConfigError, match=r"^augment\.segmentation: \[1\] random_rotation: not allowed for "
                                          r"segmentation"):
        parse_params(raw)


def test_every_registered_op_is_documented_and_has_a_kind():
    for name, op in OPS.items():
        assert op.doc and op.kinds, name
        assert op.kinds <= {"classifier", "segmentation"}, name


def test_spec_and_config_do_not_import_tensorflow():
    code = ("import sys; import visionflow.config, visionflow.augment.spec; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
