"""Scale-out (train.*): two workers on 127.0.0.1 train the U-Net in lockstep; mixed precision and XLA train a step;
a bad TF_CONFIG is one clear line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import write_tiny_cache
from visionflow import distribute
from visionflow.config import ConfigError, parse_params, shipped_params, to_dict

REPO = Path(__file__).resolve().parents[1]
MULTI = shipped_params({"train": {"distribution": "multi_worker"}}).train


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


@pytest.fixture(scope="module")
def pets_cache(tmp_path_factory):
    return write_tiny_cache(tmp_path_factory.mktemp("dist") / "pets", "mask")


def _params(tmp_path: Path, **train) -> Path:
    raw = to_dict(shipped_params({"segmentation": {"image_size": 32, "epochs": 2, "batch_size": 4}, "train": train}))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# -- TF_CONFIG -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tf_config, message", [
    (None, "train.distribution: multi_worker needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG: not"),
    (_tf_config(["127.0.0.1:2000", "127.0.0.1:2000"], 0), "127.0.0.1:2000 is listed more than once"),
    (_tf_config(["127.0.0.1:2000", "127.0.0.1:2001"], 2), "task worker 2 is not in the cluster's worker list"),
])
def test_a_bad_tf_config_is_one_clear_error(tf_config, message):
    environ = {} if tf_config is None else {"TF_CONFIG": tf_config}
    with pytest.raises(ConfigError, match=message):
        distribute.cluster_spec(environ)


def test_the_chief_is_worker_0_unless_the_cluster_names_one():
    workers = ["127.0.0.1:2000", "127.0.0.1:2001"]
    assert distribute.is_chief(MULTI, {"TF_CONFIG": _tf_config(workers, 0)})
    assert not distribute.is_chief(MULTI, {"TF_CONFIG": _tf_config(workers, 1)})
    with_chief = {"cluster": {"chief": ["127.0.0.1:1999"], "worker": workers}, "task": {"type": "worker", "index": 0}}
    assert not distribute.is_chief(MULTI, {"TF_CONFIG": json.dumps(with_chief)})
    assert distribute.is_chief(shipped_params({"train": {"distribution": "mirrored"}}).train, {})


def test_the_stage_refuses_multi_worker_without_tf_config_before_any_work(pets_cache, tmp_path):
    params = _params(tmp_path, distribution="multi_worker")
    model = tmp_path / "m.keras"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run([sys.executable, "-m", "stages.train_segmentation", "--cache", str(pets_cache), "--model",
                           str(model), "--history", str(tmp_path / "h.csv"), "--params", str(params)],
                          cwd=REPO, env={**env, "VISIONFLOW_TRACKING": "off"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "error: train.distribution: multi_worker needs the TF_CONFIG environment variable" in done.stderr
    assert "Traceback" not in done.stderr and not model.exists()


# -- two workers -----------------------------------------------------------------------------------------------------

WORKER = """
import sys, numpy as np
from pathlib import Path
from visionflow.config import load_params
from visionflow.training import train_segmentation
model, history = train_segmentation(Path(sys.argv[1]), load_params(sys.argv[2]))
np.savez(sys.argv[3], *model.get_weights(), loss=history["loss"].to_numpy())
"""


def _start_workers(argv_of, **env: str) -> list[subprocess.CompletedProcess]:
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = [subprocess.Popen(argv_of(i), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "TF_CONFIG": _tf_config(addresses, i), **env})
             for i in range(2)]
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=300)
            outputs.append(subprocess.CompletedProcess(proc.args, proc.returncode, out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for done in outputs:
        assert done.returncode == 0, done.stdout[-3000:]
    return outputs


def test_two_workers_train_the_unet_in_lockstep_to_identical_weights(pets_cache, tmp_path):
    params = _params(tmp_path, distribution="multi_worker")
    outputs = _start_workers(lambda i: [sys.executable, "-c", WORKER, str(pets_cache), str(params),
                                        str(tmp_path / f"w{i}.npz")])
    first, second = (np.load(tmp_path / f"w{i}.npz") for i in range(2))
    assert first.files == second.files and len(first.files) > 10
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    # Each worker took half of every global batch of 2 x 4 images: 16 images are 2 steps per epoch.
    assert "2/2" in outputs[0].stdout and "2/2" in outputs[1].stdout
    initial = _initial_weights(params)
    assert any(not np.array_equal(a, b) for a, b in zip(initial, (first[f"arr_{i}"] for i in range(len(initial)))))


def _initial_weights(params: Path) -> list[np.ndarray]:
    """The U-Net's weights before training (same seed): training must have moved them."""
    from visionflow.config import load_params
    from visionflow.models.segmentation import build_unet
    from visionflow.training import seed_everything

    p = load_params(params)
    seed_everything(p.seed)
    return build_unet(p.segmentation, num_classes=3).get_weights()


