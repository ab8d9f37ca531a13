"""Typed configuration: params.yaml parsed into frozen dataclasses that fail before any work.

`sections` holds one dataclass per params.yaml section (no defaults: params.yaml is their one source), `loading`
reads, validates and reports; `shipped_params(overrides)` is the repository's params.yaml with a few changes.
"""

from visionflow.config.loading import (
    SHIPPED_PARAMS,
    ConfigError,
    flatten,
    load_params,
    merge,
    parse_params,
    read_yaml,
    shipped_params,
    to_dict,
)
from visionflow.config.sections import (
    AugmentConfig,
    ClassifierConfig,
    DataConfig,
    DetectionConfig,
    EncoderConfig,
    EvaluationConfig,
    FineTuneConfig,
    Params,
    SegmentationConfig,
    SplitFractions,
    SyntheticConfig,
    TrainConfig,
    WindowsConfig,
    scaled_side,
)

__all__ = [
    "AugmentConfig", "ClassifierConfig", "ConfigError", "DataConfig", "DetectionConfig", "EncoderConfig",
    "EvaluationConfig", "FineTuneConfig", "Params", "SegmentationConfig", "SplitFractions", "SyntheticConfig",
    "SHIPPED_PARAMS", "TrainConfig", "WindowsConfig", "flatten", "load_params", "merge", "parse_params",
    "scaled_side", "shipped_params", "to_dict",
]
