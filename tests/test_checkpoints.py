"""Resume after a crash: a training interrupted after any epoch and resumed ends with the uninterrupted model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_tiny_cache
from visionflow.checkpoints import backup_dir
from visionflow.config import parse_params, to_dict


class _Crash(Exception):
    pass


class _CrashAt:
    """Raises at the start of epoch `epoch` (0-based), as a kill after the previous epoch's checkpoint would."""

    def __new__(cls, epoch: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                if e == epoch:
                    raise _Crash(f"killed before epoch {e + 1}")

        return Callback()


@pytest.fixture(scope="module")
def flowers_cache(tmp_path_factory):
    return write_tiny_cache(tmp_path_factory.mktemp("ckpt") / "cache", "label", (20, 5, 5))


@pytest.mark.parametrize(("placement", "weight_ema", "mixup_alpha"),
                         [("model", 0.0, 0.0), ("dataset", 0.0, 0.0), ("model", 0.9, 0.0), ("dataset", 0.0, 0.4)])
def test_a_crashed_training_resumes_to_the_uninterrupted_model(flowers_cache, small_params, tmp_path, placement,
                                                              weight_ema, mixup_alpha):
    from visionflow.classifier_training import train_classifier

    raw = to_dict(small_params)
    raw["classifier"].update(image_size=32, epochs=3, batch_size=8, filters=[4, 8], dense_units=8,
                             weight_ema=weight_ema,  # the average of the steps before the crash is resumed too
                             mixup_alpha=mixup_alpha)  # and the mixing of the batches after it
    raw["augment"]["placement"] = placement
    params = parse_params(raw, source="test")
    reference, ref_history = train_classifier(flowers_cache, params)

    folder = backup_dir("train_classifier", raw, [flowers_cache], root=tmp_path / "ckpt")
    with pytest.raises(_Crash):
        train_classifier(flowers_cache, params, callbacks=[_CrashAt(2)], backup_dir=folder)
    assert [p.name for p in folder.iterdir()] == ["epoch-2"]
    resumed, history = train_classifier(flowers_cache, params, backup_dir=folder)
    for a, b in zip(reference.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert history.round(6).equals(ref_history.round(6)) and list(history["epoch"]) == [1, 2, 3]
    assert not folder.exists()  # a finished fit deletes its checkpoint


def test_a_checkpoint_of_other_settings_or_data_is_not_resumed_and_is_removed(flowers_cache, tmp_path):
    root = tmp_path / "ckpt"
    first = backup_dir("train_classifier", {"epochs": 3}, [flowers_cache], root=root)
    first.mkdir(parents=True)
    assert backup_dir("train_classifier", {"epochs": 3}, [flowers_cache], root=root) == first
    other = backup_dir("train_classifier", {"epochs": 4}, [flowers_cache], root=root)
    assert other != first and not first.exists()
    other.mkdir()
    (tmp_path / "changed").mkdir()
    (tmp_path / "changed" / "x").write_bytes(b"1")
    assert backup_dir("train_classifier", {"epochs": 4}, [tmp_path / "changed"], root=root) != other


def _two_phase(small_params, **fine_tune):
    raw = to_dict(small_params)
    raw["classifier"].update(image_size=32, epochs=4, batch_size=8, backbone="mobilenet_v2",
                             encoder={"weights": None, "alpha": 0.35, "trainable": False},
                             fine_tune={"epochs": 2, "from_block": 15, "learning_rate": 0.001, **fine_tune})
    return raw, parse_params(raw, source="test")


class _FirstWeights:
    """Records the encoder's weights when training starts."""

    def __new__(cls, store: dict):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                if not store:
                    encoder = self.model.get_layer("backbone").get_layer("mobilenet_v2")
                    store.update({w.path: np.array(w) for w in encoder.weights})

        return Callback()


def test_two_phase_fine_tuning_trains_only_the_top_blocks_and_never_the_batchnorm_statistics(
        flowers_cache, small_params):
    from visionflow.classifier_training import train_classifier

    _, params = _two_phase(small_params)
    start: dict = {}
    model, history = train_classifier(flowers_cache, params, callbacks=[_FirstWeights(start)])
    assert list(history["epoch"]) == [1, 2, 3, 4]
    after = {w.path: np.array(w) for w in model.get_layer("backbone").get_layer("mobilenet_v2").weights}
    changed = {path for path in start if not np.array_equal(start[path], after[path])}
    assert changed and all("block_15" in p or "block_16" in p or "Conv_1" in p for p in changed), sorted(changed)
    assert any("block_16_project/kernel" in p for p in changed)
    assert not any("moving" in p or "_bn/" in p.lower() or "BN/" in p for p in changed)  # BatchNorm frozen


@pytest.mark.parametrize("crash_at", [1, 2, 3])  # in phase one, at the switch, in phase two
def test_a_crashed_two_phase_training_resumes_to_the_uninterrupted_model(flowers_cache, small_params, tmp_path,
                                                                        crash_at):
    from visionflow.classifier_training import train_classifier

    raw, params = _two_phase(small_params)
    reference, ref_history = train_classifier(flowers_cache, params)
    folder = backup_dir("train_classifier", raw, [flowers_cache], root=tmp_path / "ckpt")
    with pytest.raises(_Crash):
        train_classifier(flowers_cache, params, callbacks=[_CrashAt(crash_at)], backup_dir=folder)
    assert [p.name for p in folder.iterdir()] == [f"epoch-{crash_at}"]
    resumed, history = train_classifier(flowers_cache, params, backup_dir=folder)
    for a, b in zip(reference.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert history.round(6).equals(ref_history.round(6)) and list(history["epoch"]) == [1, 2, 3, 4]
    assert not folder.exists()
