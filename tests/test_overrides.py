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


def test_comparison_ladder_ends_at_the_shipped_real_settings():
    # The README's table climbs from the reference to configs/real.yaml: keep the two in step.
    import yaml
    from compare_reference import CLASSIFIER, SEGMENTATION

    base = to_dict(load_params(REPO / "params.yaml"))
    real = parse_params(merge(base, yaml.safe_load((REPO / "configs/real.yaml").read_text())))
    raw = base
    for change in [*SEGMENTATION.values(), *CLASSIFIER.values()]:
        raw = merge(raw, change)
    climbed = parse_params(merge(raw, {"segmentation": {"epochs": real.segmentation.epochs},
                                       "classifier": {"epochs": real.classifier.epochs}}))
    assert climbed.segmentation == real.segmentation
    assert climbed.augment.segmentation == real.augment.segmentation
    assert climbed.classifier == real.classifier
    assert climbed.augment == real.augment
