"""Turn a partial params file into `dvc exp run -S key=value` flags (Hydra override syntax).

    dvc exp run $(python -m visionflow.overrides configs/real.yaml)

so a named set of settings (the real-data defaults) lives in one reviewed file, validated like params.yaml.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from visionflow.config import ConfigError, flatten, load_params, parse_params, to_dict


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


def merge(base: dict, change: dict) -> dict:
    """Recursive dict update; lists and scalars are replaced."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def overrides(path: Path, params: Path = Path("params.yaml")) -> list[str]:
    """`key=value` strings for every leaf of `path`, after checking that params + them is a valid config."""
    change = yaml.safe_load(Path(path).read_text()) or {}
    parse_params(merge(to_dict(load_params(params)), change), source=str(path))
    return [f"{key}={_value(value)}" for key, value in flatten(change).items()]


def main(argv: list[str] | None = None) -> None:
    """Print `-S 'key=value'` flags for dvc exp run."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.exit("usage: python -m visionflow.overrides SETTINGS.yaml")
    try:
        print(" ".join(f"-S {shlex.quote(item)}" for item in overrides(Path(args[0]))))
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
