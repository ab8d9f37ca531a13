"""Benchmark the sliding-window strategies on the same images in one process; prints speed-ups vs crops.

    python bench/detection.py [--images N] [--image-size S] [--backbone small_cnn|mobilenet_v2]
                              [--encoder-weights null|imagenet] [--model models/classifier.keras]
                              [--repeats R] [--params params.yaml]

The classifier is untrained unless --model is given: the cost of a strategy does not depend on the weights.
Absolute times depend on the machine; the ratios against `crops`, measured in the same process on the same
images, are the result. `make bench` runs it as benchmark 4 of the suite (`run`): at the reference geometry
(ImageNet MobileNetV2 alpha 0.5 at 224 px, 448-px upscaled image, stride 32: 8x8 windows) and at params.yaml's.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import numpy as np

# Run as a script from a checkout: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import alternate, figure  # noqa: E402
from visionflow.config import load_params  # noqa: E402
from visionflow.detection.engine import STRATEGIES, WindowScorer, pipeline_classifier  # noqa: E402
from visionflow.detection.metrics import score_agreement  # noqa: E402
from visionflow.detection.windows import window_grid  # noqa: E402

NAME = "detection"
TITLE = "Detection"
# The reference (Deep Learning Cookbook) geometry: a 224-px image upscaled to 448, 224-px windows every 32 px.
REFERENCE = {"alpha": 0.5, "image_size": 224, "canvas_size": 224, "upscale": 2.0, "stride": 32, "batch_size": 64}
GOALS = {"feature_crops": (">=", 13.0), "dense": (">=", 14.0)}


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


def time_strategies(classifier, images: np.ndarray, cfg, repeats: int) -> dict:
    """Every strategy on the same images, `repeats` timed runs each in alternating order after a warm-up:
    {"grid", "scorers", "seconds": {strategy: [s per run]}, "scores": {strategy: (B, N, K)}}."""
    grid = window_grid(images.shape[1:3], classifier.image_size, cfg.stride, cfg.upscale)
    scorers = {s: WindowScorer(classifier, s, cfg.stride, cfg.batch_size) for s in STRATEGIES}
    for scorer in scorers.values():
        scorer(images[0], grid)  # warm-up: trace outside the timed runs
    scores: dict[str, np.ndarray] = {}

    def timed(name: str):
        def score_all() -> None:
            scores[name] = np.stack([scorers[name](image, grid) for image in images])

        return score_all

    seconds = alternate({s: timed(s) for s in STRATEGIES}, repeats)
    return {"grid": grid, "scorers": scorers, "seconds": seconds, "scores": scores}


def bound(grid) -> float:
    """The speed-up sharing the backbone can give: windows x window area / upscaled image area."""
    return len(grid) * grid.window ** 2 / (grid.upscaled[0] * grid.upscaled[1])


def _speedups(timing: dict) -> dict[str, float]:
    medians = {name: statistics.median(ts) for name, ts in timing["seconds"].items()}
    return {name: medians["crops"] / median for name, median in medians.items()}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Time every strategy on the same images and print a table of speed-ups against crops."""
    args = _args(argv)
    params = load_params(args.params)
    cfg = params.detection
    model, size = _classifier(args, params)
    classifier = pipeline_classifier(model, size)
    rng = np.random.default_rng(params.seed)
    images = rng.random((args.images, cfg.canvas_size, cfg.canvas_size, 3), dtype=np.float32)
    timing = time_strategies(classifier, images, cfg, args.repeats)
    grid, speedups = timing["grid"], _speedups(timing)
    print(
        f"{model.name}: S={size}, canvas {cfg.canvas_size} x{cfg.upscale:g} = {grid.upscaled[0]}px, "
        f"stride {cfg.stride}: {len(grid)} windows/image, {args.images} images, {args.repeats} repeats"
    )
    results = {}
    print(f"\n{'strategy':<14}{'windows':>9}{'backbone':>10}{'s/image':>10}{'images/s':>10}{'speed-up':>10}")
    for name, scorer in timing["scorers"].items():
        median = statistics.median(timing["seconds"][name])
        runs = scorer.runs([grid])
        results[name] = {"seconds_per_image": median / args.images, "speedup_vs_crops": speedups[name]}
        print(
            f"{name:<14}{runs['classifier_calls_per_image']:>9.0f}{runs['backbone_runs_per_image']:>10.0f}"
            f"{median / args.images:>10.4f}{args.images / median:>10.1f}{speedups[name]:>9.1f}x"
        )
    agreement = score_agreement(timing["scores"])
    print("\nlargest |score difference| on the same windows:", ", ".join(f"{k} {v:.2e}" for k, v in agreement.items()))
    return results


