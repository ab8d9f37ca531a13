"""Stage: multi-object detection by sliding windows over the classifier, three strategies: accuracy and work.

Its metrics hold no wall-clock time, so a rerun with nothing changed writes the same bytes; speed is measured
by the benchmarks (bench/).
"""

from __future__ import annotations

from pathlib import Path

from stages.common import parser, run
from visionflow import tracking
from visionflow.config import load_params, to_dict
from visionflow.files import write_json
from visionflow.keras_cache import weight_files

FIGURE_IMAGES = 6


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="the pipeline classifier (.keras)")
    p.add_argument("--flowers-cache", type=Path, required=True)
    p.add_argument("--pets-cache", type=Path, required=True, help="used with detection.classifier: imagenet")
    p.add_argument("--metrics", type=Path, required=True, help="output metrics JSON")
    p.add_argument("--figure", type=Path, required=True, help="output PNG of detections on evaluation images")
    args = p.parse_args()
    params = load_params(args.params)
    cfg = params.detection
    from visionflow.detection import save_detection_grid
    from visionflow.detection.report import evaluate_detection

    report = evaluate_detection(params, args.model, args.flowers_cache, args.pets_cache)
    metrics, n = report.metrics, min(FIGURE_IMAGES, len(report.canvases.images))
    write_json(metrics, args.metrics)
    save_detection_grid(report.canvases.images[:n], report.detections[:n], report.canvases.ground_truth[:n],
                        report.class_names, args.figure)
    with tracking.start_run("evaluate_detection", params) as mlrun:
        objects = ({"pets cache": args.pets_cache} if cfg.classifier == "imagenet"
                   else {"flowers cache": args.flowers_cache, "classifier model": args.model})
        mlrun.log_inputs(objects, "evaluation")
        mlrun.log_inputs(weight_files(params, "detection"), "weights")  # ImageNet files DVC does not track
        mlrun.log_params({"seed": params.seed, "detection": to_dict(cfg), "classifier.image_size": report.window_size})
        mlrun.log_metrics({k: v for k, v in metrics.items() if k != "agreement_pairs"})
        mlrun.log_artifact(args.metrics)
        mlrun.log_artifact(args.figure, "plots")
    print(f"map50 {metrics['map50']:.4f}, precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, "
          f"{metrics['detections_per_image']:.2f} boxes per image ({cfg.strategy}; random boxes map50 "
          f"{metrics['random_baseline']['map50']:.4f})")


if __name__ == "__main__":
    run(main)
