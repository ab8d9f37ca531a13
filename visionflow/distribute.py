"""Scale-out for the training stages: tf.distribute strategies, the chief, mixed precision, XLA (params `train.*`).

`none` trains on the default device; `mirrored` on every local GPU (one replica per GPU, or the CPU); `multi_worker`
on the workers of the cluster that `TF_CONFIG` describes, in lockstep (gradients all-reduced every step). The batch
size in params.yaml is per replica: the global batch is that times the replicas. Only the chief writes models,
curves and MLflow runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import Iterator

import keras
import tensorflow as tf

from visionflow.config import ConfigError, TrainConfig

MIXED_POLICY = "mixed_float16"
MIN_FLOAT16_CAPABILITY = (7, 0)  # tensor cores: Volta and later


def cluster_spec(environ: os._Environ | dict = os.environ) -> dict:
    """TF_CONFIG, checked: a worker (or chief) list with no address twice and a task in it; ConfigError otherwise."""
    raw = environ.get("TF_CONFIG")
    fix = "set TF_CONFIG on every worker (README: Training on several machines) or set train.distribution: none"
    if not raw:
        raise ConfigError(f"train.distribution: multi_worker needs the TF_CONFIG environment variable; {fix}")
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        kind, index = task["type"], int(task["index"])
        members = [address for role in ("chief", "worker") for address in cluster.get(role, [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f'TF_CONFIG: not {{"cluster": {{"worker": [host:port, ...]}}, "task": {{"type": "worker", '
                          f'"index": i}}}} ({exc!r}); {fix}') from None
    repeated = sorted({address for address in members if members.count(address) > 1})
    if repeated:
        raise ConfigError(f"TF_CONFIG: {', '.join(repeated)} is listed more than once in the cluster; give each "
                          "worker its own host:port")
    if kind not in ("chief", "worker") or not 0 <= index < len(cluster.get(kind, [])):
        raise ConfigError(f"TF_CONFIG: task {kind} {index} is not in the cluster's {kind} list {cluster.get(kind)}; "
                          "number the workers 0 to N-1 in the order of the list")
    return spec


def is_chief(cfg: TrainConfig, environ: os._Environ | dict = os.environ) -> bool:
    """True where outputs are written: a single process, or the cluster's chief (worker 0 when there is none)."""
    if cfg.distribution != "multi_worker":
        return True
    spec = cluster_spec(environ)
    kind, index = spec["task"]["type"], int(spec["task"]["index"])
    return kind == "chief" or (kind == "worker" and index == 0 and not spec["cluster"].get("chief"))


def task_name(environ: os._Environ | dict = os.environ) -> str:
    """'worker 1 of 2' for a cluster member (TF_CONFIG), 'this process' otherwise."""
    if not environ.get("TF_CONFIG"):
        return "this process"
    spec = cluster_spec(environ)
    kind = spec["task"]["type"]
    return f"{kind} {spec['task']['index']} of {len(spec['cluster'].get(kind, []))}"


def make_strategy(cfg: TrainConfig) -> tf.distribute.Strategy:
    """The strategy `train.distribution` names (call before any other TensorFlow work in the process)."""
    if cfg.distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if cfg.distribution == "multi_worker":
        cluster_spec()
        _patch_keras_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def synchronize_batchnorm(model: keras.Model, cfg: TrainConfig) -> keras.Model:
    """With a distribution, BatchNorm layers use the statistics of the global batch (all-reduced across replicas),
    so every replica keeps the same moving statistics and trains as one process would on the global batch."""
    if cfg.distribution != "none":
        for layer in model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001 - Keras' own walker
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    return model


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Workers split every global batch between them (the cache is read as one stream, not as files)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def float16_supported() -> bool:
    """A GPU with fast float16 (compute capability 7.0+) is visible."""
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= MIN_FLOAT16_CAPABILITY:
            return True
    return False


@contextlib.contextmanager
def precision(cfg: TrainConfig) -> Iterator[str]:
    """Keras' global dtype policy for building and training: `mixed_float16` with `train.mixed_precision` where
    a GPU supports it, float32 (with a warning) where it does not; restored on exit. Yields the policy name."""
    policy = "float32"
    if cfg.mixed_precision:
        if float16_supported():
            policy = MIXED_POLICY
        else:
            warnings.warn("train.mixed_precision: no GPU with float16 support (compute capability 7.0+) here; "
                          "training in float32", stacklevel=2)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


_PATCHED = False


def _patch_keras_multi_worker() -> None:
    """Keras 3's fit() fails under MultiWorkerMirroredStrategy (keras-team/keras#20585): it averages a data batch
    and every scalar metric over axis 0 across workers. Build from the local batch and average scalars whole; the
    gradients are all-reduced by the strategy as always. Checked by the two-worker test, so an upgrade that fixes
    or changes these internals shows there."""
    global _PATCHED
    if _PATCHED:
        return
    from keras.src.backend.tensorflow import trainer

    reduce_per_replica = trainer.reduce_per_replica

    def reduce(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):  # noqa: SLF001
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:  # noqa: SLF001
            return
        if iterator is not None:
            for _, _, batches in iterator:
                local = self.distribute_strategy.experimental_local_results
                data_batch = tf.nest.map_structure(
                    lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)  # noqa: SLF001

    trainer.reduce_per_replica = reduce
    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build  # noqa: SLF001
    _PATCHED = True