def _geometry(ctx, classifier_cfg, cfg) -> dict:
    """Speed-ups against crops at one geometry, with the bound and the details."""
    import keras

    from visionflow.models import build_classifier

    keras.utils.set_random_seed(ctx.params.seed)
    classifier = pipeline_classifier(build_classifier(classifier_cfg, num_classes=5), classifier_cfg.image_size)
    rng = np.random.default_rng(ctx.params.seed)  # content does not change the cost
    images = rng.random((ctx.sizes.detection_images, cfg.canvas_size, cfg.canvas_size, 3), dtype=np.float32)
    timing = time_strategies(classifier, images, cfg, ctx.sizes.detection_repeats)
    grid = timing["grid"]
    print(f"  {classifier_cfg.backbone} at {classifier_cfg.image_size}px over {grid.upscaled[0]}px: "
          f"{len(grid)} windows, bound {bound(grid):.2f}x", flush=True)
    return {"speedups": _speedups(timing), "bound": bound(grid), "windows": len(grid),
            "upscaled": grid.upscaled[0], "window": grid.window, "images": len(images),
            "repeats": ctx.sizes.detection_repeats, "seconds": timing["seconds"],
            "score_agreement": score_agreement(timing["scores"])}


def run(ctx) -> dict:
    """Suite entry: the reference geometry (goals 13x and 14x) and params.yaml's (against the bound)."""
    params = ctx.params
    ref_classifier = dataclasses.replace(
        params.classifier, backbone="mobilenet_v2", image_size=REFERENCE["image_size"],
        encoder=dataclasses.replace(params.classifier.encoder, alpha=REFERENCE["alpha"], weights=ctx.weights))
    ref_cfg = dataclasses.replace(params.detection, **{k: REFERENCE[k] for k in ("canvas_size", "upscale", "stride",
                                                                                 "batch_size")})
    print(f"  reference geometry, MobileNetV2 alpha 0.5 weights={ctx.weights or 'None (untrained: same cost)'}",
          flush=True)
    reference = _geometry(ctx, ref_classifier, ref_cfg)
    untrained = dataclasses.replace(params.classifier.encoder, weights=None)  # no download needed; same cost
    pipeline = _geometry(ctx, dataclasses.replace(params.classifier, encoder=untrained), params.detection)
    figures = {}
    for strategy in ("feature_crops", "dense"):
        figures[f"reference_{strategy}"] = figure(
            reference["speedups"][strategy], "x", f"{strategy} speed-up over batched crops, reference geometry "
            f"({reference['windows']} windows)", GOALS[strategy])
    for strategy in ("feature_crops", "dense"):
        figures[f"pipeline_{strategy}"] = figure(
            pipeline["speedups"][strategy], "x", f"{strategy} speed-up over crops, params.yaml geometry "
            f"({pipeline['windows']} windows, bound {pipeline['bound']:.2f}x)")
        figures[f"pipeline_{strategy}_of_bound"] = figure(
            pipeline["speedups"][strategy] / pipeline["bound"], "x",
            f"{strategy} speed-up / bound (windows x window area / upscaled area), params.yaml geometry")
    return {"figures": figures,
            "details": {"weights": ctx.weights or "none (untrained; the cost is the same)",
                        "reference": reference, "pipeline": pipeline}}


if __name__ == "__main__":
    main()
