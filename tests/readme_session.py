"""Run the README's shell commands as typed, in a fresh clone and a fresh shell (see tests/test_readme.py)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO, SHARED, SHRUNK, clone, fresh_shell_env, require_shared

SMALLER = {"segmentation.epochs=20": "segmentation.epochs=2", "segmentation.epochs=5": "segmentation.epochs=1"}
EXAMPLE_IMAGES = ("a.jpg", "b.jpg", "scene.jpg")
UI_URL = "http://127.0.0.1:5000"


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash block, in order; continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


@dataclass
class Step:
    """One README command and how the test runs it."""

    typed: str
    command: str
    env: dict[str, str] = field(default_factory=dict)
    mode: str = "run"  # run | server | offline
    result: subprocess.CompletedProcess | None = None


def plan(typed: str, places: dict[str, str]) -> Step:
    """The rule for `typed`: placeholders to real paths, and how to keep it short."""
    command = typed
    for example, real in places.items():
        command = command.replace(example, real)
    for big, small in SMALLER.items():
        command = command.replace(big, small)
    words = shlex.split(command)
    if words[:2] in (["make", "test"], ["make", "test-fast"]):
        return Step(typed, command, env={"PYTEST_ADDOPTS": "--collect-only -q"})
    if words[:2] == ["make", "ui"]:
        return Step(typed, command, mode="server")
    if words[:2] == ["make", "bench"] and not any(w.startswith("BENCH_ARGS=") for w in words):
        return Step(typed, f"{command} BENCH_ARGS=--quick")  # the suite's smoke run: the full one takes minutes
    if words[:2] == ["make", "run-real"]:
        if "SOURCE=tfds" in words:
            return Step(typed, command, mode="offline")  # no network here: it must say so at once
        extra = next((w for w in words if w.startswith("EXTRA=")), "EXTRA=")
        words = [w for w in words if w != extra] + [extra if "--queue" in extra else f"{extra} --queue".strip()]
        return Step(typed, shlex.join(words))
    return Step(typed, command)


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}


def shell(command: str, repo, activated: bool, env: dict[str, str], timeout: int = 900, **kw):
    script = f"source .venv/bin/activate && {command}" if activated else command
    return subprocess.run(["bash", "-c", script], cwd=repo, env=fresh_shell_env(**GIT_IDENTITY, **env),
                          capture_output=True, text=True, timeout=timeout, **kw)


def serve(step: Step, repo, activated: bool) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 5000)) != 0, "port 5000 is taken: cannot check `make ui`"
    script = f"source .venv/bin/activate && {step.command}" if activated else step.command
    proc = subprocess.Popen(["bash", "-c", script], cwd=repo, env=fresh_shell_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None and status != 200:
            try:
                status = urllib.request.urlopen(f"{UI_URL}/health", timeout=5).status
            except OSError:
                time.sleep(1)
        page = urllib.request.urlopen(UI_URL, timeout=10).read().decode() if status == 200 else ""
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    return subprocess.CompletedProcess(step.command, 0 if "MLflow" in page else 1, out, "")


def _team_store() -> dict[str, str]:
    """A local S3 endpoint with a bucket for the README's team commands, as placeholders to fill."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)  # stops with the test process
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="visionflow-readme")
    return {"s3://BUCKET/visionflow": "s3://visionflow-readme/visionflow", "https://S3_ENDPOINT": endpoint,
            "KEY_ID": "testing", "SECRET": "testing"}


def run_readme(tmp: Path) -> tuple[list[Step], Path, dict[str, str], bool]:
    """The README's commands run in order in one fresh clone: (steps, clone, placeholders, activated?)."""
    pets = require_shared("datasets", "oxford_iiit_pet")
    flowers = require_shared("datasets", "flower_photos", "flower_photos")
    require_shared("keras", "models")
    keras = tmp / "keras"
    shutil.copytree(SHARED / "keras" / "models", keras / "models")
    repo = clone(tmp / "repo", params=SHRUNK)
    for name, src in zip(EXAMPLE_IMAGES, sorted((flowers / "daisy").glob("*.jpg"))):
        shutil.copy(src, repo / name)
    places = {"/data/oxford-iiit-pet": str(pets), "/data/flower_photos": str(flowers), "~/.keras": str(keras)}
    places.update(_team_store())
    steps, activated = [], False
    for typed in readme_commands((REPO / "README.md").read_text()):
        step, start = plan(typed, places), time.monotonic()
        if step.mode == "server":
            step.result = serve(step, repo, activated)
        else:
            step.result = shell(step.command, repo, activated, step.env)
        print(f"README: {typed} -> exit {step.result.returncode} in {time.monotonic() - start:.0f} s ({step.mode})")
        steps.append(step)
        activated = activated or typed == "source .venv/bin/activate"
    return steps, repo, places, activated


