"""Typed configuration: params.yaml parsed into frozen dataclasses that fail before any work.

`sections` holds one dataclass per params.yaml section, `loading` reads, validates and reports.
"""

from visionflow.config.loading import ConfigError, flatten, load_params, parse_params, to_dict
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
)

__all__ = [
    "AugmentConfig", "ClassifierConfig", "ConfigError", "DataConfig", "DetectionConfig", "EncoderConfig",
    "EvaluationConfig", "FineTuneConfig", "Params", "SegmentationConfig", "SplitFractions", "SyntheticConfig",
    "TrainConfig", "WindowsConfig", "flatten", "load_params", "parse_params", "to_dict",
]
