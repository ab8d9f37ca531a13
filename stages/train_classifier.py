"""Stage: train the flowers classifier (augmentation in the model or in the dataset)."""

from __future__ import annotations

from pathlib import Path

from stages.common import ensure_parent, parser, run
from visionflow import distribute, tracking
from visionflow.keras_cache import weight_files
from visionflow.config import load_params, to_dict


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
    from visionflow.augment import augmented_examples
    from visionflow.checkpoints import resume_dir
    from visionflow.classifier_training import train_classifier
    from visionflow.training import save_outputs
    from visionflow import cache
    from visionflow.models.serving import pixel_examples, raw_pixel_model
    from visionflow.viz import save_image_grid

    ensure_parent(args.model, args.history, args.augmented)
    with tracking.start_run("train_classifier", params, log=chief) as mlrun:
        mlrun.log_inputs({"flowers cache": args.cache}, "training")
        mlrun.log_inputs(weight_files(params, "classifier"), "weights")  # ImageNet files DVC does not track
        mlrun.log_params({"seed": params.seed, "classifier": to_dict(params.classifier),
                          "augment.placement": params.augment.placement,
                          "augment.offline_copies": params.augment.offline_copies,
                          "augment.classifier": {"ops": str(params.augment.classifier)},
                          "train": to_dict(params.train), "data.source": params.data.source})
        resume = resume_dir("train_classifier", params, [args.cache])
        model, history = train_classifier(args.cache, params, callbacks=[mlrun.keras_callback()], backup_dir=resume)
        if not chief:
            print(f"{distribute.task_name()}: trained {len(history)} epochs; the chief writes the model and the run")
            return
        curves = save_outputs(model, history, args.model, args.history)
        train = cache.load_split(args.cache, "train").map(lambda ex: (ex["image"], ex["label"]))
        seen = augmented_examples(train, params.augment, params.seed, model, args.examples)
        save_image_grid(list(seen), [f"train #{i}" for i in range(len(seen))], args.augmented)
        mlrun.tag_model_file(args.model)
        mlrun.log_keras_model(raw_pixel_model(model), "classifier",
                              pixel_examples(cache.load_split(args.cache, "val")))
        for path in (args.history, curves, args.augmented):
            mlrun.log_artifact(path, "plots")
    print(f"saved {args.model}; last epoch: {history.iloc[-1].round(4).to_dict()}")


if __name__ == "__main__":
    run(main)
