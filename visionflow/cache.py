"""tf.data caches: decoded, resized, split datasets persisted with `Dataset.save`, byte-reproducibly.

Layout of a cache folder: `<split>/` (one `Dataset.save` folder per split: train, val, test) and
`info.json` (class names, image size, example counts). Elements are dicts:
pets    {"image": float32 (S, S, 3) in [0, 1], "mask": uint8 (S, S, 1) in {0, 1, 2}, "file_name": str,
         "species": int64 (0 cat, 1 dog)}
flowers {"image": float32 (S, S, 3) in [0, 1], "label": int64}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import tensorflow as tf

from visionflow.classes import MASK_CLASSES, TRIMAP_VALUES
from visionflow.files import atomic_output

if TYPE_CHECKING:
    from visionflow.config import Params

AUTOTUNE = tf.data.AUTOTUNE

SPLITS = ("train", "val", "test")
_RUN_ID = "0"  # fixed name for the shard folder Dataset.save would otherwise name at random


class CacheError(ValueError):
    """A cache folder is missing, incomplete or not what a stage expects."""


def _normalise_snapshot(path: Path) -> None:
    # Dataset.save names its shard folder with a random run id, stamps the creation time into
    # snapshot.metadata and writes the element spec's dict fields in hash order: each would change the
    # DVC hash of identical data. Pin them.
    from tensorflow.core.protobuf import snapshot_pb2, struct_pb2

    spec_path = path / "dataset_spec.pb"
    spec = struct_pb2.StructuredValue()
    spec.ParseFromString(spec_path.read_bytes())
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))

    meta_path = path / "snapshot.metadata"
    meta = snapshot_pb2.SnapshotMetadataRecord()
    meta.ParseFromString(meta_path.read_bytes())
    if meta.run_id != _RUN_ID:
        (path / meta.run_id).rename(path / _RUN_ID)
    meta.run_id = _RUN_ID
    meta.creation_timestamp = 0
    meta_path.write_bytes(meta.SerializeToString(deterministic=True))


def save_split(ds: tf.data.Dataset, path: Path, num_shards: int) -> int:
    """Persist `ds` at `path` in `num_shards` shards and return its number of elements."""
    ds.enumerate().save(str(path), shard_func=lambda i, _: i % num_shards)
    _normalise_snapshot(Path(path))
    saved = tf.data.Dataset.load(str(path))
    count = int(saved.cardinality())  # from the snapshot's metadata, without reading the elements back
    return count if count >= 0 else int(saved.reduce(0, lambda n, _: n + 1))


def load_split(cache_dir: Path, split: str) -> tf.data.Dataset:
    """The elements of one split of a cache, in their saved order (on any machine)."""
    return load_indexed(cache_dir, split).map(lambda i, x: x)


def load_indexed(cache_dir: Path, split: str) -> tf.data.Dataset:
    """(saved index, element) pairs of one split, in saved order on any machine.

    `save_split` deals element i to shard i % n. `Dataset.load`'s default reader interleaves the shards
    with `cycle_length=cpu_count()`, so the order would depend on the machine; a deterministic round
    robin over exactly the n shards gives back 0, 1, 2, ...
    """
    path = Path(cache_dir) / split
    if not (path / "snapshot.metadata").is_file():
        raise CacheError(f"{path}: no saved dataset here (run `dvc repro` to build the cache)")
    shards = max(1, len(list((path / _RUN_ID).glob("*.shard"))))
    return tf.data.Dataset.load(str(path), reader_func=lambda datasets: datasets.interleave(
        lambda shard: shard, cycle_length=shards, block_length=1))


def read_info(cache_dir: Path) -> dict:
    """The cache's info.json (class names, image size, counts)."""
    path = Path(cache_dir) / "info.json"
    if not path.is_file():
        raise CacheError(f"{path}: missing (the cache at {cache_dir} is incomplete; rebuild it with `dvc repro`)")
    return json.loads(path.read_text())


