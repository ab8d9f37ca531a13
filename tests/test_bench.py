"""`make bench`: every figure written to bench/results.json and the README's table, written whole or not at all."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, clone, fresh_shell_env

BENCHMARKS = ("cache", "detection", "unet", "tracking", "dvc")
STALE = "| stale | table | from | before | the run |"


def _bench_env(tmp: Path) -> dict[str, str]:
    """A new terminal's environment, the test session's Keras cache (if any), temp files under `tmp`."""
    (tmp / "tmp").mkdir(exist_ok=True)
    keras = {"KERAS_HOME": os.environ["KERAS_HOME"]} if "KERAS_HOME" in os.environ else {}
    return fresh_shell_env(TMPDIR=str(tmp / "tmp"), **keras)


def _with_stale_table(readme: Path) -> None:
    text = readme.read_text()
    start, end = text.index("<!-- bench:start -->"), text.index("<!-- bench:end -->")
    readme.write_text(f"{text[:start]}<!-- bench:start -->\n{STALE}\n{text[end:]}")


def _leftovers(*folders: Path) -> list[str]:
    return [p.name for folder in folders for p in folder.iterdir() if ".tmp-" in p.name]


def test_an_unknown_benchmark_is_one_error_line_and_writes_nothing(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--only", "cache,speed", "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: --only: unknown benchmark 'speed'; choose from cache, detection, unet, tracking, dvc"]
    assert not out.exists()


def test_a_readme_without_the_table_markers_is_refused_before_any_work(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# a README without the markers\n")
    run = subprocess.run([sys.executable, "-m", "bench", "--readme", str(readme), "--out", str(tmp_path / "r.json")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith(f"error: --readme {readme}: expected one `<!-- bench:start -->` line")
    assert not (tmp_path / "r.json").exists()


def test_an_unreadable_previous_results_file_is_refused_before_any_work(tmp_path):
    out = tmp_path / "results.json"
    out.write_text('{"benchmarks": {"cache": ')  # what a non-atomic writer leaves when it is killed
    run = subprocess.run([sys.executable, "-m", "bench", "--out", str(out)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith(f"error: --out {out}: not a results file of `make bench`")


def _results(value: float) -> dict:
    from bench.common import figure

    machine = {"device": "CPU: test", "cpu_count": 2, "tensorflow": "2.21.0", "load_average_1min": 1.0}
    return {"note": "", "benchmarks": {"cache": {"title": "Cache build", "quick": True, "machine": machine,
                                                 "figures": {"ratio": figure(value, "x", "bare / ours", (">=", 0.8))}}}}


@pytest.mark.parametrize("failing", ["results.json", "README.md"])
def test_a_write_that_fails_midway_leaves_the_previous_file_whole_and_no_temp_file(tmp_path, monkeypatch, failing):
    from bench import report

    out, readme = tmp_path / "results.json", tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n")
    report.write(_results(0.5), out, readme)
    before = {p: p.read_bytes() for p in (out, readme)}
    assert "| Cache build (quick) | `ratio`: bare / ours | 0.50x | >= 0.8 | **no** |" in readme.read_text()
    real_write = Path.write_text

    def disk_full(self, text, *args, **kwargs):  # half the text lands, then the disk is full
        if self.name.startswith(f".{failing}.tmp-"):
            real_write(self, text[: len(text) // 2])
            raise OSError(28, "No space left on device")
        return real_write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        report.write(_results(0.9), out, readme)
    changed = tmp_path / failing
    assert changed.read_bytes() == before[changed]
    assert _leftovers(tmp_path) == []


def test_the_dvc_benchmark_times_an_up_to_date_pipeline_and_never_runs_a_stale_one(tmp_path):
    from bench import dvc_repro

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "in.txt").write_text("1\n")
    (repo / "dvc.yaml").write_text("stages:\n  copy:\n    cmd: cp in.txt out.txt && date +%s%N >> out.txt\n"
                                   "    deps: [in.txt]\n    outs: [out.txt]\n")
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "repro", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True, env=env)
    built = (repo / "out.txt").read_text()

    timed = dvc_repro.measure(repo, repeats=2)
    fig = timed["figures"]["seconds"]
    assert fig["unit"] == "s" and 0 < fig["value"] < 60 and len(timed["details"]["seconds"]) == 2
    assert fig["goal"] == "<= 3" and fig["met"] == (fig["value"] <= 3)
    assert (repo / "out.txt").read_text() == built  # nothing ran

    (repo / "in.txt").write_text("2\n")
    stale = dvc_repro.measure(repo, repeats=2)
    assert stale.keys() == {"skipped"} and "not up to date (1 changed: copy)" in stale["skipped"]
    assert (repo / "out.txt").read_text() == built  # the benchmark did not run the changed stage


@pytest.mark.slow
def test_make_bench_quick_writes_every_figure_and_regenerates_the_readme_table(tmp_path):
    from bench import report

    repo = clone(tmp_path / "repo")
    (repo / "bench" / "results.json").unlink(missing_ok=True)
    _with_stale_table(repo / "README.md")
    run = subprocess.run(["make", "bench", "BENCH_ARGS=--quick"], cwd=repo, env=_bench_env(tmp_path),
                         capture_output=True, text=True, timeout=600)  # the command the README gives
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((repo / "bench" / "results.json").read_text())
    assert set(results["benchmarks"]) == set(BENCHMARKS)
    for i, name in enumerate(BENCHMARKS, 1):
        assert f"[{i}/5] " in run.stdout
        entry = results["benchmarks"][name]
        assert entry["quick"] is True and entry["machine"]["cpu_count"] >= 1 and entry["machine"]["tensorflow"]
        if name == "dvc" and "skipped" in entry:  # a clone has no DVC outputs: timing would run the pipeline
            assert "not up to date" in entry["skipped"]
            continue
        assert entry["figures"], name
        for key, fig in entry["figures"].items():
            assert math.isfinite(fig["value"]), (name, key, fig)
            if fig["unit"] in ("x", "s"):
                assert fig["value"] > 0, (name, key, fig)
            assert fig["met"] in ((True, False) if fig["goal"] else (None,))
            assert re.search(rf"^{name}\.{key}\s+{re.escape(report.format_value(fig))}", run.stdout, re.M), (name, key)
    figures = results["benchmarks"]
    assert {"reference_feature_crops", "reference_dense", "pipeline_feature_crops_of_bound"} <= set(
        figures["detection"]["figures"])
    assert figures["tracking"]["figures"]["overhead"]["unit"] == "%"
    readme = (repo / "README.md").read_text()
    assert STALE not in readme
    assert f"<!-- bench:start -->\n{report.table(results)}\n<!-- bench:end -->" in readme
    assert "| Cache build (quick) | `ratio`:" in readme
    assert not list((tmp_path / "tmp").glob("visionflow-bench-*"))  # the work folder is gone


@pytest.mark.slow
def test_an_interrupted_bench_leaves_the_previous_results_and_readme_and_no_temp_file(tmp_path):
    repo = clone(tmp_path / "repo")
    previous = repo / "bench" / "results.json"
    previous.write_text('{"benchmarks": {}, "note": "the previous run"}\n')
    _with_stale_table(repo / "README.md")
    before = {p: p.read_bytes() for p in (previous, repo / "README.md")}
    # A terminal's processes take Ctrl-C; a test session started in the background may pass SIGINT on ignored.
    proc = subprocess.Popen(["make", "bench", "BENCH_ARGS=--quick"], cwd=repo, env=_bench_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, deadline = [], time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("[2/5]") or not line:  # the cache benchmark has finished: figures are in memory
                break
        assert seen[-1].startswith("[2/5]"), "".join(seen)[-3000:]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "interrupted: " in out and "Traceback" not in out, out[-3000:]
    assert {p: p.read_bytes() for p in before} == before
    assert _leftovers(repo, repo / "bench") == []
    assert not list((tmp_path / "tmp").glob("visionflow-bench-*"))  # the work folder is gone too
