"""bench/results.json and the README's benchmark table: merged, rendered, and written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import BENCHMARKS
from visionflow.files import write_json, write_text

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
NOTE = ("Written by `make bench` (python -m bench). Each ratio (unit x) is against a baseline run in the same "
        "process on the same data; % is an overhead, s an absolute time. `machine` says where each was measured.")


def check_readme(path: Path) -> None:
    """Raise ValueError unless `path` holds the table's markers, once each and in order."""
    text = Path(path).read_text() if Path(path).is_file() else None
    if text is None:
        raise ValueError(f"--readme {path}: no such file")
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"--readme {path}: expected one `{START}` line followed by one `{END}` line around the "
                         "benchmark table")


def load(path: Path) -> dict:
    """The results written before (empty when there are none); ValueError naming the file when unreadable."""
    path = Path(path)
    if not path.exists():
        return {"benchmarks": {}}
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--out {path}: not a results file of `make bench` ({exc}); delete it or choose another "
                         "--out") from None
    if not isinstance(results, dict) or not isinstance(results.get("benchmarks"), dict):
        raise ValueError(f"--out {path}: not a results file of `make bench` (no \"benchmarks\" object); delete it "
                         "or choose another --out")
    return results


def merge(previous: dict, entries: dict[str, dict]) -> dict:
    """The previous results with `entries` replacing the benchmarks just run."""
    return {"note": NOTE, "benchmarks": {**previous.get("benchmarks", {}), **entries}}


def _in_order(results: dict) -> list[tuple[str, dict]]:
    # The suite's order, whatever order a results.json read back (its keys are sorted) has.
    rank = {name: i for i, name in enumerate(BENCHMARKS)}
    return sorted(results["benchmarks"].items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def format_value(fig: dict) -> str:
    value, unit = fig["value"], fig["unit"]
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:+.1f} %"
    return f"{value:.2f} {unit}"


def _met(fig: dict) -> str:
    return {True: "yes", False: "**no**", None: ""}[fig["met"]]


def table(results: dict) -> str:
    """The README's markdown table (one row per figure, in name order) and a line per machine they come from."""
    rows = ["| benchmark | figure | measured | goal | met |", "|---|---|---|---|---|"]
    machines: dict[str, list[str]] = {}
    for name, entry in _in_order(results):
        title = entry["title"] + (" (quick)" if entry.get("quick") else "")
        if "skipped" in entry:
            rows.append(f"| {title} | skipped: {entry['skipped']} | | | |")
            continue
        for key, fig in sorted(entry["figures"].items()):
            goal = fig["goal"] or ""
            rows.append(f"| {title} | `{key}`: {fig['meaning']} | {format_value(fig)} | {goal} | {_met(fig)} |")
            title = ""
        m = entry["machine"]
        where = f"{m['device']}, {m['cpu_count']} CPUs, TensorFlow {m['tensorflow']}"
        machines.setdefault(where, []).append(f"{name} {entry.get('measured', '')[:10]} {m['load_average_1min']}")
    lines = [*rows, ""]
    for where, runs in machines.items():
        lines.append(f"Measured on {where}; date and 1-minute load average when each benchmark started: "
                     f"{', '.join(runs)}.")
    return "\n".join(lines)


def _replace_table(text: str, new_table: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{new_table}\n{END}{tail}"


def write(results: dict, out: Path, readme: Path) -> None:
    """results.json, then the README table, each through a temp file and a rename: an interrupted or failed
    write leaves the previous file whole and no temp file behind."""
    write_json(results, out)
    readme = Path(readme)
    write_text(_replace_table(readme.read_text(), table(results)), readme)


def summary(entries: dict[str, dict]) -> str:
    """Every figure just measured, one line each."""
    lines = []
    for name, entry in entries.items():
        if "skipped" in entry:
            lines.append(f"{name}: skipped ({entry['skipped']})")
            continue
        for key, fig in entry["figures"].items():
            goal = f"  goal {fig['goal']}: {'met' if fig['met'] else 'NOT met'}" if fig["goal"] else ""
            lines.append(f"{name + '.' + key:<42}{format_value(fig):>10}{goal}   ({fig['meaning']})")
    return "\n".join(lines)