def write_cache(splits: dict[str, tf.data.Dataset], out_dir: Path, info: dict, num_shards: int) -> dict:
    """Write every split and info.json into a temp folder, then rename it to `out_dir` (never half-written)."""
    out_dir = Path(out_dir)
    counts = {}
    with atomic_output(out_dir, directory=True) as tmp:
        for name, ds in splits.items():
            print(f"writing {name} split to {out_dir / name} ...", flush=True)
            counts[name] = save_split(ds, tmp / name, num_shards)
            if counts[name] == 0:
                raise CacheError(f"split '{name}' is empty: check the data source and the split fractions in "
                                 "params.yaml")
        info = {**info, "counts": counts}
        (tmp / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def resize_image(image: tf.Tensor, size: int, mode: str = "stretch") -> tf.Tensor:
    """uint8 (H, W, 3) -> float32 (size, size, 3) in [0, 1] (bilinear, antialiased). `mode` (`ResizeMode`):
    `stretch` the whole image to the square, or keep its aspect: `crop` its central square, or `pad` it with black."""
    image = tf.cast(image, tf.float32)
    if mode == "stretch":
        image = tf.image.resize(image, (size, size), antialias=True)
    else:
        import keras

        image = keras.ops.image.resize(image, (size, size), antialias=True, crop_to_aspect_ratio=mode == "crop",
                                       pad_to_aspect_ratio=mode == "pad")
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def resize_mask(mask: tf.Tensor, size: int) -> tf.Tensor:
    """Trimap uint8 (H, W, 1) in {1, 2, 3} -> uint8 (size, size, 1) in {0, 1, 2} (nearest neighbour)."""
    mask = tf.image.resize(mask, (size, size), method="nearest")
    return tf.cast(mask, tf.uint8) - TRIMAP_VALUES[0]  # trimap values -> MASK_CLASSES indices


def pets_example(example: dict, size: int) -> dict:
    """A TFDS oxford_iiit_pet example -> a cache element."""
    return {
        "image": resize_image(example["image"], size),
        "mask": resize_mask(example["segmentation_mask"], size),
        "file_name": example["file_name"],
        "species": example["species"],
    }


def in_val(file_name: tf.Tensor, val_fraction: float, seed: int) -> tf.Tensor:
    """Seeded, order-independent membership of a trainval example in the validation split."""
    buckets = 10_000
    bucket = tf.strings.to_hash_bucket_strong(file_name, buckets, key=[seed, 0])
    return bucket < int(round(val_fraction * buckets))


def fold_of(file_name: tf.Tensor, folds: int, seed: int) -> tf.Tensor:
    """Seeded, order-independent fold (0 .. folds-1) of an example, for k-fold cross-validation."""
    return tf.strings.to_hash_bucket_strong(file_name, folds, key=[seed, 1])


def pets_splits(builder, size: int, val_fraction: float, seed: int, folds: int = 1,
                fold: int = 0) -> dict[str, tf.data.Dataset]:
    """train/val carved from TFDS `train` (trainval) by a seeded hash of the file name; test = TFDS `test`.

    With `folds` > 1 the two TFDS splits are pooled: test = the images of fold `fold`, train/val = the rest.
    """
    trainval, test = (builder.as_dataset(split=split, shuffle_files=False) for split in ("train", "test"))
    if folds > 1:
        pool = trainval.concatenate(test)
        trainval = pool.filter(lambda ex: fold_of(ex["file_name"], folds, seed) != fold)
        test = pool.filter(lambda ex: fold_of(ex["file_name"], folds, seed) == fold)
    prep = lambda ex: pets_example(ex, size)  # noqa: E731
    return {
        "train": trainval.filter(lambda ex: ~in_val(ex["file_name"], val_fraction, seed)).map(prep, AUTOTUNE),
        "val": trainval.filter(lambda ex: in_val(ex["file_name"], val_fraction, seed)).map(prep, AUTOTUNE),
        "test": test.map(prep, AUTOTUNE),
    }


def _decode(builder, example: dict, images: Sequence[str]) -> dict:
    """Decode the features read with `tfds.decode.SkipDecoding`, exactly as TFDS would (the features' own decoders)."""
    features = builder.info.features
    return {**example, **{name: features[name].decode_example(example[name]) for name in images}}


def stratified_indices(labels: Sequence[int], fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Split example indices into train/val/test per class with the given fractions (deterministic); val holds at
    least one image per class (as in kfold_indices), taken from test when the fraction gives fewer."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    index = np.arange(len(labels))
    holdout = fractions["val"] + fractions["test"]
    try:
        train, rest = train_test_split(index, test_size=holdout, stratify=labels, random_state=seed)
        test_size: float | int = fractions["test"] / holdout
        n_classes = len(np.unique(labels))
        if len(rest) - math.ceil(test_size * len(rest)) < n_classes:  # sklearn rounds the test share up
            test_size = len(rest) - n_classes
        val, test = train_test_split(rest, test_size=test_size, stratify=labels[rest], random_state=seed)
    except ValueError as exc:  # too few images of a class for a stratified split
        raise CacheError(
            f"data.flowers_split: cannot split {len(labels)} images into train/val/test by class ({exc}); "
            "add images or change the fractions"
        ) from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def kfold_indices(labels: Sequence[int], folds: int, fold: int, val_share: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified k-fold: test = fold `fold`; val = a stratified `val_share` of the rest; train = the others."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    labels = np.asarray(labels)
    try:
        rest, test = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))[fold]
        n_val = max(len(np.unique(labels)), round(val_share * len(rest)))  # at least one image per class
        train, val = train_test_split(rest, test_size=n_val, stratify=labels[rest], random_state=seed)
    except ValueError as exc:  # fewer images of a class than folds
        raise CacheError(f"data.folds: cannot split {len(labels)} images into {folds} folds by class ({exc}); "
                         "use fewer folds") from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def flowers_splits(builder, size: int, fractions: dict[str, float], seed: int, folds: int = 1,
                   fold: int = 0, resize: str = "stretch") -> dict[str, tf.data.Dataset]:
    """Stratified train/val/test of TFDS `train` (tf_flowers has no official split); k-fold when `folds` > 1;
    photos resized to the square as `resize_image`'s `mode`."""
    import tensorflow_datasets as tfds

    raw = builder.as_dataset(split="train", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    labels = [int(label) for label in raw.map(lambda ex: ex["label"]).as_numpy_iterator()]
    if folds > 1:
        parts = kfold_indices(labels, folds, fold, fractions["val"] / (fractions["train"] + fractions["val"]), seed)
    else:
        parts = stratified_indices(labels, fractions, seed)
    full = raw.enumerate()
    out = {}
    for name, idx in parts.items():
        member = tf.constant(np.isin(np.arange(len(labels)), idx))
        out[name] = full.filter(lambda i, ex, m=member: tf.gather(m, i)).map(
            lambda i, ex: {"image": resize_image(_decode(builder, ex, ["image"])["image"], size, resize),
                           "label": ex["label"]}, AUTOTUNE)
    return out


def with_offline_copies(train: tf.data.Dataset, params: Params, kind: str) -> tf.data.Dataset:
    """The training split followed by `augment.offline_copies` seeded augmented copies of it, so that DVC
    versions them with the cache; copy c of a pet is named `<file_name>#aug<c>`."""
    from visionflow.augment import offline_copies

    k = params.augment.offline_copies
    if k == 0:
        return train
    target = "mask" if kind == "segmentation" else "label"
    ops = params.augment.segmentation if kind == "segmentation" else params.augment.classifier
    copies = offline_copies(train.map(lambda ex: (ex["image"], ex[target])), ops, params.seed, k, kind=kind)
    if kind == "classifier":
        return train.concatenate(copies.map(lambda image, label: {"image": image, "label": label}))
    # offline_copies concatenates copy 1..K of the split in order: name each after its source and copy.
    names = train.map(lambda ex: ex["file_name"])
    names = tf.data.Dataset.range(1, k + 1).flat_map(
        lambda c: names.map(lambda n: tf.strings.join([n, "#aug", tf.strings.as_string(c)])))
    species = train.map(lambda ex: ex["species"]).repeat(k)
    return train.concatenate(tf.data.Dataset.zip(copies, names, species).map(
        lambda pair, name, sp: {"image": pair[0], "mask": pair[1], "file_name": name, "species": sp}))


def dataset_splits(builder, dataset: str, params: Params) -> tuple[dict[str, tf.data.Dataset], dict]:
    """The splits of a prepared `pets` or `flowers` dataset as params.yaml asks (size, split or fold, offline
    copies), and the cache's info.json fields."""
    data = params.data
    if dataset == "pets":
        size = params.segmentation.image_size
        splits = pets_splits(builder, size, data.val_fraction, params.seed, data.folds, data.fold)
        splits["train"] = with_offline_copies(splits["train"], params, "segmentation")
        info = {"dataset": "oxford_iiit_pet", "class_names": list(MASK_CLASSES), "image_size": size}
    else:
        size = params.classifier.image_size
        fractions = {"train": data.flowers_split.train, "val": data.flowers_split.val, "test": data.flowers_split.test}
        splits = flowers_splits(builder, size, fractions, params.seed, data.folds, data.fold, data.flowers_resize)
        splits["train"] = with_offline_copies(splits["train"], params, "classifier")
        info = {"dataset": "tf_flowers", "class_names": builder.info.features["label"].names, "image_size": size}
    info["offline_copies"] = params.augment.offline_copies
    if data.folds > 1:
        info["cross_validation"] = {"folds": data.folds, "fold": data.fold}
    return splits, info
