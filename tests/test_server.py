"""`make server` on a real PostgreSQL and an S3 endpoint, both started here; two queued experiments in parallel
log through it; fake secrets in the environment end up nowhere."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import clone, fresh_shell_env
from tests.readme_session import SHRUNK
from tests.test_team import s3  # noqa: F401 - the S3 endpoint fixture

pytestmark = pytest.mark.slow
SECRET = "fake-secret-Zq81xLw0"
PASSWORD = "fake-password-Pm27aQ"
ARTIFACTS = "visionflow-artifacts"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on a loopback port (initdb + pg_ctl), with a database `mlflow`."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: .ci/run installs the Debian package postgresql")
        pytest.skip("PostgreSQL server binaries not installed")
    bindir = found[-1].parent
    root = Path(tempfile.mkdtemp(prefix="visionflow-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    root.chmod(0o755)
    port = _port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    pg(str(bindir / "initdb"), "-D", str(root / "data"), "-U", "visionflow", "--auth=trust", "-E", "UTF8")
    pg(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
       f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "visionflow", "mlflow")
    yield f"postgresql://visionflow@127.0.0.1:{port}/mlflow", bindir
    pg(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "stop")
    shutil.rmtree(root, ignore_errors=True)


def _server_env(db: str, endpoint: str, port: int) -> dict[str, str]:
    return fresh_shell_env(VISIONFLOW_DB_URI=db, VISIONFLOW_ARTIFACTS=f"s3://{ARTIFACTS}/mlflow",
                           MLFLOW_S3_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY=SECRET,
                           AWS_DEFAULT_REGION="us-east-1", VISIONFLOW_SERVER_PORT=str(port))


@pytest.fixture(scope="module")
def server(postgres, s3, tmp_path_factory):  # noqa: F811
    """`make server`, typed in a clone, serving on a free 127.0.0.1 port: (url, clone, log path)."""
    import boto3

    boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing", aws_secret_access_key=SECRET,
                 region_name="us-east-1").create_bucket(Bucket=ARTIFACTS)
    repo = clone(tmp_path_factory.mktemp("server") / "repo")
    port = _port()
    log = repo.parent / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "server"], cwd=repo, env=_server_env(postgres[0], s3, port), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=5)
            break
        except OSError:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
    yield url, repo, log
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.mark.parametrize(("change", "message"), [
    ({"VISIONFLOW_DB_URI": "postgresql://visionflow@127.0.0.1:9/mlflow"}, "PostgreSQL does not accept the connection"),
    ({"VISIONFLOW_ARTIFACTS": "s3://no-such-bucket/mlflow"}, "the artifact store cannot be used (bucket"),
    ({"VISIONFLOW_DB_URI": "postgresql://u:pw@127.0.0.1:9/db"}, "VISIONFLOW_DB_URI holds a password"),
    ({"VISIONFLOW_ARTIFACTS": ""}, "VISIONFLOW_ARTIFACTS='': set it to s3://BUCKET/PREFIX"),
])
def test_make_server_refuses_to_half_start(postgres, s3, tmp_path, change, message):  # noqa: F811
    repo = clone(tmp_path / "repo")
    env = {**_server_env(postgres[0], s3, _port()), **change}
    start = time.monotonic()
    run = subprocess.run(["make", "server"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and time.monotonic() - start < 60


def test_two_queued_experiments_in_parallel_land_complete_on_the_server(server, postgres, s3, tmp_path):  # noqa: F811
    import mlflow

    url, _, server_log = server
    repo = clone(tmp_path / "repo", params=SHRUNK)
    env = fresh_shell_env(MLFLOW_TRACKING_URI=url, AWS_SECRET_ACCESS_KEY=SECRET, MLFLOW_TRACKING_PASSWORD=PASSWORD,
                          GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                          GIT_COMMITTER_EMAIL="t@t")

    def sh(script: str, timeout: int = 900) -> subprocess.CompletedProcess:
        out = subprocess.run(["bash", "-c", f"set -e; source .venv/bin/activate; {script}"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    sh("dvc exp run --queue -n e1 -S segmentation.learning_rate=0.002 && "
       "dvc exp run --queue -n e2 -S segmentation.learning_rate=0.003")
    start = time.monotonic()
    sh("dvc queue start -j 2")
    status = ""
    while time.monotonic() - start < 900:
        status = sh("dvc queue status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    elapsed = time.monotonic() - start
    print(f"two experiments with -j 2: {elapsed:.0f} s\n{status}")
    assert status.count("Success") == 2, status
    logs = sh("dvc queue logs e1 && dvc queue logs e2").stdout
    assert "database is locked" not in logs

    client = mlflow.MlflowClient(url)
    experiments = [e for e in client.search_experiments() if e.name == "visionflow"]
    assert len(experiments) == 1
    exp_id = experiments[0].experiment_id
    parents = client.search_runs([exp_id], "tags.`visionflow.pipeline_run` = 'true'")
    assert sorted(p.info.run_name for p in parents) == ["e1", "e2"]
    for parent in parents:
        assert parent.info.status == "FINISHED" and "segmentation.mean_iou" in parent.data.metrics
        children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert len(children) == 9 and {c.info.status for c in children} == {"FINISHED"}
    assert len(client.search_registered_models("name = 'visionflow-segmentation'")) == 1
    assert len(client.search_model_versions("name = 'visionflow-segmentation'")) == 2
    # Artifacts come back through the server (from S3): a figure and a model that loads.
    train = client.search_runs([exp_id], "attributes.run_name = 'train_segmentation'")[0]
    mlflow.set_tracking_uri(url)
    figures = mlflow.artifacts.download_artifacts(run_id=train.info.run_id, artifact_path="plots",
                                                  dst_path=str(tmp_path / "art"))
    assert any(p.suffix == ".png" for p in Path(figures).iterdir())
    assert mlflow.pyfunc.load_model("models:/visionflow-segmentation@candidate").metadata.signature is not None

    # The fake secrets are nowhere: database, S3 objects, params and tags, files, logs.
    dump = subprocess.run([str(postgres[1] / "pg_dump"), postgres[0]], capture_output=True, text=True,
                          check=True).stdout
    import boto3

    s3c = boto3.client("s3", endpoint_url=s3,
                       aws_access_key_id="testing", aws_secret_access_key=SECRET, region_name="us-east-1")
    objects = b"".join(s3c.get_object(Bucket=ARTIFACTS, Key=o["Key"])["Body"].read()
                       for o in s3c.list_objects_v2(Bucket=ARTIFACTS).get("Contents", []))
    values = "".join(f"{r.data.params}{r.data.tags}" for r in client.search_runs([exp_id]))
    files = "".join((repo / name).read_text() for name in ("dvc.lock", ".dvc/config") if (repo / name).exists())
    for secret in (SECRET, PASSWORD):
        for where, text in (("PostgreSQL", dump), ("params/tags", values), ("dvc files", files),
                            ("queue logs", logs), ("server log", server_log.read_text())):
            assert secret not in text, f"{secret} found in {where}"
        assert secret.encode() not in objects, f"{secret} found in an S3 artifact"

