"""The evaluate_detection stage's work: the objects to place, the canvases, every strategy scored, the metrics.

`evaluate_detection` returns the metrics dict the stage writes (no wall-clock time in it: a rerun with nothing
changed gives the same bytes) and what its figure draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionflow.config import Params
from visionflow.classes import BACKGROUND
from visionflow.detection.boxes import Detections, to_original
from visionflow.detection.canvas import CanvasSet, build_canvases
from visionflow.detection.engine import STRATEGIES, run_detection, strategy_scores
from visionflow.detection.metrics import evaluate, random_boxes_baseline, score_agreement, window_recall_bound
from visionflow.detection.windows import window_grid

@dataclass(frozen=True)
class DetectionReport:
    metrics: dict
    canvases: CanvasSet
    detections: list[Detections]  # of the chosen strategy, one per canvas
    class_names: list[str]
    window_size: int  # the classifier's input side: a window's side on the (upscaled) canvas


def _objects(params: Params, model: Path, flowers_cache: Path, pets_cache: Path):
    """(window classifier, object images, labels, masks or None, class names) for detection.classifier."""
    from visionflow import cache

    if params.detection.classifier == "imagenet":
        from visionflow.detection.imagenet import SPECIES, build_imagenet_classifier

        test = list(cache.load_split(pets_cache, "test").as_numpy_iterator())
        masks = np.stack([ex["mask"][..., 0] != BACKGROUND for ex in test])  # pet and border
        return (build_imagenet_classifier(params.detection.imagenet_alpha), np.stack([ex["image"] for ex in test]),
                np.array([ex["species"] for ex in test]), masks, list(SPECIES))
    from visionflow.detection.engine import pipeline_classifier
    from visionflow.inference import load_model
    from visionflow.models.classifier import output_names

    names = cache.read_info(flowers_cache)["class_names"]
    test = list(cache.load_split(flowers_cache, "test").as_numpy_iterator())
    keras_model = load_model(model)
    output_names(keras_model, names)  # the flower classes, and background when trained with it: nothing else
    classifier = pipeline_classifier(keras_model, params.classifier.image_size)
    return classifier, np.stack([ex["image"] for ex in test]), np.array([ex["label"] for ex in test]), None, names


def _scores(scored: dict) -> dict:
    return {k: scored[k] for k in ("map50", "precision", "recall")}


def evaluate_detection(params: Params, model: Path, flowers_cache: Path, pets_cache: Path) -> DetectionReport:
    """Canvases of test-split objects, detections by every strategy, the chosen one's scores against ground truth,
    a random-boxes baseline, the windows' recall bound and the strategies' agreement."""
    cfg = params.detection
    classifier, images, labels, masks, names = _objects(params, model, flowers_cache, pets_cache)
    size = classifier.image_size
    canvases = build_canvases(images, labels, cfg, params.seed, names, masks=masks)
    per_strategy, detections, scored = {}, {}, {}
    for strategy in STRATEGIES:
        print(f"detecting with {strategy} ...", flush=True)
        detections[strategy], stats = run_detection(classifier, canvases.images, cfg, size, strategy=strategy)
        scored[strategy] = evaluate(detections[strategy], canvases.ground_truth, len(names), names)
        per_strategy[strategy] = {**{k: stats[k] for k in ("classifier_calls_per_image", "backbone_runs_per_image")},
                                  **_scores(scored[strategy]),
                                  "detections_per_image": scored[strategy]["detections_per_image"]}
    chosen = scored[cfg.strategy]
    footprint = size / cfg.upscale
    shape = (cfg.canvas_size, cfg.canvas_size)
    baseline = evaluate(random_boxes_baseline(canvases.ground_truth, params.seed, shape, (footprint, footprint),
                                              len(names), max(1, round(chosen["detections_per_image"]))),
                        canvases.ground_truth, len(names), names)
    grid = window_grid(shape, size, cfg.stride, cfg.upscale)
    agreement = score_agreement(strategy_scores(classifier, canvases.images[:cfg.agreement_images], cfg, size))
    metrics = {
        "strategy": cfg.strategy,
        **_scores(chosen),
        "per_class_ap": chosen["per_class_ap"],
        "detections_per_image": chosen["detections_per_image"],
        "strategies": per_strategy,
        "agreement": agreement["max_abs_diff"],
        "agreement_pairs": agreement,
        "random_baseline": _scores(baseline),
        "window_recall_bound": window_recall_bound(canvases.ground_truth,
                                                   to_original(grid.boxes(), grid.scale, grid.image_shape)),
        "images": len(canvases.images),
    }
    return DetectionReport(metrics, canvases, detections[cfg.strategy], names, size)
