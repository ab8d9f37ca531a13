"""The `visionflow` command line's rows of the bad-input matrix, each run as the user types it.

Every case asserts a nonzero exit, exactly one `error:` line naming the input and the fix, no traceback, and that
nothing was written: no output file or folder, no `.tmp-` file. Cases that need no model (option ranges, paths,
model files) must fail before TensorFlow runs anything. A huge photo given to `predict detection` is downscaled
as the pipeline does, within a bounded memory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:0123abcd\nsize 2248815\n"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float  # the command's peak resident memory

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


# Runs the command in a grandchild forked from this small launcher, and writes its peak memory to argv[1]: a child
# started by pytest itself would report pytest's own peak (Linux carries it over to the exec'ed program).
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "visionflow.cli", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def visionflow(*args: str, cwd: Path = REPO, timeout: float = 180) -> Result:
    """`visionflow <args>` in a new process (`python -m visionflow.cli`), with its peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak"
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(peak), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the command it runs
            proc.communicate()
            pytest.fail(f"visionflow {' '.join(args)}: still running after {timeout} s")
        return Result(proc.returncode, out, err, int(peak.read_text()) / 1024)


@pytest.fixture(scope="module")
def given(tmp_path_factory) -> dict[str, Path]:
    """What a user may pass: the pipeline's two models (small), files that are not models, images, datasets."""
    import keras

    from visionflow.config import shipped_params
    from visionflow.data.synthetic import generate_flowers, generate_pets
    from visionflow.models.classifier import build_classifier
    from visionflow.models.segmentation import build_unet

    root = tmp_path_factory.mktemp("given")
    files = {name: root / name for name in ("segmentation.keras", "classifier.keras", "random.keras", "random.zip",
                                            "lfs.keras", "notes.txt", "ok.png", "corrupt.jpg", "huge.jpg")}
    build_unet(shipped_params({"segmentation": {"image_size": 64}}).segmentation).save(files["segmentation.keras"])
    build_classifier(shipped_params({"classifier": {"image_size": 64}}).classifier, num_classes=5).save(
        files["classifier.keras"])
    files["gray.keras"] = root / "gray.keras"  # a classifier of grayscale images, not the pipeline's
    keras.Sequential([keras.Input((64, 64, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)]).save(
        files["gray.keras"])
    rng = np.random.default_rng(0)
    for name in ("random.keras", "random.zip"):
        with zipfile.ZipFile(files[name], "w") as archive:
            archive.writestr("weights.bin", rng.bytes(256))
            archive.writestr("readme.txt", "not a model")
    files["lfs.keras"].write_text(LFS_POINTER)  # a model checked out without `git lfs pull`
    files["notes.txt"].write_text("my notes\n")
    Image.fromarray((rng.random((80, 96, 3)) * 255).astype(np.uint8)).save(files["ok.png"])
    Image.fromarray((rng.random((80, 96, 3)) * 255).astype(np.uint8)).save(root / "whole.jpg")
    files["corrupt.jpg"].write_bytes((root / "whole.jpg").read_bytes()[:300])  # truncated mid-scan
    # A 24-megapixel photo: upscaled 2x for detection without the max-side cap, it exhausted the memory.
    small = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    Image.fromarray(small).resize((6000, 4000), Image.BILINEAR).save(files["huge.jpg"], quality=85)
    files["flowers"] = generate_flowers(root / "flowers", per_class=2, seed=0, size_range=(64, 96), jpeg_quality=90)
    files["pets"] = generate_pets(root / "pets", n_images=74, min_side=64, max_side=96, seed=0, jpeg_quality=90)
    files["folder"] = root
    return files


# (id, command with {placeholders}: files of `given`, {out}: the case's empty folder, the error line's words,
#  whether the check comes before the model is loaded)
CASES = [
    ("predict-classifier-given-segmentation", "predict classifier --model {segmentation.keras} {ok.png}",
     ["--model", "segmentation.keras", "is a segmentation model", "use `visionflow predict segmentation`"], False),
    ("predict-segmentation-given-classifier",
     "predict segmentation --model {classifier.keras} {ok.png} --out-dir {out}/masks",
     ["--model", "classifier.keras", "is a classifier", "use `visionflow predict classifier`"], False),
    ("evaluate-segmentation-given-classifier",
     "evaluate segmentation --model {classifier.keras} --data {pets} --out {out}/metrics.json",
     ["--model", "classifier.keras", "is a classifier", "use `visionflow evaluate classifier`"], False),
    ("evaluate-classifier-given-segmentation",
     "evaluate classifier --model {segmentation.keras} --data {flowers} --out {out}/metrics.json",
     ["--model", "segmentation.keras", "is a segmentation model", "use `visionflow evaluate segmentation`"], False),
    ("detection-given-segmentation", "predict detection --model {segmentation.keras} {ok.png} --out-dir {out}/d",
     ["--model", "segmentation.keras", "is a segmentation model", "needs a classifier"], False),
    ("grayscale-input-model", "predict classifier --model {gray.keras} {ok.png}",
     ["--model", "gray.keras", "input (None, 64, 64, 1)", "square RGB images (None, S, S, 3)"], False),
    ("zip-that-is-not-a-model", "predict classifier --model {random.keras} {ok.png}",
     ["--model", "random.keras", "not a Keras model", "no config.json", "models/classifier.keras"], True),
    ("zip-extension", "predict classifier --model {random.zip} {ok.png}",
     ["--model", "random.zip", "expected a Keras model file (.keras)", "got a .zip file"], True),
    ("text-file-named-keras", "evaluate classifier --model {lfs.keras} --data {flowers}",
     ["--model", "lfs.keras", "not a Keras model", "zip archive"], True),
    ("text-file-as-model", "predict segmentation --model {notes.txt} {ok.png} --out-dir {out}/masks",
     ["--model", "notes.txt", "got a .txt file", "models/segmentation.keras"], True),
    ("missing-model", "predict classifier --model {out}/models/classifier.keras {ok.png}",
     ["--model", "classifier.keras", "not found", "dvc repro"], True),
    ("model-is-a-folder", "predict classifier --model {folder} {ok.png}",
     ["--model", "is a folder", "pass a .keras file"], True),
    ("batch-size-0", "evaluate classifier --model {classifier.keras} --data {flowers} --batch-size 0",
     ["--batch-size", "got 0", "from 1 to 1024"], True),
    ("batch-size-negative", "evaluate segmentation --model {segmentation.keras} --data {pets} --batch-size -4",
     ["--batch-size", "got -4", "from 1 to 1024"], True),
    ("batch-size-not-a-number", "evaluate segmentation --model {segmentation.keras} --data {pets} --batch-size x",
     ["--batch-size", "expected a whole number", "'x'"], True),
    ("top-k-0", "predict classifier --model {classifier.keras} {ok.png} --top-k 0",
     ["--top-k", "got 0", ">= 1"], True),
    ("top-k-above-the-classes", "predict classifier --model {classifier.keras} {ok.png} --top-k 9",
     ["--top-k 9", "5 classes", "from 1 to 5"], False),
    ("max-image-side-0", "predict detection --model {classifier.keras} {ok.png} --out-dir {out}/d --max-image-side 0",
     ["--max-image-side", "got 0", "from 64 to 8192"], True),
    ("max-image-side-tiny", "evaluate segmentation --model {segmentation.keras} --data {pets} --max-image-side 16",
     ["--max-image-side", "got 16", "from 64 to 8192"], True),
    ("resize-unknown", "predict classifier --model {classifier.keras} {ok.png} --resize squash",
     ["--resize", "invalid choice: 'squash'", "'stretch', 'crop', 'pad'"], True),
    ("out-is-a-folder", "evaluate classifier --model {classifier.keras} --data {flowers} --out {out}",
     ["--out", "is a folder", "metrics.json"], True),
    ("out-under-a-file", "evaluate segmentation --model {segmentation.keras} --data {pets} --out {ok.png}/m.json",
     ["--out", "ok.png", "is not a folder", "choose another path"], True),
    ("out-dir-is-a-file", "predict segmentation --model {segmentation.keras} {ok.png} --out-dir {ok.png}",
     ["--out-dir", "ok.png", "is a file", "name a folder"], True),
    ("detection-out-dir-is-a-file", "predict detection --model {classifier.keras} {ok.png} --out-dir {notes.txt}",
     ["--out-dir", "notes.txt", "is a file"], True),
    ("missing-image", "predict classifier --model {classifier.keras} {ok.png} {out}/missing.jpg",
     ["missing.jpg", "image not found", "check the path"], True),
    ("image-is-a-folder", "predict classifier --model {classifier.keras} {folder}",
     ["is a folder", "pass the image files in it"], True),
    ("missing-out-dir-option", "predict detection --model {classifier.keras} {ok.png}",
     ["required", "--out-dir", "--help"], True),
]


def _command(template: str, given: dict[str, Path], out: Path) -> list[str]:
    names = {**{k: str(v) for k, v in given.items()}, "out": str(out)}
    return [re.sub(r"\{([^}]+)\}", lambda m: names[m.group(1)], part) for part in template.split()]


def _leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob(".*.tmp-*")]


