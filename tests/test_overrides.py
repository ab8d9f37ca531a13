"""configs/*.yaml -> dvc exp run -S flags that DVC applies to exactly the intended config."""

import shutil
import sys

import pytest

from tests.conftest import REPO
from visionflow.config import ConfigError, load_params, parse_params, to_dict
from visionflow.overrides import merge, overrides

sys.path.insert(0, str(REPO / "scripts"))


def test_flags_applied_by_dvc_give_the_merged_config(tmp_path):
    import yaml
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_overrides(str(params), overrides(REPO / "configs/real.yaml", params))
    expected = parse_params(merge(to_dict(load_params(REPO / "params.yaml")),
                                  yaml.safe_load((REPO / "configs/real.yaml").read_text())))
    assert load_params(params) == expected
    assert expected.segmentation.encoder.weights == "imagenet"


def test_invalid_settings_file_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("segmentation:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match="segmentation.epoch"):
        overrides(bad, REPO / "params.yaml")


# What the cross-validated comparison in the README found on top of configs/real-base.yaml.
WINNING = {"data": {"flowers_split": {"train": 0.89, "val": 0.01, "test": 0.1}},
           "segmentation": {"image_size": 224, "dice_weight": 1.0, "epochs": 20},
           "classifier": {"image_size": 224, "epochs": 20, "encoder": {"trainable": True}, "head_init": "linear_probe",
                          "probe_c": 0.01, "head_refit": True, "head_refit_pretrained": True,
                          "learning_rate": 0.0002},
           "evaluation": {"test_time_flip": True, "classifier_scales": [1.0, 1.15, 1.3]}}


def test_shipped_real_settings_are_the_base_plus_what_won():
    import yaml

    base = to_dict(load_params(REPO / "params.yaml"))
    real = parse_params(merge(base, yaml.safe_load((REPO / "configs/real.yaml").read_text())))
    start = merge(base, yaml.safe_load((REPO / "configs/real-base.yaml").read_text()))
    assert parse_params(merge(start, WINNING)) == real


@pytest.mark.parametrize("size, sides", [(224, [224, 256, 288]), (160, [160, 192, 208]), (128, [128, 144, 160]),
                                         (96, [96, 112, 128])])
def test_shipped_test_scales_hold_at_smaller_classifier_inputs(size, sides):
    """configs/real.yaml's classifier_scales at 224 px are the sides the README's sweeps scored, and a smaller
    classifier.image_size (`-S classifier.image_size=128`, as the short real-data test runs) still gives three
    distinct sides rather than a refused setting."""
    import yaml

    from visionflow.config import scaled_side

    base = to_dict(load_params(REPO / "params.yaml"))
    real = merge(base, yaml.safe_load((REPO / "configs/real.yaml").read_text()))
    params = parse_params(merge(real, {"classifier": {"image_size": size}}))
    assert [scaled_side(size, scale) for scale in params.evaluation.classifier_scales] == sides
