"""The MLflow store after the README's `make run` and `dvc exp run`: two comparable pipeline runs, lineage,
registered models that serve, `visionflow runs compare`, and the UI's compare view in a real Chromium."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, fresh_shell_env

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(os.environ.get("VISIONFLOW_SCREENSHOTS", REPO / "build" / "screenshots"))
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def store(readme_session):
    """(clone, MlflowClient, experiment id, the two parent runs: plain repro first, then the experiment)."""
    import mlflow

    _, repo, _, _ = readme_session
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp_id = client.get_experiment_by_name("visionflow").experiment_id
    parents = client.search_runs([exp_id], "tags.`visionflow.pipeline_run` = 'true'",
                                 order_by=["attributes.start_time ASC"])
    return repo, client, exp_id, parents


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _visionflow(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(repo / ".venv/bin/visionflow"), *args], cwd=repo, env=fresh_shell_env(),
                          capture_output=True, text=True, timeout=300)


def test_two_pipeline_runs_with_children_lineage_metrics_and_models(store):
    repo, client, exp_id, parents = store
    assert len(parents) == 2, [p.info.run_name for p in parents]
    repro, exp = parents
    assert repro.info.run_name.startswith("repro ") and exp.data.tags["visionflow.dvc_exp_name"] == exp.info.run_name
    assert repro.data.tags["visionflow.git_dirty"] == "False"  # a clean clone, whatever the pipeline rewrote
    assert exp.data.tags["visionflow.dvc_baseline_rev"] == repro.data.tags["visionflow.git_commit"]
    headline = {"segmentation.mean_iou", "segmentation.pixel_accuracy", "segmentation.iou.border",
                "classifier.accuracy", "classifier.macro_f1", "detection.map50"}
    for parent in parents:
        assert parent.info.status == "FINISHED" and headline <= set(parent.data.metrics)
        assert parent.data.params["seed"] == "42" and "detection.strategy" in parent.data.params
    assert (repro.data.params["segmentation.epochs"], exp.data.params["segmentation.epochs"]) == ("1", "2")
    # DVC skipped the classifier in the experiment: its parent still carries the classifier's numbers.
    assert exp.data.metrics["classifier.accuracy"] == repro.data.metrics["classifier.accuracy"]

    def children(parent):
        runs = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        return {r.info.run_name: r for r in runs}

    assert set(children(repro)) == {"prepare_pets", "prepare_flowers", "build_cache_pets", "build_cache_flowers",
                                    "train_segmentation", "evaluate_segmentation", "train_classifier",
                                    "evaluate_classifier", "evaluate_detection"}
    assert set(children(exp)) == {"train_segmentation", "evaluate_segmentation"}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    cache_md5 = lock["build_cache_pets"]["outs"][0]["md5"]
    model_md5 = lock["train_segmentation"]["outs"][0]["md5"]
    inputs = {i.dataset.name: i.dataset.digest for i in children(exp)["evaluate_segmentation"].inputs.dataset_inputs}
    assert inputs == {"pets cache": cache_md5, "segmentation model": model_md5}
    for name in ("visionflow-segmentation", "visionflow-classifier"):
        assert len(client.search_registered_models(f"name = '{name}'")) == 1
    seg = client.get_model_version_by_alias("visionflow-segmentation", "candidate")
    assert seg.run_id == children(exp)["train_segmentation"].info.run_id and int(seg.version) == 2
    assert client.get_model_version_by_alias("visionflow-classifier", "candidate").version == 1


def test_runs_compare_prints_what_differs(store):
    repo, _, _, (repro, exp) = store
    out = _visionflow(repo, "runs", "compare", repro.info.run_id, exp.info.run_name)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    epochs = next(line for line in lines if line.strip().startswith("segmentation.epochs"))
    assert epochs.split()[1:3] == ["1", "2"]
    assert not any(line.strip().startswith("seed ") for line in lines)  # equal params are not listed
    assert any(line.strip().startswith("segmentation model ") for line in lines)  # a digest that differs
    assert any(line.strip().startswith("segmentation.mean_iou") for line in lines)
    bad = _visionflow(repo, "runs", "compare", repro.info.run_id, "no-such-run")
    assert bad.returncode == 1 and "no-such-run: no pipeline run" in bad.stderr and "visionflow runs list" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_models_promote_moves_an_alias(store):
    repo, client, _, (repro, _) = store
    out = _visionflow(repo, "models", "promote", repro.info.run_id, "--alias", "champion")
    assert out.returncode == 0, out.stderr
    champion = client.get_model_version_by_alias("visionflow-segmentation", "champion")
    assert int(champion.version) == 1 and client.get_model_version_by_alias("visionflow-classifier", "champion")
    bad = _visionflow(repo, "models", "promote", "0123456789abcdef", "--alias", "champion")
    assert bad.returncode == 1 and "visionflow runs list" in bad.stderr and "Traceback" not in bad.stderr


def test_served_model_answers_a_posted_image_like_the_keras_file(store):
    from visionflow.inference import load_model

    repo, _, _, _ = store
    port = _free_port()
    env = fresh_shell_env(MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}")
    env["PATH"] = f"{repo / '.venv/bin'}:{env['PATH']}"  # the venv active, as the README says (it runs uvicorn)
    server = subprocess.Popen([str(repo / ".venv/bin/mlflow"), "models", "serve", "-m",
                               "models:/visionflow-classifier@candidate", "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], cwd=repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    try:
        deadline, answer = time.monotonic() + 180, None
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                             data=json.dumps({"inputs": pixels.tolist()}).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
            except OSError:
                time.sleep(2)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        log = server.communicate(timeout=30)[0]
    assert answer is not None, log[-3000:]
    expected = load_model(repo / "models/classifier.keras").predict(pixels / 255.0, verbose=0)
    np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, atol=1e-4)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (no browser download), a fresh profile."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs the Debian packages chromium and chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def ui(store):
    """`mlflow ui` on the README clone's store, on a free 127.0.0.1 port, as `make ui` starts it."""
    repo = store[0]
    port = _free_port()
    server = subprocess.Popen([str(repo / ".venv/bin/mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{repo / 'mlflow.db'}"], cwd=repo,
                              env=fresh_shell_env(MLFLOW_DISABLE_TELEMETRY="true"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=5)
                break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_compare_view_in_chromium_shows_both_runs(store, ui, browser):
    _, _, exp_id, parents = store
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{ui}/#/experiments/{exp_id}/runs")
    for parent in parents:  # the runs table lists the parent runs; tick both
        row = page.get_by_role("row").filter(has_text=parent.info.run_name).first
        row.locator('input[type="checkbox"]').first.check(timeout=60_000)
    page.screenshot(path=SCREENSHOTS / "runs_table_selected.png")
    page.get_by_role("button", name="Compare").first.click()
    page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
    page.get_by_text("segmentation.epochs").first.wait_for(timeout=60_000)
    page.screenshot(path=SCREENSHOTS / "compare_runs.png", full_page=True)
    text = page.inner_text("body")
    assert "compare-runs" in page.url
    for parent in parents:
        assert parent.info.run_name in text
        assert f"{round(parent.data.metrics['segmentation.mean_iou'], 3):g}" in text
    assert "segmentation.epochs\t2\t1" in text or "segmentation.epochs\t1\t2" in text, text[:3000]
    assert "telemetry" not in text.lower()
    page.close()


def test_dvc_plots_render_offline(store, browser):
    repo = store[0]
    dvc = str(repo / ".venv/bin/dvc")
    experiment = store[3][1].info.run_name  # the README's `dvc exp run` (its baseline is no longer HEAD)
    for name, args in (("plots_show", ["show"]), ("plots_diff", ["diff", "HEAD", experiment])):
        out = subprocess.run([dvc, "plots", *args, "-o", f"dvc_{name}"], cwd=repo, env=fresh_shell_env(),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        html = (repo / f"dvc_{name}" / "index.html").read_text()
        assert "cdn.jsdelivr" not in html and "http://" not in html.split("<body>")[1][:200]
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("http*://**", lambda route: route.abort())  # no network at all: everything must be local
        page.goto((repo / f"dvc_{name}" / "index.html").as_uri())
        page.locator("svg.marks, canvas.marks").first.wait_for(timeout=60_000)
        assert page.locator("svg.marks, canvas.marks").count() >= 3  # two curve plots and the confusion matrix
        page.screenshot(path=SCREENSHOTS / f"dvc_{name}.png", full_page=True)
        page.close()
