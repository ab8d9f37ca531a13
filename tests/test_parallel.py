"""How `make test` splits the suite between its workers (tests/conftest.py): one unit of work per file, the README's
run shared, the longest units first."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import LONGEST_FIRST, REPO, SHARED_GROUPS, group_of


def _pytest(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=True).stdout


def test_each_file_runs_whole_on_one_worker():
    out = _pytest("-n", "2", "--no-loadscope-reorder", "-v", "tests/test_files.py", "tests/test_overrides.py")
    workers: dict[str, set[str]] = {}
    for worker, path in re.findall(r"^\[(gw\d)\] .*? PASSED (tests/[\w/]+\.py)::", out, re.M):
        workers.setdefault(path, set()).add(worker)
    assert set(workers) == {"tests/test_files.py", "tests/test_overrides.py"}, out
    assert all(len(seen) == 1 for seen in workers.values()), workers
    assert workers["tests/test_files.py"] != workers["tests/test_overrides.py"], workers  # both workers used


def test_the_files_reading_the_readme_run_are_one_unit():
    assert group_of("tests/test_mlflow_runs.py::test_x") == group_of("tests/test_readme.py::test_y")
    assert group_of("tests/test_files.py::test_z[a::b]") == "tests/test_files.py"


def test_the_suite_is_collected_longest_unit_first_and_each_unit_in_one_piece():
    for path in (*LONGEST_FIRST, *SHARED_GROUPS, *SHARED_GROUPS.values()):
        assert (REPO / path).is_file(), f"{path} is gone: update tests/conftest.py"
    out = _pytest("--collect-only", "-q", "tests")
    groups = [group_of(line) for line in out.splitlines() if "::" in line]
    order = list(dict.fromkeys(groups))
    assert order[:len(LONGEST_FIRST)] == list(LONGEST_FIRST)
    assert [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]] == order  # no unit split by another
