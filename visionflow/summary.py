"""Print the headline metrics of the last `dvc repro` and how to open the MLflow UI (`make run` ends here)."""

from __future__ import annotations

import json
from pathlib import Path

from visionflow.tracking import ui_command

HEADLINES = {
    "segmentation.json": ("segmentation", ["mean_iou", "pixel_accuracy", "dice", "majority_baseline.mean_iou"]),
    "classifier.json": ("classifier", ["accuracy", "macro_f1"]),
    "detection.json": ("detection", ["map50", "precision", "recall", "random_baseline.map50"]),
}


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def summary(metrics_dir: Path = Path("metrics")) -> str:
    """A few lines: task, metric = value, for every metrics file present."""
    lines = ["Headline metrics (test split):"]
    for name, (task, keys) in HEADLINES.items():
        path = metrics_dir / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        values = [f"{k} = {v:.4f}" for k in keys if isinstance(v := _get(data, k), (int, float))]
        lines.append(f"  {task:<13} " + ", ".join(values))
    lines.append("")
    lines.append(f"Compare runs in the MLflow UI:  .venv/bin/{ui_command()}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary())