@pytest.mark.parametrize("template, says, before_loading", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_error_line_and_writes_nothing(given, tmp_path, template, says, before_loading):
    result = visionflow(*_command(template, given, tmp_path))
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.errors) == 1, result.stderr
    line = result.errors[0]
    for word in says:
        assert word in line, f"{word!r} not in {line!r}"
    assert result.stdout == "", "nothing is printed before the check"
    assert list(tmp_path.iterdir()) == [], "no output file or folder is created"
    assert _leftovers(tmp_path, given["folder"]) == []
    if before_loading:  # refused before TensorFlow was imported: a fraction of its ~700 MB
        assert result.peak_mb < 300, f"{result.peak_mb:.0f} MB: the check came after loading TensorFlow"


def test_a_corrupt_image_is_reported_and_the_others_predicted(given, tmp_path):
    result = visionflow("predict", "segmentation", "--model", str(given["segmentation.keras"]), str(given["ok.png"]),
                        str(given["corrupt.jpg"]), "--out-dir", str(tmp_path / "masks"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.errors) == 1, result.stderr
    line = result.errors[0]
    assert "1 of 2 images could not be read" in line and "corrupt.jpg" in line and "replace or delete" in line
    assert result.stdout.startswith(str(given["ok.png"]))  # the readable image was predicted
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["ok_mask.png", "ok_overlay.png"]


def test_a_huge_photo_is_downscaled_for_detection_in_bounded_memory(given, tmp_path):
    result = visionflow("predict", "detection", "--model", str(given["classifier.keras"]), str(given["huge.jpg"]),
                        "--out-dir", str(tmp_path / "out"), "--params", str(REPO / "params.yaml"))
    assert result.returncode == 0, result.stderr
    assert "downscaled 6000x4000->1024x683" in result.stdout  # data.max_image_side of params.yaml
    drawn = Image.open(tmp_path / "out" / "huge_detections.png")
    assert drawn.size == (1024, 683)
    assert result.peak_mb < 2500, f"peak {result.peak_mb:.0f} MB"
    assert _leftovers(tmp_path) == []


def test_a_failed_png_write_leaves_neither_file_nor_temp(tmp_path, monkeypatch):
    from visionflow import cli

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")  # the disk filled up mid-write
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        cli._save_png(np.zeros((4, 4), np.uint8), tmp_path / "mask.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_json_write_leaves_neither_file_nor_temp(tmp_path, monkeypatch, capsys):
    from visionflow import cli

    def broken_write(self, text, *args, **kwargs):
        Path.write_bytes(self, text[:5].encode())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", broken_write)
    with pytest.raises(OSError):
        cli._write_json({"mean_iou": 0.5}, tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []
