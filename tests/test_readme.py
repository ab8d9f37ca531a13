"""Every command in the README's shell code blocks, run as typed in a fresh shell of a fresh clone.

The README is read top to bottom like a terminal session: after its `source .venv/bin/activate` line, later
commands run with the venv active. Example paths become the real samples, the clone's params.yaml is shrunk
(few images, one epoch) and a few commands are cut short, each by a rule below: `make test*` only collects,
`make run-real` queues its experiment instead of training for an hour, the reference comparison shows its
`--help` (and every flag the README gives it must be in it), `make ui` serves until it answers, `make bench`
runs the suite's `--quick` smoke run.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import fresh_shell_env
from tests.readme_session import plan, readme_commands, shell


def test_readme_parser_reads_only_shell_blocks():
    text = "```bash\nmake run   # comment\nmake x \\\n  A=1\n```\n```\nnot a command\n```\n`inline`\n"
    assert readme_commands(text) == ["make run", "make x    A=1"]


@pytest.mark.slow
def test_every_readme_command_works_as_typed(readme_session):
    steps, repo, _, _ = readme_session
    typed = [s.typed.split()[0:2] for s in steps]
    # The README's main commands are all there (a rule above would silently stop applying otherwise).
    for must in (["make", "run"], ["make", "test"], ["make", "run-real"], ["dvc", "exp"], ["visionflow", "predict"],
                 ["make", "ui"], ["source", ".venv/bin/activate"], ["visionflow", "runs"], ["visionflow", "models"], ["make", "push"],
                 ["make", "pull"], ["dvc", "remote"], ["make", "bench"]):
        assert must in typed, f"README lost `{' '.join(must)}`"
    for step in steps:
        out = step.result.stdout + step.result.stderr
        assert not re.search(r"<[\w ]+>", step.command), f"unfilled placeholder in {step.typed!r}"
        if step.mode == "offline":
            assert step.result.returncode != 0 and "cannot download" in out, f"{step.typed}\n{out[-3000:]}"
            assert "Traceback" not in out and "Running stage" not in out
            continue
        assert step.result.returncode == 0, f"README command failed: {step.typed}\n{out[-4000:]}"
        if step.mode == "server":
            assert "MLflow runs table: http://127.0.0.1:5000/#/experiments/" in out, out[-2000:]
        assert "Traceback" not in out, f"{step.typed}\n{out[-4000:]}"
    # What the commands made.
    assert (repo / "metrics/segmentation.json").is_file() and (repo / "dvc_plots/index.html").is_file()
    assert (repo / "m.json").is_file() and any((repo / "preds").iterdir())
    queued = subprocess.run([str(repo / ".venv/bin/dvc"), "queue", "status"], cwd=repo, env=fresh_shell_env(),
                            capture_output=True, text=True, check=True).stdout
    assert "real-directory" in queued and "real-5-epochs" in queued, queued


@pytest.mark.slow
def test_a_broken_flag_in_a_readme_command_fails(readme_session):
    steps, repo, places, activated = readme_session
    typed = next(s.typed for s in steps if "--top-k" in s.typed)
    broken = plan(typed.replace("--top-k", "--top-n"), places)
    result = shell(broken.command, repo, activated, broken.env, timeout=300)
    assert result.returncode != 0 and "--top-n" in result.stderr
