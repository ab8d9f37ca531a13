"""The one way results are written: whole or not at all, with no temp file left behind."""

from __future__ import annotations

import json
import math

import pytest

from visionflow.files import atomic_output, temp_path, write_json, write_text


def test_a_file_is_replaced_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "sub" / "result.txt"
    write_text("first\n", out)
    with pytest.raises(RuntimeError, match="crash"), atomic_output(out) as tmp:
        tmp.write_text("half")
        assert out.read_text() == "first\n"  # nothing visible while writing
        raise RuntimeError("crash")
    assert out.read_text() == "first\n"
    assert [p.name for p in out.parent.iterdir()] == ["result.txt"]


def test_a_folder_is_swapped_whole(tmp_path):
    out = tmp_path / "cache"
    with atomic_output(out, directory=True) as tmp:
        (tmp / "a").write_text("1")
    with atomic_output(out, directory=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]  # the old folder's files are gone, not merged
    with pytest.raises(RuntimeError), atomic_output(out, directory=True) as tmp:
        (tmp / "c").write_text("3")
        raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_temps_of_dead_processes_are_cleaned(tmp_path):
    out = tmp_path / "metrics.json"
    stale = tmp_path / f".{out.name}.tmp-999999999"  # no such pid
    stale.write_text("left by a killed run")
    assert temp_path(out).name != stale.name
    assert not stale.exists()


def test_json_is_strict_and_sorted(tmp_path):
    out = tmp_path / "m.json"
    write_json({"b": math.nan, "a": [1.5, (2, 3)]}, out)
    assert out.read_text() == json.dumps({"a": [1.5, [2, 3]], "b": None}, indent=2, sort_keys=True) + "\n"
