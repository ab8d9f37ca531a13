"""Reading and validating params.yaml: one message naming every bad key, before any work."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import TypeAdapter, ValidationError

from visionflow.config.sections import Params


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown, mistyped or out of range."""


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 does: `1e-3` and `5e-05` are numbers, not text. DVC
    (ruamel.yaml) reads params.yaml that way, and writes `dvc exp run -S key=0.00005` into it as `5e-05`."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),  # what YAML 1.1 left as text
    list("-+0123456789."),
)


def read_yaml(stream) -> Any:
    """A YAML document (text or an open file) with YAML 1.2 floats, as DVC reads params files."""
    return yaml.load(stream, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


_ADAPTER = TypeAdapter(Params)
# The repository's params.yaml, beside the package: the values every run, test and benchmark starts from.
SHIPPED_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _format(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid parameters"]
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] in {"missing", "missing_keyword_argument"}:  # no field has a default
            lines.append(f"  {key}: missing; add it (every key is required: copy it from the params.yaml shipped "
                         "with visionflow)")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "unexpected_keyword_argument":
            msg = "unknown key (check its spelling against the params.yaml shipped with visionflow)"
        if err["type"] == "value_error":  # a cross-field check: its message names the keys
            lines.append(f"  {key + ': ' if key else ''}{msg}")
        else:
            lines.append(f"  {key}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)


def _check_augment(params: Params) -> None:
    from visionflow.augment.spec import validate_ops  # pure Python, no TensorFlow import

    for kind in ("classifier", "segmentation"):
        ops = getattr(params.augment, kind)
        try:
            validate_ops(ops, kind=kind, placement=params.augment.placement if kind == "classifier" else None)
        except ValueError as exc:
            raise ConfigError(f"augment.{kind}: {exc}") from None


def parse_params(raw: dict[str, Any] | None, source: str = "params") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    try:
        params = _ADAPTER.validate_json(json.dumps(raw or {}), strict=True)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None
    except TypeError as exc:  # values YAML can hold but JSON cannot (dates, sets)
        raise ConfigError(f"{source}: {exc}") from None
    _check_augment(params)
    return params


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        raise ConfigError(f"{path}: not found (run from the repository root or pass --params)")
    with path.open() as f:
        try:
            raw = read_yaml(f)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{where}: {what}; fix the syntax there "
                              "(compare with the params.yaml shipped with visionflow)") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (seed:, data:, segmentation: ...) at the top "
                          f"level, got a {type(raw).__name__}")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    return parse_params(_read(path), source=str(path))


def merge(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict update; lists and scalars are replaced."""
    out = dict(base)
    for key, value in change.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merge(out[key], value) if nested else value
    return out


def shipped_params(overrides: Mapping[str, Any] | None = None) -> Params:
    """The repository's params.yaml with `overrides` (a partial params mapping) merged on top, validated."""
    if not SHIPPED_PARAMS.is_file():
        raise ConfigError(f"{SHIPPED_PARAMS}: not found (the repository's params.yaml beside visionflow/: install "
                          "the repository with `pip install -e .`)")
    raw = _read(SHIPPED_PARAMS) or {}
    source = SHIPPED_PARAMS.name + (" + overrides" if overrides else "")
    return parse_params(merge(raw, overrides or {}), source=source)


def to_dict(params: Any) -> dict[str, Any]:
    """Plain nested dict of a config (for logging)."""
    return dataclasses.asdict(params)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`, for MLflow params and `dvc exp run -S` flags."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out
