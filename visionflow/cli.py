"""`visionflow` command line: evaluate and predict with trained models on any folder or image files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import get_args

import numpy as np

from visionflow.classes import FLOWER_CLASSES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _write_json(data: dict, out: Path | None) -> None:
    from visionflow.files import to_json, write_json

    print(to_json(data), end="")
    if out:
        write_json(data, out)


def _report_skipped(skipped: list[dict]) -> None:
    for item in skipped:
        print(f"skipped {item['file']}: {item['reason']}", file=sys.stderr)


def _load(args: argparse.Namespace, command: str):
    """(model, input side, classes) of --model, checked against `command`, e.g. `predict classifier`."""
    from visionflow.cli_checks import check_model
    from visionflow.inference import load_model

    model = load_model(args.model)
    return (model, *check_model(model, args.model, command))


def _read_images(paths: list[Path], max_side: int, unreadable: list):
    """(path, RGB uint8 downscaled to `max_side` as the pipeline does, fixes) of each image that decodes;
    the others are collected in `unreadable`, for `_raise_unreadable` once the rest is done."""
    from visionflow.data.images import UnreadableImageError, read_rgb

    for path in paths:
        try:
            rgb, fixes = read_rgb(path, max_side)
        except UnreadableImageError as exc:
            unreadable.append(exc)
            continue
        yield path, rgb, fixes


def _raise_unreadable(unreadable: list, total: int) -> None:
    if len(unreadable) == 1 and total == 1:
        raise ValueError(str(unreadable[0]))
    if unreadable:  # reported after the others were done, so one bad file costs only itself
        raise ValueError(f"{len(unreadable)} of {total} images could not be read, the others were done: "
                         + "; ".join(str(exc) for exc in unreadable))


def _resized(rgb: np.ndarray, size: int, mode: str = "stretch") -> np.ndarray:
    from visionflow.cache import resize_image

    return resize_image(rgb, size, mode).numpy()


def _save_png(pixels: np.ndarray, path: Path) -> None:
    """Write a PNG whole or not at all (temp file + rename): a failed write leaves neither."""
    from PIL import Image

    from visionflow.files import atomic_output

    with atomic_output(path, ".png") as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def evaluate_segmentation(args: argparse.Namespace) -> None:
    """Metrics of a U-Net on a folder in the Oxford-IIIT Pet release layout."""
    import tensorflow as tf
    from tqdm import tqdm

    from visionflow.cache import MASK_CLASSES, resize_image, resize_mask
    from visionflow.data import pets
    from visionflow.evaluation import majority_baseline, segmentation_metrics
    from visionflow.inference import batched, segmentation_confusion

    model, size, _ = _load(args, "evaluate segmentation")
    records, skipped = pets.parse_release(args.data, args.split, param="--data")

    def examples():
        for record in tqdm(records, desc=f"evaluating {args.split}", unit="image"):
            try:
                example, _ = pets.read_example(record, args.max_image_side)
            except ValueError as exc:  # unreadable image or bad trimap: reported, evaluation goes on
                skipped.append({"file": str(record.image_path), "reason": str(exc)})
                continue
            mask = resize_mask(tf.convert_to_tensor(example["segmentation_mask"]), size).numpy()
            yield resize_image(example["image"], size).numpy(), mask

    confusion, _ = segmentation_confusion(model, batched(examples(), args.batch_size), len(MASK_CLASSES))
    if confusion.sum() == 0:
        raise ValueError(f"--data: no readable image in {args.data} for split '{args.split}'")
    metrics = segmentation_metrics(confusion, list(MASK_CLASSES))
    metrics["majority_baseline"] = majority_baseline(confusion, list(MASK_CLASSES))
    metrics["images"] = int(confusion.sum() // (size * size))
    metrics["skipped"] = skipped
    _report_skipped(skipped)
    _write_json(metrics, args.out)


def predict_segmentation(args: argparse.Namespace) -> None:
    """Mask PNG (values 0 pet, 1 background, 2 border) and an overlay PNG for each image."""
    from visionflow.viz import overlay

    model, size, _ = _load(args, "predict segmentation")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    unreadable: list = []
    for path, rgb, _ in _read_images(args.images, args.max_image_side, unreadable):
        image = _resized(rgb, size)
        mask = np.argmax(model.predict_on_batch(image[None]), axis=-1)[0].astype(np.uint8)
        stem = Path(path).stem
        _save_png(mask, args.out_dir / f"{stem}_mask.png")
        _save_png(overlay(image, mask), args.out_dir / f"{stem}_overlay.png")
        print(f"{path}: pet {np.mean(mask == 0):.1%} of pixels -> {args.out_dir / (stem + '_overlay.png')}")
    _raise_unreadable(unreadable, len(args.images))


def evaluate_classifier(args: argparse.Namespace) -> None:
    """Metrics of a classifier on a flower_photos/ folder: one subfolder per tf_flowers class."""
    from tqdm import tqdm

    from visionflow.data import flowers
    from visionflow.data.images import read_rgb
    from visionflow.evaluation import classifier_metrics
    from visionflow.inference import batched, classify_batches

    model, size, _ = _load(args, "evaluate classifier")
    items, skipped = flowers.parse_folder(args.data, param="--data")

    def examples():
        for path, label in tqdm(items, desc="evaluating", unit="image"):
            try:
                rgb, _ = read_rgb(path, args.max_image_side)
            except ValueError as exc:  # an unreadable image is reported, evaluation goes on
                skipped.append({"file": str(path), "reason": str(exc)})
                continue
            yield _resized(rgb, size, args.resize), np.int64(label)

    _, truth, probs = classify_batches(model, batched(examples(), args.batch_size))
    if len(truth) == 0:
        raise ValueError(f"--data: no readable image in {args.data}")
    metrics, _, _ = classifier_metrics(truth, probs, list(FLOWER_CLASSES))  # as the evaluate_classifier stage
    metrics["images"] = len(truth)
    metrics["skipped"] = skipped
    _report_skipped(skipped)
    _write_json(metrics, args.out)


def predict_classifier(args: argparse.Namespace) -> None:
    """Top-k classes with probabilities for each image (and the background probability, when the model has one)."""
    import tensorflow as tf

    from visionflow.models.classifier import BACKGROUND

    model, size, classes = _load(args, "predict classifier")
    if args.top_k > classes:
        raise ValueError(f"--top-k {args.top_k}: the model has {classes} classes; pass --top-k from 1 to {classes}")
    unreadable: list = []
    for path, rgb, _ in _read_images(args.images, args.max_image_side, unreadable):
        probs = tf.nn.softmax(model.predict_on_batch(_resized(rgb, size, args.resize)[None]), axis=-1).numpy()[0]
        top = np.argsort(probs[:classes])[::-1][: args.top_k]  # flowers only: background is no flower
        extra = f" ({BACKGROUND} {probs[classes]:.3f})" if len(probs) > classes else ""
        print(f"{path}: " + ", ".join(f"{FLOWER_CLASSES[i]} {probs[i]:.3f}" for i in top) + extra)
    _raise_unreadable(unreadable, len(args.images))


def predict_detection(args: argparse.Namespace) -> None:
    """Detect objects with the sliding-window engine and draw the boxes."""
    from visionflow.config import load_params
    from visionflow.detection import run_detection
    from visionflow.detection.draw import draw_detections

    params = load_params(args.params)
    max_side = args.max_image_side or params.data.max_image_side
    model, size, _ = _load(args, "predict detection")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    unreadable: list = []
    for path, rgb, fixes in _read_images(args.images, max_side, unreadable):
        image = rgb.astype(np.float32) / 255.0  # downscaled to max_side first: the detector upscales it again
        detections, _ = run_detection(model, image[None], params.detection, size)
        drawn = draw_detections(image, detections[0], list(FLOWER_CLASSES))
        out = args.out_dir / f"{Path(path).stem}_detections.png"
        _save_png(drawn, out)
        note = "".join(f" ({fix})" for fix in fixes if fix.startswith("downscaled"))
        print(f"{path}: {len(detections[0].scores)} objects -> {out}{note}")
    _raise_unreadable(unreadable, len(args.images))


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree: visionflow {evaluate,predict} {segmentation,classifier,detection}, runs, models."""
    from visionflow.cli_checks import Parser, int_range
    from visionflow.config import shipped_params
    from visionflow.config.sections import BATCH_SIZE_RANGE, IMAGE_SIDE_RANGE, ResizeMode
    from visionflow.runs import add_commands

    batch_size, image_side = int_range(*BATCH_SIZE_RANGE), int_range(*IMAGE_SIDE_RANGE)
    shipped = shipped_params().data
    default_side, default_resize = shipped.max_image_side, shipped.flowers_resize
    side_help = (f"longer sides above it are downscaled first, as the pipeline does ({IMAGE_SIDE_RANGE[0]} to "
                 f"{IMAGE_SIDE_RANGE[1]}, default %(default)s: data.max_image_side of the shipped params.yaml)")
    resize_help = ("how a photo becomes the model's square: as the model was trained, data.flowers_resize of its "
                   "params (default %(default)s: that of the repository's params.yaml, what its last `dvc exp run` or "
                   "`make run-real` trained with)")
    p = Parser(prog="visionflow", description=__doc__)
    verbs = p.add_subparsers(dest="verb", required=True)
    ev = verbs.add_parser("evaluate", help="metrics of a trained model on a dataset folder").add_subparsers(
        dest="task", required=True)
    pr = verbs.add_parser("predict", help="predictions for image files").add_subparsers(dest="task", required=True)

    s = ev.add_parser("segmentation", help="on a folder in the Oxford-IIIT Pet release layout")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--data", type=Path, required=True, help="folder with images/ and annotations/")
    s.add_argument("--split", default="test", choices=["trainval", "test", "list"], help="which list file")
    s.add_argument("--out", type=Path, help="metrics JSON to write")
    s.add_argument("--batch-size", type=batch_size, default=16)
    s.add_argument("--max-image-side", type=image_side, default=default_side, help=side_help)
    s.set_defaults(func=evaluate_segmentation)

    c = ev.add_parser("classifier", help="on a flower_photos/ folder: one subfolder per tf_flowers class "
                      f"({', '.join(sorted(FLOWER_CLASSES))})")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--out", type=Path, help="metrics JSON to write")
    c.add_argument("--batch-size", type=batch_size, default=32)
    c.add_argument("--max-image-side", type=image_side, default=default_side, help=side_help)
    c.add_argument("--resize", choices=get_args(ResizeMode), default=default_resize, help=resize_help)
    c.set_defaults(func=evaluate_classifier)

    ps = pr.add_parser("segmentation", help="mask and overlay PNGs")
    ps.add_argument("--model", type=Path, required=True)
    ps.add_argument("images", type=Path, nargs="+")
    ps.add_argument("--out-dir", type=Path, required=True)
    ps.add_argument("--max-image-side", type=image_side, default=default_side, help=side_help)
    ps.set_defaults(func=predict_segmentation)

    pc = pr.add_parser("classifier", help="top-k classes")
    pc.add_argument("--model", type=Path, required=True)
    pc.add_argument("images", type=Path, nargs="+")
    pc.add_argument("--top-k", type=int_range(1), default=3, help="at most the model's classes")
    pc.add_argument("--max-image-side", type=image_side, default=default_side, help=side_help)
    pc.add_argument("--resize", choices=get_args(ResizeMode), default=default_resize, help=resize_help)
    pc.set_defaults(func=predict_classifier)

    pd = pr.add_parser("detection", help="boxes drawn on the images")
    pd.add_argument("--model", type=Path, required=True, help="a classifier built by the pipeline")
    pd.add_argument("images", type=Path, nargs="+")
    pd.add_argument("--out-dir", type=Path, required=True)
    pd.add_argument("--params", type=Path, default=Path("params.yaml"), help="detection settings")
    pd.add_argument("--max-image-side", type=image_side, help=side_help.replace(
        "default %(default)s", "default: data.max_image_side of --params"))
    pd.set_defaults(func=predict_detection)
    add_commands(verbs)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `visionflow` console script."""
    from visionflow.cli_checks import before_loading

    args = build_parser().parse_args(argv)
    try:
        if args.verb in ("evaluate", "predict"):
            before_loading(args)  # model file, output and image paths: before TensorFlow is imported
        args.func(args)
    except (ValueError, OSError) as exc:  # a user error, or a file that cannot be read or written
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, whatever the message
        sys.exit(1)


if __name__ == "__main__":
    main()
