"""What every stage shares: argument parsing, params loading, and errors printed as one clear line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser(description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the `--params` option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    return p


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a bad input (ValueError and its subclasses) exits 1 with its message only.

    The MLflow store is checked first, so an unreachable tracking server stops the stage in seconds.
    """
    from visionflow import tracking

    try:
        tracking.check_store()
        main()
    except ValueError as exc:
        if os.environ.get("VISIONFLOW_DEBUG"):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        if not os.environ.get("VISIONFLOW_DEBUG"):
            print("(set VISIONFLOW_DEBUG=1 to see the traceback)", file=sys.stderr)
        sys.exit(1)


def ensure_parent(*paths: Path) -> None:
    """Create the parent folders of output files."""
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)

