"""Benchmark 2: U-Net training images/s, visionflow against the TensorFlow segmentation tutorial.

Both sides train the tutorial's architecture (MobileNetV2 alpha 1.0 encoder, frozen, + the pix2pix decoder:
the same 6.5 M weights) untrained (weights=None: nothing to download, the same cost), at the same image size
and batch size, on the same prepared pets dataset:
- visionflow: the pets cache read by `visionflow.training.segmentation_inputs` (shuffle, repeat, params.yaml's
  augmentation), `build_unet` and `compile_segmentation`;
- reference: bench/reference_unet.py, the tutorial's `load_image`, `Augment`,
  `.cache().shuffle().batch().repeat().map(Augment()).prefetch()`, `unet_model` and compile, over the
  prepared TFDS train split (what the tutorial's `tfds.load` returns).
Each side steps `model.train_function` on one persistent iterator (the step of Keras' fit loop, without
callbacks); after a warm-up, chunks of steps are timed in alternating order. Ratio = visionflow images/s /
reference images/s. Both run with the op determinism the training stages turn on.
"""

from __future__ import annotations

import time

from bench import reference_unet
from bench.common import Context, alternate, figure, median

NAME = "unet"
TITLE = "U-Net training"
GOAL = (">=", 1.0)


def _project_params(ctx: Context):
    """params.yaml with the benchmark's image size and batch size and the tutorial's encoder (untrained) and decoder
    (bench/reference_unet.py's)."""
    from visionflow.config import parse_params, to_dict

    raw = to_dict(ctx.params)
    raw["segmentation"].update(image_size=ctx.sizes.image_size, batch_size=ctx.sizes.batch_size,
                               encoder={"weights": None, "alpha": 1.0, "trainable": False},
                               decoder_filters=[512, 256, 128, 64], decoder_kernel_size=3, decoder_init_std=0.02)
    return parse_params(raw, source="bench/unet.py")


def _ready(model, dataset, warmup: int):
    """A persistent iterator over `dataset`, after the model is built and `warmup` steps traced and run."""
    iterator = iter(dataset)
    model.train_on_batch(*next(iterator))  # builds the optimizer and the train function
    for _ in range(warmup):
        model.train_function(iterator)
    return iterator


def _chunk(model, iterator, steps: int):
    def timed() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            logs = model.train_function(iterator)
        float(logs["loss"])  # the last step has finished
        return time.perf_counter() - start

    return timed


def run(ctx: Context) -> dict:
    from visionflow import training
    from visionflow.data.tfds_source import open_prepared
    from visionflow.models.segmentation import build_unet, compile_segmentation

    s = ctx.sizes
    params = _project_params(ctx)
    cfg = params.segmentation
    training.seed_everything(params.seed)  # as train_segmentation does; process-wide, so both sides run with it
    ours_data, _, steps_per_epoch = training.segmentation_inputs(ctx.cache_dir, params)
    ours = build_unet(cfg)
    compile_segmentation(ours, cfg, steps_per_epoch)
    builder = open_prepared(ctx.prepared)
    ref_data = reference_unet.train_batches(builder.as_dataset(split="train"), s.image_size, s.batch_size)
    ref = reference_unet.compile_model(reference_unet.unet_model(3, s.image_size, weights=None))
    if ours.count_params() != ref.count_params():
        raise RuntimeError(f"unet benchmark: visionflow's U-Net has {ours.count_params()} weights, the tutorial's "
                           f"{ref.count_params()}: they are not the same architecture")
    print(f"  {s.image_size}x{s.image_size}, batch {s.batch_size}, {ours.count_params():,} weights each; "
          f"{s.unet_warmup} warm-up steps, then {s.unet_rounds} x {s.unet_steps} timed steps per side", flush=True)
    chunks = {
        "visionflow": _chunk(ours, _ready(ours, ours_data, s.unet_warmup), s.unet_steps),
        "reference": _chunk(ref, _ready(ref, ref_data, s.unet_warmup), s.unet_steps),
    }
    times = alternate(chunks, s.unet_rounds)
    rates = {name: [s.unet_steps * s.batch_size / t for t in ts] for name, ts in times.items()}
    ours_ips, ref_ips = median(rates["visionflow"]), median(rates["reference"])
    return {
        "figures": {"ratio": figure(ours_ips / ref_ips, "x", "visionflow images/s / tutorial images/s", GOAL)},
        "details": {"image_size": s.image_size, "batch_size": s.batch_size, "weights": ours.count_params(),
                    "encoder": "MobileNetV2 alpha 1.0, frozen, weights=None (the tutorial's, untrained)",
                    "data": ctx.data_name, "visionflow_images_per_second": ours_ips,
                    "reference_images_per_second": ref_ips, "images_per_second": rates},
    }
