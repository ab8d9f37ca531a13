"""Real-sample quality: visionflow's real-data settings vs the reference tutorial configurations.

Trains every variant with the same budget (image size, batch size, epochs) on the same machine, on the real
Oxford-IIIT Pet and flower_photos samples read through `data.source: directory`, and prints a Markdown
table. The variants form a ladder from the reference to our real-data defaults, so each row shows what one
change adds. ImageNet weights come from the Keras cache under KERAS_HOME.

    KERAS_HOME=/path/to/keras-cache python scripts/compare_reference.py \
        --pets-dir ../shared/datasets/oxford_iiit_pet --flowers-dir ../shared/datasets/flower_photos/flower_photos
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from visionflow.config import Params, load_params, parse_params, to_dict  # noqa: E402
from visionflow.overrides import merge  # noqa: E402

FLIP = [{"op": "flip", "mode": "horizontal"}]
SEG_AUGMENT = FLIP + [
    {"op": "rotate", "factor": 0.05},
    {"op": "zoom", "factor": 0.15},
    {"op": "brightness", "max_delta": 0.1},
    {"op": "contrast", "lower": 0.8, "upper": 1.2},
]
# Each segmentation variant adds one change to the one before it.
SEGMENTATION = {
    "reference (tutorial)": {"segmentation": {"encoder": {"weights": "imagenet", "alpha": 0.5, "trainable": False}},
                             "augment": {"segmentation": FLIP}},
    "+ spatial/colour augmentation": {"augment": {"segmentation": SEG_AUGMENT}},
    "+ border weight 3": {"segmentation": {"border_weight": 3.0}},
    "+ fine-tune encoder, lr 5e-4": {"segmentation": {"encoder": {"trainable": True}, "learning_rate": 0.0005}},
    "+ cosine schedule": {"segmentation": {"lr_schedule": "cosine"}},
}
CLASSIFIER = {
    "reference (tutorial)": {"classifier": {"backbone": "small_cnn"},
                             "augment": {"placement": "model", "classifier": [
                                 {"op": "random_flip", "mode": "horizontal_and_vertical"},
                                 {"op": "random_rotation", "factor": 0.2}]}},
    "+ MobileNetV2 ImageNet backbone (frozen)": {"classifier": {"backbone": "mobilenet_v2", "encoder": {
        "weights": "imagenet", "alpha": 0.5, "trainable": False}}},
    "+ zoom and contrast augmentation": {"augment": {"classifier": [
        {"op": "random_flip", "mode": "horizontal"}, {"op": "random_rotation", "factor": 0.1},
        {"op": "random_zoom", "factor": 0.2}, {"op": "random_contrast", "factor": 0.2}]}},
}


def prepare(params: Params, pets_dir: Path, flowers_dir: Path, work: Path) -> tuple[Path, Path]:
    """Prepare both real samples as TFDS datasets and build the seg/cls caches once."""
    from visionflow import cache
    from visionflow.data import flowers, pets
    from visionflow.data.tfds_source import open_prepared

    pets_cache, flowers_cache = work / "cache_pets", work / "cache_flowers"
    if not (pets_cache / "info.json").is_file():
        pets.prepare_local(pets_dir, work / "pets", max_image_side=params.data.max_image_side)
        builder = open_prepared(work / "pets")
        cache.write_cache(cache.pets_splits(builder, params.segmentation.image_size, params.data.val_fraction,
                                            params.seed), pets_cache,
                          {"class_names": list(cache.MASK_CLASSES), "image_size": params.segmentation.image_size}, 2)
    if not (flowers_cache / "info.json").is_file():
        flowers.prepare_local(flowers_dir, work / "flowers", max_image_side=params.data.max_image_side)
        builder = open_prepared(work / "flowers")
        split = params.data.flowers_split
        cache.write_cache(cache.flowers_splits(builder, params.classifier.image_size,
                                               {"train": split.train, "val": split.val, "test": split.test},
                                               params.seed), flowers_cache,
                          {"class_names": builder.info.features["label"].names,
                           "image_size": params.classifier.image_size}, 2)
    return pets_cache, flowers_cache


def evaluate_segmentation(model, cache_dir: Path, batch_size: int) -> dict:
    from visionflow import cache
    from visionflow.evaluation import segmentation_metrics
    from visionflow.inference import segment_batches

    test = cache.load_split(cache_dir, "test").map(lambda ex: (ex["image"], ex["mask"])).batch(batch_size)
    confusion, _ = segment_batches(model, test, len(cache.MASK_CLASSES))
    return segmentation_metrics(confusion, list(cache.MASK_CLASSES))


def evaluate_classifier(model, cache_dir: Path, batch_size: int) -> dict:
    from visionflow import cache
    from visionflow.evaluation import classification_metrics
    from visionflow.inference import classify_batches

    names = cache.read_info(cache_dir)["class_names"]
    test = cache.load_split(cache_dir, "test").map(lambda ex: (ex["image"], ex["label"])).batch(batch_size)
    _, truth, pred, _ = classify_batches(model, test)
    return classification_metrics(truth, pred, names)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pets-dir", type=Path, required=True)
    p.add_argument("--flowers-dir", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("data/compare"))
    p.add_argument("--seg-epochs", type=int, default=15)
    p.add_argument("--cls-epochs", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path("reports/real_samples.json"))
    p.add_argument("--only", choices=["segmentation", "classifier"], help="run one task")
    args = p.parse_args()

    from visionflow.training import train_classifier, train_segmentation

    base = to_dict(load_params("params.yaml"))
    base = merge(base, {"data": {"source": "directory", "pets_dir": str(args.pets_dir),
                                 "flowers_dir": str(args.flowers_dir)},
                        "segmentation": {"epochs": args.seg_epochs}, "classifier": {"epochs": args.cls_epochs}})
    params = parse_params(base)
    pets_cache, flowers_cache = prepare(params, args.pets_dir, args.flowers_dir, args.work)
    results: dict[str, list] = {"segmentation": [], "classifier": []}
    tasks = {"segmentation": (SEGMENTATION, train_segmentation, evaluate_segmentation, pets_cache),
             "classifier": (CLASSIFIER, train_classifier, evaluate_classifier, flowers_cache)}
    for task, (ladder, train, evaluate, cache_dir) in tasks.items():
        if args.only and task != args.only:
            continue
        raw = base
        for name, change in ladder.items():
            raw = merge(raw, change)
            variant = parse_params(raw)
            start = time.perf_counter()
            model, history = train(cache_dir, variant)
            seconds = time.perf_counter() - start
            metrics = evaluate(model, cache_dir, getattr(variant, task).batch_size)
            row = {"variant": name, "train_seconds": round(seconds, 1), "epochs": len(history),
                   **{k: metrics[k] for k in ("mean_iou", "pixel_accuracy", "iou", "accuracy", "macro_f1")
                      if k in metrics}}
            print(json.dumps(row), flush=True)
            results[task].append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for task, rows in results.items():
        if rows:
            keys = ["mean_iou", "pixel_accuracy"] if task == "segmentation" else ["accuracy", "macro_f1"]
            print(f"\n{task}\n| variant | " + " | ".join(keys) + " | train s |\n|---|" + "---|" * (len(keys) + 1))
            for r in rows:
                print(f"| {r['variant']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {r['train_seconds']} |")


if __name__ == "__main__":
    main()
