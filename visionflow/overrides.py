"""Turn a partial params file into `dvc exp run -S key=value` values (Hydra override syntax).

A named set of settings (the real-data defaults) lives in one reviewed file, validated like params.yaml;
`visionflow.experiment` passes these values to DVC as separate arguments (no shell quoting involved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionflow.config import flatten, load_params, merge, parse_params, read_yaml, to_dict


def _value(value: Any) -> str:
    # Hydra's grammar: lists [a,b], dicts {k:v}, null, true/false, bare numbers and words.
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def overrides(path: Path, params: Path = Path("params.yaml")) -> list[str]:
    """`key=value` strings for every leaf of `path`, after checking that params + them is a valid config."""
    change = read_yaml(Path(path).read_text()) or {}
    parse_params(merge(to_dict(load_params(params)), change), source=str(path))
    return [f"{key}={_value(value)}" for key, value in flatten(change).items()]
