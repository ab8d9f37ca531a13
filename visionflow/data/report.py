"""What went into a prepared dataset: counts, image sizes, and every file skipped or fixed."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.files import write_json


@dataclasses.dataclass
class DataReport:
    """Summary of one prepared dataset; `skipped`/`fixed`/`notes` hold `{"file", "reason"|"fix"|"note"}`."""

    dataset: str
    source: str
    split_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    class_counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    fixed: list[dict[str, str]] = dataclasses.field(default_factory=list)
    notes: list[dict[str, str]] = dataclasses.field(default_factory=list)
    image_size: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    total_images: int = 0

    def skip(self, file: str, reason: str) -> None:
        """Record a file left out of the dataset."""
        self.skipped.append({"file": file, "reason": reason})

    def fix(self, file: str, fix: str) -> None:
        """Record a file that was used after a repair (re-encoded, resized...)."""
        self.fixed.append({"file": file, "fix": fix})

    def note(self, file: str, note: str) -> None:
        """Record something worth knowing about a file that was used as it is."""
        self.notes.append({"file": file, "note": note})

    def set_contents(self, per_split: dict[str, list[tuple[str, int, int]]]) -> None:
        """Fill counts and size statistics from `(class name, width, height)` per stored example."""
        self.split_counts = {split: len(rows) for split, rows in per_split.items()}
        self.class_counts = {
            split: dict(sorted(Counter(name for name, _, _ in rows).items())) for split, rows in per_split.items()
        }
        rows = [row for split_rows in per_split.values() for row in split_rows]
        self.total_images = len(rows)
        self.image_size = {}
        if rows:
            sizes = np.array([(w, h) for _, w, h in rows], dtype=np.float64)  # (N, 2)
            for axis, name in enumerate(("width", "height")):
                col = sizes[:, axis]
                self.image_size[name] = {
                    "min": int(col.min()),
                    "max": int(col.max()),
                    "mean": round(float(col.mean()), 2),
                    "median": float(np.median(col)),
                }

    def to_dict(self) -> dict[str, Any]:
        """Plain, stably ordered dict (file lists sorted by file name)."""
        out = dataclasses.asdict(self)
        for key in ("skipped", "fixed", "notes"):
            out[key] = sorted(out[key], key=lambda row: tuple(sorted(row.items())))
        return out

    def summary(self) -> str:
        """One line: totals per split and how many files were skipped, fixed or noted."""
        splits = ", ".join(f"{split} {n}" for split, n in sorted(self.split_counts.items()))
        return (
            f"{self.dataset} ({self.source}): {self.total_images} images ({splits}); "
            f"skipped {len(self.skipped)}, fixed {len(self.fixed)}, notes {len(self.notes)}"
        )

    @staticmethod
    def reasons(rows: list[dict[str, str]], shown: int = 3) -> str:
        """Skipped files grouped by kind of reason, most frequent first, each with one full example."""
        kind = lambda reason: reason.split(" (")[0].split(":")[0]  # noqa: E731 - "cannot decode image (...)"
        groups = Counter(kind(row["reason"]) for row in rows).most_common()
        first: dict[str, dict[str, str]] = {}
        for row in rows:
            first.setdefault(kind(row["reason"]), row)
        text = "; ".join(f"{n} x {name}, e.g. {first[name]['file']}: {first[name]['reason']}"
                         for name, n in groups[:shown])
        return text + (f"; and {len(groups) - shown} other kinds" if len(groups) > shown else "")

    def write_json(self, path: str | Path) -> None:
        """Write the report as sorted-key JSON, atomically (temp file + rename)."""
        write_json(self.to_dict(), Path(path))
