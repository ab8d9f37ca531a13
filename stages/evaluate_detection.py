"""Stage: multi-object detection by sliding windows over the classifier, three strategies: accuracy and work.

Its metrics hold no wall-clock time, so a rerun with nothing changed writes the same bytes; speed is measured
by the benchmarks (bench/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common import parser, run
from visionflow import tracking
from visionflow.keras_cache import weight_files
from visionflow.config import Params, load_params, to_dict
from visionflow.files import write_json

FIGURE_IMAGES = 6
AGREEMENT_IMAGES = 4


def _objects(params: Params, model: Path, flowers_cache: Path, pets_cache: Path):
    """(window classifier, object images, labels, masks or None, class names, window size)."""
    from visionflow import cache
    from visionflow.detection import pipeline_classifier

    if params.detection.classifier == "imagenet":
        from visionflow.detection.imagenet import SPECIES, build_imagenet_classifier

        classifier = build_imagenet_classifier(params.detection.imagenet_alpha)
        test = list(cache.load_split(pets_cache, "test").as_numpy_iterator())
        images = np.stack([ex["image"] for ex in test])
        masks = np.stack([ex["mask"][..., 0] != 1 for ex in test])  # pet and its border, not background
        labels = np.array([ex["species"] for ex in test])
        return classifier, images, labels, masks, list(SPECIES), classifier.image_size
    from visionflow.inference import load_model
    from visionflow.models.classifier import output_names

    names = cache.read_info(flowers_cache)["class_names"]
    test = list(cache.load_split(flowers_cache, "test").as_numpy_iterator())
    size = params.classifier.image_size
    keras_model = load_model(model)
    output_names(keras_model, names)  # the flower classes, and background when trained with it: nothing else
    classifier = pipeline_classifier(keras_model, size)
    return classifier, np.stack([ex["image"] for ex in test]), np.array([ex["label"] for ex in test]), None, names, size


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
    from visionflow.detection import (STRATEGIES, build_canvases, evaluate, random_boxes_baseline, run_detection,
                                      save_detection_grid, score_agreement, strategy_scores, to_original, window_grid,
                                      window_recall_bound)

    classifier, images, labels, masks, names, size = _objects(params, args.model, args.flowers_cache, args.pets_cache)
    canvases = build_canvases(images, labels, cfg, params.seed, names, masks=masks)
    per_strategy, detections = {}, {}
    for strategy in STRATEGIES:
        print(f"detecting with {strategy} ...", flush=True)
        detections[strategy], stats = run_detection(classifier, canvases.images, cfg, size, strategy=strategy)
        scored = evaluate(detections[strategy], canvases.ground_truth, len(names), names)
        per_strategy[strategy] = {**{k: stats[k] for k in ("classifier_calls_per_image", "backbone_runs_per_image")},
                                  **{k: scored[k] for k in ("map50", "precision", "recall", "detections_per_image")}}
    chosen = evaluate(detections[cfg.strategy], canvases.ground_truth, len(names), names)
    footprint = size / cfg.upscale
    baseline = evaluate(
        random_boxes_baseline(canvases.ground_truth, params.seed, (cfg.canvas_size, cfg.canvas_size),
                              (footprint, footprint), len(names), max(1, round(chosen["detections_per_image"]))),
        canvases.ground_truth, len(names), names)
    grid = window_grid((cfg.canvas_size, cfg.canvas_size), size, cfg.stride, cfg.upscale)
    agreement = score_agreement(strategy_scores(classifier, canvases.images[:AGREEMENT_IMAGES], cfg, size))
    metrics = {
        "strategy": cfg.strategy,
        "map50": chosen["map50"],
        "precision": chosen["precision"],
        "recall": chosen["recall"],
        "per_class_ap": chosen["per_class_ap"],
        "detections_per_image": chosen["detections_per_image"],
        "strategies": per_strategy,
        "agreement": agreement["max_abs_diff"],
        "agreement_pairs": agreement,
        "random_baseline": {k: baseline[k] for k in ("map50", "precision", "recall")},
        "window_recall_bound": window_recall_bound(canvases.ground_truth,
                                                   to_original(grid.boxes(), grid.scale, grid.image_shape)),
        "images": len(canvases.images),
    }
    write_json(metrics, args.metrics)
    n = min(FIGURE_IMAGES, len(canvases.images))
    save_detection_grid(canvases.images[:n], detections[cfg.strategy][:n], canvases.ground_truth[:n], names,
                        args.figure)
    with tracking.start_run("evaluate_detection", params) as mlrun:
        objects = ({"pets cache": args.pets_cache} if cfg.classifier == "imagenet"
                   else {"flowers cache": args.flowers_cache, "classifier model": args.model})
        mlrun.log_inputs(objects, "evaluation")
        mlrun.log_inputs(weight_files(params, "detection"), "weights")  # ImageNet files DVC does not track
        mlrun.log_params({"seed": params.seed, "detection": to_dict(cfg), "classifier.image_size": size})
        mlrun.log_metrics({k: v for k, v in metrics.items() if k != "agreement_pairs"})
        mlrun.log_artifact(args.metrics)
        mlrun.log_artifact(args.figure, "plots")
    print(f"map50 {metrics['map50']:.4f}, precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, "
          f"{metrics['detections_per_image']:.2f} boxes per image ({cfg.strategy}; random boxes map50 "
          f"{metrics['random_baseline']['map50']:.4f})")


if __name__ == "__main__":
    run(main)
