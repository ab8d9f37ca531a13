"""Stage: evaluate the classifier on the flowers test split: metrics, confusion matrix, predictions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.common import ensure_parent, parser, run
from visionflow.files import write_json, write_text
from visionflow import tracking
from visionflow.config import load_params


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="output metrics JSON")
    p.add_argument("--confusion", type=Path, required=True, help="output CSV (actual, predicted) for dvc plots")
    p.add_argument("--figure-dir", type=Path, required=True, help="output folder for confusion and prediction PNGs")
    p.add_argument("--examples", type=int, default=16)
    args = p.parse_args()
    params = load_params(args.params)
    from visionflow import cache
    from visionflow.evaluation import classifier_metrics
    from visionflow.inference import classify_batches, load_model
    from visionflow.models.classifier import BACKGROUND, output_names
    from visionflow.viz import save_classifier_figures

    names = cache.read_info(args.cache)["class_names"]
    model = load_model(args.model)
    output_names(model, names)  # the flower classes, and background when trained with it: nothing else
    test = cache.load_split(args.cache, "test").map(lambda ex: (ex["image"], ex["label"]))
    images, truth, probs = classify_batches(model, test.batch(params.classifier.batch_size), keep=args.examples,
                                            flip=params.evaluation.test_time_flip,
                                            crops=params.evaluation.classifier_crops,
                                            scales=params.evaluation.classifier_scales)
    # Every test image is a flower: the prediction is the best flower class, what background scored aside;
    # how often background outscored every flower (a window detection would have dropped) is reported apart.
    metrics, pred, background = classifier_metrics(truth, probs, names)
    ensure_parent(args.metrics, args.confusion)
    write_json({k: v for k, v in metrics.items() if k != "confusion"}, args.metrics)
    write_text(pd.DataFrame({"actual": [names[i] for i in truth], "predicted": [names[i] for i in pred]}).to_csv(
        index=False), args.confusion)
    said = [BACKGROUND if background[i] else names[pred[i]] for i in range(len(images))]
    figures = save_classifier_figures(metrics["confusion"], images, truth, said, probs, names, args.figure_dir)
    with tracking.start_run("evaluate_classifier", params) as mlrun:
        mlrun.log_inputs({"flowers cache": args.cache, "classifier model": args.model}, "evaluation")
        mlrun.log_metrics({"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
                           "test_per_class": metrics["per_class"],
                           "test_flowers_called_background": metrics["flowers_called_background"]})
        for path in (args.metrics, args.confusion, *figures):
            mlrun.log_artifact(path, "plots" if path.suffix != ".json" else None)
    print(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
          f"(chance {1 / len(names):.2f}); background outscored every flower on "
          f"{metrics['flowers_called_background']:.0%} of the test flowers")


if __name__ == "__main__":
    run(main)
