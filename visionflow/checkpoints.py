"""Resume after a crash: per-epoch training checkpoints kept outside the DVC outputs.

A training stage checkpoints into `.checkpoints/<stage>-<fingerprint>/` (gitignored; DVC never sees it). The
fingerprint hashes the params and the content of the stage's inputs, so a checkpoint is only ever resumed by
a run with the same settings and data; folders another fingerprint of the stage left behind are removed.

Each epoch is written whole into a new `epoch-<n>/` folder (weights with the optimizer state, the Keras
random-layer seed states, which `save_weights` leaves out, and the per-epoch logs) and then renamed into
place, so a kill at any moment leaves either the previous epoch or the new one, never half of one. A finished
`fit` deletes the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

import keras
import numpy as np
import pandas as pd

from visionflow.files import atomic_output

ROOT = Path(".checkpoints")
_WEIGHTS, _SEEDS, _STATE = "model.weights.h5", "seeds.npz", "state.json"


def backup_dir(stage: str, params: Mapping[str, Any], inputs: Iterable[Path], root: Path = ROOT) -> Path:
    """The checkpoint folder of `stage` for these params and input contents; removes the stage's others."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for base in map(Path, inputs):
        for path in sorted([base] if base.is_file() else base.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(base).as_posix().encode())
                with path.open("rb") as f:  # streamed: a cache can be larger than memory
                    digest.update(hashlib.file_digest(f, "sha256").digest())
    folder = Path(root) / f"{stage}-{digest.hexdigest()[:16]}"
    for other in Path(root).glob(f"{stage}-*"):
        if other != folder:
            print(f"removing {other}: a checkpoint of {stage} with other settings or data", flush=True)
            shutil.rmtree(other)
    return folder


def resume_dir(stage: str, params: Any, inputs: Iterable[Path]) -> Path | None:
    """backup_dir for a training stage (kill -9, then `dvc repro`: it resumes), or None under multi_worker
    distribution, where every worker must start from the same epoch."""
    if params.train.distribution == "multi_worker":
        return None
    from visionflow.config import to_dict

    return backup_dir(stage, to_dict(params), inputs)


def _seed_states(model: keras.Model) -> list:
    """The state variables of every seed generator in the model (random augmentation, dropout), in build order."""
    layers = model._flatten_layers(include_self=True, recursive=True)  # noqa: SLF001 - Keras' own walker
    return [gen.state for layer in layers for gen in getattr(layer, "_seed_generators", [])]


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore with whole-epoch atomic checkpoints that also carry seed states and history."""

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = Path(folder)
        for partial in self.folder.glob(".epoch-*"):  # a kill while an epoch was being written
            shutil.rmtree(partial)
        done = sorted(self.folder.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))
        self._latest = done[-1] if done else None
        state = json.loads((self._latest / _STATE).read_text()) if self._latest else {"epoch": 0, "history": []}
        self.start_epoch: int = state["epoch"]
        self._rows: list[dict] = state["history"]

    def forget(self) -> None:
        """Resume nothing more: the model in memory is ahead of the checkpoint read at start (phase two)."""
        self._latest = None

    def _load_model(self) -> None:
        if self._latest is None:
            return
        print(f"resuming from {self._latest} (epoch {self.start_epoch} done)", flush=True)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self._latest / _WEIGHTS)
        seeds = np.load(self._latest / _SEEDS)
        for i, state in enumerate(_seed_states(self.model)):
            state.assign(seeds[f"s{i}"])
        self.model._initial_epoch = self.start_epoch  # noqa: SLF001 - how BackupAndRestore hands it to fit

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        self._rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        super().on_epoch_end(epoch, logs)

    def _save_model(self) -> None:
        final = self.folder / f"epoch-{self._current_epoch}"
        with atomic_output(final, directory=True) as tmp:
            self.model.save_weights(tmp / _WEIGHTS)
            np.savez(tmp / _SEEDS, **{f"s{i}": np.asarray(s) for i, s in enumerate(_seed_states(self.model))})
            (tmp / _STATE).write_text(json.dumps({"epoch": self._current_epoch, "history": self._rows}))
        for old in self.folder.glob("epoch-*"):
            if old != final:
                shutil.rmtree(old)

    def history(self) -> pd.DataFrame:
        """Every epoch's logs, resumed ones included: the columns of `training.history_frame`."""
        return pd.DataFrame(self._rows)
