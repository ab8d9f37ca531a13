"""Stage: train the flowers classifier (augmentation in the model or in the dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common import ensure_parent, parser, run
from visionflow import distribute, tracking
from visionflow.keras_cache import weight_files
from visionflow.config import Params, load_params, to_dict


def augmented_examples(cache_dir: Path, params: Params, model, n: int) -> np.ndarray:
    """What the model actually sees: n training images after the configured augmentation."""
    from visionflow import cache
    from visionflow.augment import augment_dataset

    images = cache.load_split(cache_dir, "train").map(lambda ex: (ex["image"], ex["label"])).take(n)
    if params.augment.placement == "dataset":
        seen = augment_dataset(images, params.augment.classifier, params.seed, kind="classifier")
        return np.stack([x for x, _ in seen.as_numpy_iterator()])
    batch = np.stack([x for x, _ in images.as_numpy_iterator()])
    return np.asarray(model.get_layer("augmentation")(batch, training=True))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--cache", type=Path, required=True, help="flowers cache folder")
    p.add_argument("--model", type=Path, required=True, help="output .keras model")
    p.add_argument("--history", type=Path, required=True, help="output per-epoch CSV (dvc plots)")
    p.add_argument("--augmented", type=Path, required=True, help="output PNG of augmented training images")
    p.add_argument("--examples", type=int, default=16)
    args = p.parse_args()
    params = load_params(args.params)
    chief = distribute.is_chief(params.train)  # checks TF_CONFIG before any work
    from visionflow.checkpoints import backup_dir
    from visionflow.classifier_training import train_classifier
    from visionflow import cache
    from visionflow.models.saving import save_model
    from visionflow.models.serving import pixel_examples, raw_pixel_model
    from visionflow.viz import save_history, save_image_grid

    ensure_parent(args.model, args.history, args.augmented)
    with tracking.start_run("train_classifier", params, log=chief) as mlrun:
        mlrun.log_inputs({"flowers cache": args.cache}, "training")
        mlrun.log_inputs(weight_files(params, "classifier"), "weights")  # ImageNet files DVC does not track
        mlrun.log_params({"seed": params.seed, "classifier": to_dict(params.classifier),
                          "augment.placement": params.augment.placement,
                          "augment.offline_copies": params.augment.offline_copies,
                          "augment.classifier": {"ops": str(params.augment.classifier)},
                          "train": to_dict(params.train), "data.source": params.data.source})
        resume = None if params.train.distribution == "multi_worker" else (  # kill -9, then dvc repro: resumes
            backup_dir("train_classifier", to_dict(params), [args.cache]))
        model, history = train_classifier(args.cache, params, callbacks=[mlrun.keras_callback()], backup_dir=resume)
        if not chief:
            print(f"{distribute.task_name()}: trained {len(history)} epochs; the chief writes the model and the run")
            return
        save_model(model, args.model)  # atomic and byte-reproducible
        history.to_csv(args.history, index=False)
        curves = args.history.with_suffix(".png")
        save_history(history, curves)
        seen = augmented_examples(args.cache, params, model, args.examples)
        save_image_grid(list(seen), [f"train #{i}" for i in range(len(seen))], args.augmented)
        mlrun.tag_model_file(args.model)
        mlrun.log_keras_model(raw_pixel_model(model), "classifier",
                              pixel_examples(cache.load_split(args.cache, "val")))
        for path in (args.history, curves, args.augmented):
            mlrun.log_artifact(path, "plots")
    print(f"saved {args.model}; last epoch: {history.iloc[-1].round(4).to_dict()}")


if __name__ == "__main__":
    run(main)
