"""TensorFlow's settings that visionflow makes before TensorFlow is imported (visionflow/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

ONEDNN_ON = "oneDNN custom operations are on"


def _import_log(module: str, **env: str) -> str:
    """What TensorFlow logs when `module` and then TensorFlow are imported in a new process."""
    base = {k: v for k, v in os.environ.items() if k not in {"TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL"}}
    run = subprocess.run([sys.executable, "-c", f"import {module}, tensorflow"], cwd=REPO, capture_output=True,
                         text=True, env={**base, "TF_CPP_MIN_LOG_LEVEL": "0", **env}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stderr


@pytest.mark.parametrize("module", ["stages.train_classifier", "visionflow.cli"])
def test_onednn_is_on_for_the_stages_and_the_cli_on_any_cpu(module):
    assert ONEDNN_ON in _import_log(module)


def test_onednn_can_still_be_turned_off():
    assert ONEDNN_ON not in _import_log("stages.train_segmentation", TF_ENABLE_ONEDNN_OPTS="0")
