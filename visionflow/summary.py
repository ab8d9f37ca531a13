"""Print the headline metrics of the last `dvc repro` and how to open the MLflow UI (`make run` ends here)."""

from __future__ import annotations

import json
from pathlib import Path

HEADLINES = {
    "segmentation.json": ("segmentation", ["mean_iou", "pixel_accuracy", "iou.border", "dice",
                                           "majority_baseline.mean_iou"]),
    "classifier.json": ("classifier", ["accuracy", "macro_f1"]),
    "detection.json": ("detection", ["map50", "precision", "recall", "random_baseline.map50"]),
}
# The ones a pipeline run is compared by (the parent run's metrics in MLflow), as task.key.
COMPARED = ("segmentation.mean_iou", "segmentation.pixel_accuracy", "segmentation.iou.border",
            "classifier.accuracy", "classifier.macro_f1", "detection.map50")

# How far the compared metrics of the default run may move on another machine, TF build or thread count
# (absolute). Measured: the committed run redone from scratch with 1 and 4 intra/inter-op threads and with
# oneDNN off moved segmentation mean IoU by <= 0.0015 (0.015 on another 2-core machine), pixel accuracy by
# <= 0.0045, classifier accuracy and macro F1 by <= 0.04 (2 of 50 test images), detection mAP@0.5 by
# <= 0.015; the data, the caches and every DVC hash before training stayed identical (README: Reproducibility).
# Retrained with oneDNN on a 2-core AVX2 CPU, the run with the class "background" moved detection mAP@0.5 by 0.046.
TOLERANCE = {"segmentation.mean_iou": 0.03, "segmentation.pixel_accuracy": 0.02, "segmentation.iou.border": 0.03,
             "classifier.accuracy": 0.08, "classifier.macro_f1": 0.08, "detection.map50": 0.08}


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def headline_values(metrics_dir: Path = Path("metrics"), read=None) -> dict[str, float]:
    """`{task.key: value}` of the compared headline metrics, for every metrics file present.

    `read(name)` returns a metrics file's text or None (default: from `metrics_dir`; e.g. from a git revision).
    """
    if read is None:
        read = lambda name: (metrics_dir / name).read_text() if (metrics_dir / name).is_file() else None  # noqa: E731
    values = {}
    for name, (task, _) in HEADLINES.items():
        text = read(name)
        if text is not None:
            data = json.loads(text)
            for key in COMPARED:
                if key.startswith(task + ".") and isinstance(v := _get(data, key[len(task) + 1:]), (int, float)):
                    values[key] = float(v)
    return values


def beyond_tolerance(ours: dict[str, float], reference: dict[str, float]) -> list[str]:
    """The compared metrics that differ from `reference` by more than TOLERANCE, as readable lines."""
    return [f"{key}: {ours.get(key)} against {value} (tolerance {TOLERANCE[key]})" for key, value in reference.items()
            if key in TOLERANCE and (key not in ours or abs(ours[key] - value) > TOLERANCE[key])]


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
    lines.append("Compare runs in the MLflow UI:  make ui   (or: visionflow runs compare A B)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary())
