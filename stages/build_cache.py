"""Stage: decode, resize, normalise and split a prepared dataset into a tf.data cache (Dataset.save)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from stages.common import parser, run
from visionflow import cache, tracking
from visionflow.config import Params, load_params


def _with_offline_copies(train: tf.data.Dataset, params: Params, kind: str, target: str) -> tf.data.Dataset:
    # K seeded augmented copies of the training split live in the cache, so DVC versions them.
    from visionflow.augment import offline_copies

    k = params.augment.offline_copies
    if k == 0:
        return train
    ops = params.augment.segmentation if kind == "segmentation" else params.augment.classifier
    pairs = train.map(lambda ex: (ex["image"], ex[target]))
    copies = offline_copies(pairs, ops, params.seed, k, kind=kind)
    if kind == "segmentation":
        # offline_copies concatenates copy 1..K of the split in order: name each after its source and copy.
        names = train.map(lambda ex: ex["file_name"])
        names = tf.data.Dataset.range(1, k + 1).flat_map(
            lambda c: names.map(lambda n: tf.strings.join([n, "#aug", tf.strings.as_string(c)])))
        species = train.map(lambda ex: ex["species"]).repeat(k)
        extra = tf.data.Dataset.zip(copies, names, species).map(
            lambda pair, name, sp: {"image": pair[0], "mask": pair[1], "file_name": name, "species": sp})
    else:
        extra = copies.map(lambda image, label: {"image": image, "label": label})
    return train.concatenate(extra)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", choices=["pets", "flowers"], required=True)
    p.add_argument("--data", type=Path, required=True, help="prepared dataset folder (output of download)")
    p.add_argument("--out", type=Path, required=True, help="cache folder (a DVC output)")
    p.add_argument("--shards", type=int, default=4, help="files per split (no effect on results)")
    args = p.parse_args()
    params = load_params(args.params)
    from visionflow.data.tfds_source import open_prepared

    builder = open_prepared(args.data / "tfds")
    if args.dataset == "pets":
        size = params.segmentation.image_size
        splits = cache.pets_splits(builder, size, params.data.val_fraction, params.seed, params.data.folds,
                                   params.data.fold)
        splits["train"] = _with_offline_copies(splits["train"], params, "segmentation", "mask")
        info = {"dataset": "oxford_iiit_pet", "class_names": list(cache.MASK_CLASSES), "image_size": size}
    else:
        size = params.classifier.image_size
        fractions = {"train": params.data.flowers_split.train, "val": params.data.flowers_split.val,
                     "test": params.data.flowers_split.test}
        splits = cache.flowers_splits(builder, size, fractions, params.seed, params.data.folds, params.data.fold)
        splits["train"] = _with_offline_copies(splits["train"], params, "classifier", "label")
        info = {"dataset": "tf_flowers", "class_names": builder.info.features["label"].names, "image_size": size}
    info["offline_copies"] = params.augment.offline_copies
    if params.data.folds > 1:
        info["cross_validation"] = {"folds": params.data.folds, "fold": params.data.fold}
    with tracking.start_run(f"build_cache_{args.dataset}", params) as mlrun:
        mlrun.log_inputs({f"{args.dataset} prepared": args.data}, "preparation")
        written = cache.write_cache(splits, args.out, info, args.shards)
        mlrun.log_params({"image_size": size, "offline_copies": params.augment.offline_copies, "shards": args.shards})
        mlrun.log_metrics({f"{split}_examples": n for split, n in written["counts"].items()})
    print(f"cache {args.out}: " + ", ".join(f"{k}={v}" for k, v in written["counts"].items()))


if __name__ == "__main__":
    run(main)