def test_only_the_chief_writes_the_model_curves_and_the_mlflow_run(pets_cache, tmp_path):
    import mlflow

    params = _params(tmp_path, distribution="multi_worker")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outputs = _start_workers(
        lambda i: [sys.executable, "-m", "stages.train_segmentation", "--cache", str(pets_cache), "--model",
                   str(tmp_path / f"w{i}" / "m.keras"), "--history", str(tmp_path / f"w{i}" / "h.csv"),
                   "--params", str(params)], MLFLOW_TRACKING_URI=store, VISIONFLOW_TRACKING="on")
    assert (tmp_path / "w0" / "m.keras").is_file() and (tmp_path / "w0" / "h.csv").is_file()
    assert not (tmp_path / "w1" / "m.keras").exists() and not (tmp_path / "w1" / "h.csv").exists()
    assert "worker 1 of 2: trained 2 epochs; the chief writes the model and the run" in outputs[1].stdout
    runs = mlflow.MlflowClient(store).search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(store).search_experiments()])
    stage_runs = [r for r in runs if r.data.tags.get("visionflow.stage") == "train_segmentation"]
    assert len(stage_runs) == 1 and stage_runs[0].data.params["train.distribution"] == "multi_worker"


# -- mixed precision and XLA ------------------------------------------------------------------------------------------

def test_mixed_precision_trains_a_step_in_float16_with_float32_logits(pets_cache, small_params, monkeypatch):
    import keras

    from visionflow.training import train_segmentation

    monkeypatch.setattr(distribute, "float16_supported", lambda: True)  # this CPU has no tensor cores
    raw = to_dict(small_params)
    raw["segmentation"].update(image_size=32, epochs=1, batch_size=16)
    raw["train"]["mixed_precision"] = True
    model, history = train_segmentation(pets_cache, parse_params(raw))
    assert model.get_layer("upsample_0").dtype_policy.name == "mixed_float16"
    assert model.get_layer("upsample_0").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32" and model.output.dtype == "float32"
    assert np.isfinite(history["loss"]).all()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.config.dtype_policy().name == "float32"  # restored for whatever runs next in the process


def test_mixed_precision_without_float16_support_warns_and_trains_in_float32(pets_cache, small_params):
    from visionflow.training import train_segmentation

    raw = to_dict(small_params)
    raw["segmentation"].update(image_size=32, epochs=1, batch_size=16)
    raw["train"]["mixed_precision"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = train_segmentation(pets_cache, parse_params(raw))
    assert any("train.mixed_precision: no GPU with float16 support" in str(w.message) for w in caught)
    assert model.get_layer("upsample_0").compute_dtype == "float32"


def test_jit_compile_trains_a_step_with_xla(pets_cache, small_params):
    from visionflow.training import train_segmentation

    raw = to_dict(small_params)
    raw["segmentation"].update(image_size=32, epochs=1, batch_size=16)
    raw["train"]["jit_compile"] = True
    model, history = train_segmentation(pets_cache, parse_params(raw))
    assert model.jit_compile is True and np.isfinite(history["loss"]).all()


def test_mirrored_trains_on_the_local_devices(pets_cache, small_params):
    from visionflow.training import train_segmentation

    raw = to_dict(small_params)
    raw["segmentation"].update(image_size=32, epochs=1, batch_size=16)
    raw["train"]["distribution"] = "mirrored"
    model, history = train_segmentation(pets_cache, parse_params(raw))
    assert np.isfinite(history["loss"]).all() and len(history) == 1
