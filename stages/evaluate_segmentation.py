"""Stage: evaluate the U-Net on the pets test split: metrics JSON and a prediction grid."""

from __future__ import annotations

from pathlib import Path

from stages.common import parser, run
from visionflow.files import write_json
from visionflow import tracking
from visionflow.config import load_params


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="output metrics JSON")
    p.add_argument("--figure", type=Path, required=True, help="output PNG grid: image | true | predicted")
    p.add_argument("--examples", type=int, default=6, help="rows in the figure")
    args = p.parse_args()
    params = load_params(args.params)
    from visionflow import cache
    from visionflow.evaluation import majority_baseline, segmentation_metrics
    from visionflow.inference import load_model, segmentation_confusion
    from visionflow.viz import save_segmentation_grid

    model = load_model(args.model)
    test = cache.load_split(args.cache, "test").map(lambda ex: (ex["image"], ex["mask"]))
    confusion, examples = segmentation_confusion(model, test.batch(params.segmentation.batch_size),
                                          len(cache.MASK_CLASSES), keep=args.examples,
                                          flip=params.evaluation.test_time_flip)
    metrics = segmentation_metrics(confusion, list(cache.MASK_CLASSES))
    metrics["majority_baseline"] = majority_baseline(confusion, list(cache.MASK_CLASSES))
    write_json(metrics, args.metrics)
    images, true, pred = (list(x) for x in zip(*examples))
    save_segmentation_grid(images, true, pred, args.figure)
    with tracking.start_run("evaluate_segmentation", params) as mlrun:
        mlrun.log_inputs({"pets cache": args.cache, "segmentation model": args.model}, "evaluation")
        mlrun.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlrun.log_artifact(args.metrics)
        mlrun.log_artifact(args.figure, "plots")
    print(f"test mean IoU {metrics['mean_iou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} "
          f"(majority class: mean IoU {metrics['majority_baseline']['mean_iou']:.4f})")


if __name__ == "__main__":
    run(main)
