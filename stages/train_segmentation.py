"""Stage: train the MobileNetV2 U-Net on the pets cache; save the model and its training curves."""

from __future__ import annotations

from pathlib import Path

from stages.common import ensure_parent, parser, run
from visionflow import distribute, tracking
from visionflow.keras_cache import weight_files
from visionflow.config import load_params, to_dict


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--cache", type=Path, required=True, help="pets cache folder")
    p.add_argument("--model", type=Path, required=True, help="output .keras model")
    p.add_argument("--history", type=Path, required=True, help="output per-epoch CSV (dvc plots)")
    args = p.parse_args()
    params = load_params(args.params)
    chief = distribute.is_chief(params.train)  # checks TF_CONFIG before any work
    from visionflow.checkpoints import resume_dir
    from visionflow.training import save_outputs, train_segmentation
    from visionflow import cache
    from visionflow.models.serving import pixel_examples, raw_pixel_model

    ensure_parent(args.model, args.history)
    with tracking.start_run("train_segmentation", params, log=chief) as mlrun:
        mlrun.log_inputs({"pets cache": args.cache}, "training")
        mlrun.log_inputs(weight_files(params, "segmentation"), "weights")  # ImageNet files DVC does not track
        mlrun.log_params({"seed": params.seed, "segmentation": to_dict(params.segmentation),
                          "augment.segmentation": {"ops": str(params.augment.segmentation)},
                          "train": to_dict(params.train), "data.source": params.data.source})
        resume = resume_dir("train_segmentation", params, [args.cache])
        model, history = train_segmentation(args.cache, params, callbacks=[mlrun.keras_callback()], backup_dir=resume)
        if not chief:
            print(f"{distribute.task_name()}: trained {len(history)} epochs; the chief writes the model and the run")
            return
        curves = save_outputs(model, history, args.model, args.history)
        mlrun.tag_model_file(args.model)
        mlrun.log_keras_model(raw_pixel_model(model), "segmentation",
                              pixel_examples(cache.load_split(args.cache, "val")))
        mlrun.log_artifact(args.history, "plots")
        mlrun.log_artifact(curves, "plots")
    print(f"saved {args.model}; last epoch: " + history.iloc[-1].round(4).to_dict().__repr__())


if __name__ == "__main__":
    run(main)
