"""How `make test` splits the suite between its workers (tests/conftest.py): one group per file, the README's run
shared, the longest groups first."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import LONGEST_FIRST, REPO, SHARED_GROUPS, group_of


def test_each_test_is_marked_with_its_files_group(request):
    for item in request.session.items:
        path = item.nodeid.split("::")[0]
        assert [mark.args[0] for mark in item.iter_markers("xdist_group")] == [SHARED_GROUPS.get(path, path)], path
        assert group_of(item) == SHARED_GROUPS.get(path, path)


def test_the_suite_is_collected_longest_group_first_and_each_group_in_one_piece():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=True).stdout
    files = [line.split("::")[0] for line in out.splitlines() if "::" in line]
    groups = [SHARED_GROUPS.get(path, path) for path in files]
    order = list(dict.fromkeys(groups))
    assert order[:len(LONGEST_FIRST)] == list(LONGEST_FIRST)
    assert len(order) == len(set(files)) - len(SHARED_GROUPS)  # no group split by another
    assert [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]] == order
