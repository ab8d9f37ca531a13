"""`dvc exp run` with a settings file and extra `-S` flags, checked before DVC starts any stage.

    python -m visionflow.experiment configs/real.yaml [DVC EXP RUN ARGS ...]
    python -m visionflow.experiment --check     (params.yaml as it is: what `make run` checks before `dvc repro`)

`make run-real` calls this. The settings file becomes `-S key=value` flags (Hydra override syntax) passed to
DVC as an argument list, so no shell re-splits them. Before DVC runs anything, every flag (the file's, then the
caller's, later ones winning as in DVC) is applied to a copy of params.yaml with DVC's own override parser and
the result is validated; a `data.source: directory` folder, the ImageNet weight files the settings ask for and
the TFDS download host are checked too. A bad input stops here with one line, before DVC deletes any output.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from visionflow import tracking
from visionflow.config import ConfigError, Params, parse_params, read_yaml
from visionflow.overrides import overrides

_SET_PARAM = ("-S", "--set-param")


def split_set_params(args: list[str]) -> tuple[list[str], list[str]]:
    """(the values of every -S/--set-param, the other arguments in order)."""
    values, rest = [], []
    items = iter(args)
    for arg in items:
        if arg in _SET_PARAM:
            value = next(items, None)
            if value is None:
                raise ConfigError(f"{arg}: needs a value, as in {arg} segmentation.epochs=2")
            values.append(value)
        elif arg.startswith("--set-param="):
            values.append(arg.split("=", 1)[1])
        elif arg.startswith("-S") and len(arg) > 2:
            values.append(arg[2:])
        else:
            rest.append(arg)
    return values, rest


def apply(params_file: Path, set_params: list[str], label: str) -> Params:
    """params.yaml with `set_params` applied by DVC's override parser, validated (errors name `label`)."""
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory(prefix="visionflow-params-") as tmp:
        copy = Path(tmp) / "params.yaml"
        shutil.copy(params_file, copy)
        for value in set_params:  # one at a time, so an error names the flag
            try:
                apply_overrides(str(copy), [value])
            except ValueError as exc:  # dvc's InvalidArgumentError; Hydra's reason is its cause
                reason = str(exc.__cause__ or exc).splitlines()[0]
                if "Could not override" in reason:
                    reason = "no such key in params.yaml (check the spelling; see params.yaml for every key)"
                raise ConfigError(f"-S {value}: {reason}") from None
        return parse_params(read_yaml(copy.read_text()), source=label)


def preflight(params: Params) -> None:
    """What the stages would only find out after DVC has started: folders, weights, the network."""
    from visionflow.data.sources import TFDS_NAMES, local_dir, probe
    from visionflow.keras_cache import check_weights

    if params.data.source == "directory":
        for dataset in TFDS_NAMES:
            local_dir(params, dataset)
        from visionflow.data.layout import check_layout, parse_folder  # folders, list files, class folders

        check_layout(local_dir(params, "pets"))
        parse_folder(local_dir(params, "flowers"))
    elif params.data.source == "tfds":
        for name in TFDS_NAMES.values():
            probe(name, timeout_s=5.0)
    check_weights(params)


def command(settings: Path, args: list[str], params_file: Path = Path("params.yaml")) -> list[str]:
    """The checked `dvc exp run` argv for `settings` plus the caller's arguments."""
    if not settings.is_file():
        raise ConfigError(f"{settings}: settings file not found (the shipped one is configs/real.yaml)")
    set_params, rest = split_set_params(args)
    flags = [*overrides(settings, params_file), *set_params]
    params = apply(params_file, flags, label=f"{params_file} + {settings} + -S flags")
    preflight(params)
    tracking.check_store()
    if params.data.source == "directory":  # so DVC reruns a preparation when files inside a folder change
        from visionflow.data.sources import folder_digest, local_dir

        flags += [f"data.{name}_digest={folder_digest(local_dir(params, name))}" for name in ("pets", "flowers")]
    return [sys.executable, "-m", "dvc", "exp", "run", *rest, *(arg for flag in flags for arg in ("-S", flag))]


def check(params_file: Path = Path("params.yaml")) -> None:
    """Validate params.yaml, run the preflight and check the MLflow store: what `make run` does before DVC."""
    from visionflow.config import load_params

    from visionflow.data.sources import check_digest

    params = load_params(params_file)
    preflight(params)
    for dataset in ("pets", "flowers"):  # a digest that no longer matches its folder
        check_digest(params, dataset)
    tracking.check_store()


def main(argv: list[str] | None = None) -> None:
    """Check, then replace this process with `dvc exp run`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if args else 2)
    if args[0] == "--check":
        try:
            check(*map(Path, args[1:2]))
        except ValueError as exc:
            sys.exit(f"error: {exc}")
        return
    try:
        argv_ = command(Path(args[0]), args[1:])
    except ValueError as exc:  # ConfigError, DataSourceError, a missing weight file
        sys.exit(f"error: {exc}")
    print("dvc exp run " + " ".join(argv_[5:]), flush=True)
    os.execv(sys.executable, argv_)


if __name__ == "__main__":
    main()
