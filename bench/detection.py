"""Benchmark the sliding-window strategies on the same images in one process; prints speed-ups vs crops.

    python bench/detection.py [--images N] [--image-size S] [--backbone small_cnn|mobilenet_v2]
                              [--encoder-weights null|imagenet] [--model models/classifier.keras]
                              [--repeats R] [--params params.yaml]

The classifier is untrained unless --model is given: the cost of a strategy does not depend on the weights.
Absolute times depend on the machine; the ratios against `crops`, measured in the same process on the same
images, are the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script from a checkout: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from visionflow.config import load_params  # noqa: E402
from visionflow.detection.engine import STRATEGIES, WindowScorer, pipeline_classifier  # noqa: E402
from visionflow.detection.metrics import score_agreement  # noqa: E402
from visionflow.detection.windows import window_grid  # noqa: E402


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="images per timed run (default 8)")
    parser.add_argument("--image-size", type=int, default=None, help="classifier input S (default: params.yaml)")
    parser.add_argument("--backbone", choices=("small_cnn", "mobilenet_v2"), default=None)
    parser.add_argument(
        "--encoder-weights", choices=("null", "imagenet"), default=None,
        help="mobilenet_v2 encoder weights (default: params.yaml); an untrained MobileNetV2's features are flat, "
        "so its strategies agree trivially: use imagenet to compare their scores",
    )
    parser.add_argument("--model", type=Path, default=None, help="a trained classifier .keras file")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per strategy; the median is reported")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        parser.error("--images and --repeats must be at least 1")
    return args


def _classifier(args: argparse.Namespace, params):
    import keras

    from visionflow.models import build_classifier

    if args.model is not None:
        model = keras.models.load_model(args.model)
        return model, int(model.input_shape[1])
    cfg = params.classifier
    encoder = cfg.encoder
    if args.encoder_weights is not None:
        encoder = dataclasses.replace(encoder, weights=None if args.encoder_weights == "null" else "imagenet")
    cfg = dataclasses.replace(
        cfg, backbone=args.backbone or cfg.backbone, image_size=args.image_size or cfg.image_size, encoder=encoder
    )
    keras.utils.set_random_seed(params.seed)
    return build_classifier(cfg, num_classes=5), cfg.image_size


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Time every strategy on the same images and print a table of speed-ups against crops."""
    args = _args(argv)
    params = load_params(args.params)
    cfg = params.detection
    model, size = _classifier(args, params)
    classifier = pipeline_classifier(model, size)
    rng = np.random.default_rng(params.seed)
    images = rng.random((args.images, cfg.canvas_size, cfg.canvas_size, 3), dtype=np.float32)
    grid = window_grid(images.shape[1:3], size, cfg.stride, cfg.upscale)
    scorers = {s: WindowScorer(classifier, s, cfg.stride, cfg.batch_size) for s in STRATEGIES}
    print(
        f"{model.name}: S={size}, canvas {cfg.canvas_size} x{cfg.upscale:g} = {grid.upscaled[0]}px, "
        f"stride {cfg.stride}: {len(grid)} windows/image, {args.images} images, {args.repeats} repeats"
    )
    times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    scores: dict[str, np.ndarray] = {}
    for scorer in scorers.values():
        scorer(images[0], grid)  # warm-up: trace outside the timed runs
    for _ in range(args.repeats):  # round-robin, so drift in machine load hits every strategy alike
        for name, scorer in scorers.items():
            start = time.perf_counter()
            scores[name] = np.stack([scorer(image, grid) for image in images])
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["crops"])
    results = {}
    print(f"\n{'strategy':<14}{'windows':>9}{'backbone':>10}{'s/image':>10}{'images/s':>10}{'speed-up':>10}")
    for name, scorer in scorers.items():
        median = statistics.median(times[name])
        runs = scorer.runs([grid])
        results[name] = {"seconds_per_image": median / args.images, "speedup_vs_crops": base / median}
        print(
            f"{name:<14}{runs['classifier_calls_per_image']:>9.0f}{runs['backbone_runs_per_image']:>10.0f}"
            f"{median / args.images:>10.4f}{args.images / median:>10.1f}{base / median:>9.1f}x"
        )
    agreement = score_agreement(scores)
    print("\nlargest |score difference| on the same windows:", ", ".join(f"{k} {v:.2e}" for k, v in agreement.items()))
    return results


if __name__ == "__main__":
    main()
