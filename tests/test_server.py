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

from tests.conftest import SHRUNK, clone, fresh_shell_env

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


def _start_server(repo: Path, db: str, endpoint: str, port: int, log: Path) -> subprocess.Popen:
    """`make server`, typed in `repo`, once it answers on `port`."""
    with open(log, "a") as out:
        proc = subprocess.Popen(["make", "server"], cwd=repo, env=_server_env(db, endpoint, port), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return proc
        except OSError:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
    raise AssertionError(f"make server did not answer in 180 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def bucket(s3):
    import boto3

    boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing", aws_secret_access_key=SECRET,
                 region_name="us-east-1").create_bucket(Bucket=ARTIFACTS)
    return s3


@pytest.fixture(scope="module")
def server(postgres, bucket, tmp_path_factory):
    """`make server`, typed in a clone, serving on a free 127.0.0.1 port: (url, clone, log path)."""
    repo = clone(tmp_path_factory.mktemp("server") / "repo")
    port, log = _port(), repo.parent / "server.log"
    proc = _start_server(repo, postgres[0], bucket, port, log)
    yield f"http://127.0.0.1:{port}", repo, log
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.mark.parametrize(("change", "message"), [
    ({"VISIONFLOW_DB_URI": "postgresql://visionflow@127.0.0.1:9/mlflow"}, "PostgreSQL does not accept the connection"),
    ({"VISIONFLOW_ARTIFACTS": "s3://no-such-bucket/mlflow"}, "the artifact store cannot be used (bucket"),
    ({"VISIONFLOW_DB_URI": "postgresql://u:pw@127.0.0.1:9/db"}, "VISIONFLOW_DB_URI holds a password"),
    ({"VISIONFLOW_ARTIFACTS": ""}, "VISIONFLOW_ARTIFACTS='': set it to s3://BUCKET/PREFIX"),
])
def test_make_server_refuses_to_half_start(postgres, bucket, tmp_path, change, message):
    repo = clone(tmp_path / "repo")
    env = {**_server_env(postgres[0], bucket, _port()), **change}
    start = time.monotonic()
    run = subprocess.run(["make", "server"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and time.monotonic() - start < 60


def _queue_diagnostics(repo: Path, env: dict[str, str], status: str) -> str:
    """What a failed queued experiment left: its `dvc queue logs` and the tails of the celery worker logs (an
    experiment that fails in DVC's own setup or collection has no queue logs, only worker-log lines)."""
    parts = []
    for line in status.splitlines():
        fields = line.split()
        if fields and fields[-1] == "Failed":
            logs = subprocess.run(["bash", "-c", f"source .venv/bin/activate; dvc queue logs {fields[0]}"], cwd=repo,
                                  env=env, capture_output=True, text=True, timeout=120)
            parts.append(f"--- dvc queue logs {fields[0]}:\n{logs.stdout[-4000:]}{logs.stderr[-2000:]}")
    for worker in sorted((repo / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.out")):
        parts.append(f"--- {worker.name}:\n{worker.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


def test_two_queued_experiments_in_parallel_land_complete_on_the_server(server, postgres, bucket, tmp_path):
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
    assert status.count("Success") == 2, f"{status}\n{_queue_diagnostics(repo, env, status)}"
    logs = sh("dvc queue logs e1 && dvc queue logs e2").stdout
    assert "database is locked" not in logs

    client = mlflow.MlflowClient(url)
    experiments = [e for e in client.search_experiments() if e.name == "visionflow"]
    assert len(experiments) == 1
    exp_id = experiments[0].experiment_id
    parents = client.search_runs([exp_id], "tags.`visionflow.pipeline_run` = 'true'")
    assert sorted(p.info.run_name for p in parents) == ["e1", "e2"]
    ran = set()
    for parent in parents:
        assert parent.info.status == "FINISHED" and "segmentation.mean_iou" in parent.data.metrics
        children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        names = {c.info.run_name for c in children}
        # Both change a segmentation param; the other stages may come from the run-cache the other one filled.
        assert {"train_segmentation", "evaluate_segmentation"} <= names, names
        assert {c.info.status for c in children} == {"FINISHED"}
        ran |= names
    assert len(ran) == 9, ran
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

    s3c = boto3.client("s3", endpoint_url=bucket,
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


def test_two_runs_setting_a_models_first_alias_at_once_both_succeed(postgres):
    """A model's first `candidate` alias is an insert that MLflow's SQL store makes after looking for the alias, so
    two experiments registering at the same moment race for it and PostgreSQL's unique key refuses one of them (the
    server answers BAD_REQUEST). Two stores on one database, two threads released together: the bare call loses the
    race, the stages' call moves the alias instead. (Through the HTTP server the two requests collide only when they
    reach different workers at the same moment, about one race in five here, so the stores are raced directly.)"""
    import threading
    from urllib.parse import urlsplit

    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    from visionflow.tracking.run import _retry_insert_race

    where = urlsplit(postgres[0])
    subprocess.run([str(postgres[1] / "createdb"), "-h", where.hostname, "-p", str(where.port), "-U", where.username,
                    "aliasrace"], check=True, capture_output=True, timeout=60)
    uri = f"postgresql+psycopg2://{where.username}@{where.hostname}:{where.port}/aliasrace"
    stores = {"1": SqlAlchemyStore(uri), "2": SqlAlchemyStore(uri)}
    calls, lost = [], []

    def set_alias(name: str, version: str) -> None:
        calls.append(name)
        stores[version].set_registered_model_alias(name, "candidate", version)

    def race(prefix: str, call, trials: int = 10) -> None:
        for trial in range(trials):
            name = f"{prefix}-{trial}"
            stores["1"].create_registered_model(name)
            for _ in range(2):
                stores["1"].create_model_version(name, source=f"s3://{ARTIFACTS}/models/{name}")
            barrier = threading.Barrier(2)

            def go(version: str) -> None:
                barrier.wait()
                try:
                    call(name, version)
                except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                    lost.append(str(exc)[:300])

            threads = [threading.Thread(target=go, args=(v,)) for v in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    race("bare", set_alias)
    assert lost and all("registered_model_alias" in e and "UniqueViolation" in e for e in lost), lost
    lost.clear()
    calls.clear()
    race("retried", lambda name, v: _retry_insert_race(lambda: set_alias(name, v), "registered_model_alias",
                                                       wait_s=0.1))
    assert lost == [] and len(calls) > 20, (lost, len(calls))  # every race was won, some only on a second call
    for trial in range(10):
        assert int(stores["1"].get_model_version_by_alias(f"retried-{trial}", "candidate").version) in (1, 2)
    for store in stores.values():
        store.engine.dispose()


def test_server_killed_during_training_keeps_the_outputs_and_the_run_is_relogged(postgres, bucket, tmp_path):
    import mlflow

    from visionflow.overrides import merge

    repo = clone(tmp_path / "repo", params=merge(SHRUNK, {"segmentation": {"epochs": 8}}))
    port, log = _port(), tmp_path / "server.log"
    server = _start_server(repo, postgres[0], bucket, port, log)
    url = f"http://127.0.0.1:{port}"
    env = fresh_shell_env(MLFLOW_TRACKING_URI=url)
    repro = subprocess.Popen(["bash", "-c", "source .venv/bin/activate; dvc repro train_segmentation"], cwd=repo,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in repro.stdout:
        output.append(line)
        if line.startswith("Epoch 3/"):  # the training stage is under way: the server dies
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert repro.wait(timeout=600) == 0, "".join(output)[-4000:]
    text = "".join(output)
    assert "stopped answering" in text and "visionflow runs relog" in text, text[-3000:]
    assert "Traceback" not in text
    assert (repo / "models/segmentation.keras").is_file()
    status = subprocess.run(["bash", "-c", "source .venv/bin/activate; dvc status train_segmentation"], cwd=repo,
                            env=env, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status, status

    server = _start_server(repo, postgres[0], bucket, port, log)  # back, on the same address
    try:
        relog = subprocess.run(["bash", "-c", "source .venv/bin/activate; visionflow runs relog"], cwd=repo,
                               env=env, capture_output=True, text=True, timeout=600)
        assert relog.returncode == 0, relog.stderr[-3000:]
        client = mlflow.MlflowClient(url)
        exp_id = client.get_experiment_by_name("visionflow").experiment_id
        relogged = client.search_runs([exp_id], "tags.`visionflow.relogged` = 'true'")
        parent = next(r for r in relogged if r.data.tags.get("visionflow.pipeline_run") == "true")
        assert parent.info.status == "FINISHED" and "segmentation.mean_iou" in parent.data.metrics
        assert parent.info.run_id in relog.stdout
        failed = client.search_runs([exp_id], "attributes.status = 'FAILED'")
        interrupted = [r for r in failed if r.info.run_name == "train_segmentation"]
        assert interrupted and parent.info.run_id in interrupted[0].data.tags["visionflow.failure"]
        version = client.get_model_version_by_alias("visionflow-segmentation", "candidate")
        assert version.run_id in {r.info.run_id for r in relogged}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
