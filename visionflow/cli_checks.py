"""What the `visionflow` command line checks in what it is given, each failure one line naming the input and the fix.

Option ranges are checked while parsing, output paths, model files and image paths before TensorFlow is even
imported (so a wrong `--out` costs nothing), and the task a model was built for right after loading it.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path
from typing import Callable

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_EXAMPLE = {"classifier": "models/classifier.keras", "segmentation": "models/segmentation.keras",
            "detection": "models/classifier.keras"}
_NOUN = {"classifier": "classifier", "segmentation": "segmentation model"}


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one `error:` line (exit status 2) that points to --help."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type=` accepting whole numbers from `low` to `high` (no upper bound when None)."""
    wanted = f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"got {value}; pass {wanted}")
        return value

    return parse


def before_loading(args: argparse.Namespace) -> None:
    """The checks that need no model: the model file, the output paths and the image paths."""
    check_model_file(args.model)
    if getattr(args, "out", None) is not None:
        check_out_file(args.out, "--out")
    if getattr(args, "out_dir", None) is not None:
        check_out_dir(args.out_dir, "--out-dir")
    for path in getattr(args, "images", None) or ():
        if path.is_dir():
            raise ValueError(f"{path}: is a folder; pass the image files in it (e.g. {path}/*.jpg)")
        if not path.exists():
            raise ValueError(f"{path}: image not found; check the path")


def check_model_file(path: Path) -> None:
    """A file Keras can open as a model: a .keras zip with a config.json, or an HDF5 .h5."""
    example = "models/classifier.keras or models/segmentation.keras"
    if path.is_dir():
        raise ValueError(f"--model {path}: is a folder; pass a .keras file, e.g. {example}")
    if not path.is_file():
        raise FileNotFoundError(f"--model {path}: not found; train it with `dvc repro` or pass a .keras file")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"--model {path}: not a Keras model (a .keras file is a zip archive, this file is "
                             f"not); pass a model saved by the pipeline, e.g. {example}")
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ValueError(f"--model {path}: a zip archive but not a Keras model (no config.json in it); "
                                 f"pass a model saved by the pipeline, e.g. {example}")
    elif suffix in (".h5", ".hdf5"):
        with path.open("rb") as f:
            if f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
                raise ValueError(f"--model {path}: not an HDF5 file; pass a model saved by the pipeline, "
                                 f"e.g. {example}")
    else:
        kind = f"a {suffix} file" if suffix else "a file without extension"
        raise ValueError(f"--model {path}: expected a Keras model file (.keras), got {kind}; pass e.g. {example}")


def check_out_file(path: Path, option: str) -> None:
    """A file path that can be written: not a folder, its folder existing or creatable."""
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; name the file to write, e.g. {option} {path / 'metrics.json'}")
    _check_creatable(path.parent, path, option)


def check_out_dir(path: Path, option: str) -> None:
    """A folder path that exists or can be created."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file, not a folder; name a folder (it is created if missing)")
    _check_creatable(path, path, option)


def _check_creatable(folder: Path, path: Path, option: str) -> None:
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: cannot create the folder {folder}, {existing} is not a folder; "
                         "choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {existing} is not writable; choose another path")


def task_of(output_shape) -> str | None:
    """`classifier` for (None, classes), `segmentation` for (None, H, W, classes), else None."""
    if not isinstance(output_shape, tuple):
        return None  # several outputs
    return {2: "classifier", 4: "segmentation"}.get(len(output_shape))


def check_model(model, path: Path, command: str) -> tuple[int, int]:
    """(input side, classes) of a loaded model, after checking it fits `command` (e.g. `predict classifier`);
    a classifier's classes do not count its background output."""
    from visionflow.classes import FLOWER_CLASSES, MASK_CLASSES

    task = command.split()[-1]
    wanted = "segmentation" if task == "segmentation" else "classifier"
    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]
            and shape[3] == 3):
        raise ValueError(f"--model {path}: input {shape}, expected square RGB images (None, S, S, 3) like the "
                         f"pipeline's models; pass e.g. {_EXAMPLE[task]}")
    out = model.output_shape
    found = task_of(out)
    if found != wanted:
        if found is None:
            what = (f"has output {out}, neither a classifier's (None, classes) nor a segmentation model's "
                    "(None, H, W, classes)")
        else:
            what = f"is a {_NOUN[found]} (output {out})"
        if task == "detection" or found is None:
            fix = f"`visionflow {command}` needs a {_NOUN[wanted]}, e.g. {_EXAMPLE[task]}"
        else:
            fix = f"use `visionflow {command.split()[0]} {found}`, or pass a {_NOUN[wanted]}, e.g. {_EXAMPLE[task]}"
        raise ValueError(f"--model {path} {what}; {fix}")
    classes = out[-1]
    if wanted == "classifier":
        from visionflow.models.classifier import has_background

        classes -= has_background(model)  # learnt background windows: one output more
    if wanted == "segmentation":
        if out[1:3] != shape[1:3] or classes != len(MASK_CLASSES):
            raise ValueError(f"--model {path}: output {out}, expected one score per pixel for each of "
                             f"{len(MASK_CLASSES)} classes ({', '.join(MASK_CLASSES)}): (None, {shape[1]}, "
                             f"{shape[2]}, {len(MASK_CLASSES)}); pass e.g. {_EXAMPLE[task]}")
    elif classes != len(FLOWER_CLASSES):
        raise ValueError(f"--model {path}: {classes} classes (output {out}), expected the {len(FLOWER_CLASSES)} flower "
                         f"classes ({', '.join(FLOWER_CLASSES)}); pass e.g. {_EXAMPLE[task]}")
    return int(shape[1]), int(classes)
