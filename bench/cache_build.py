"""Benchmark 1: building the pets tf.data cache (the build_cache stage's code) against bare tf.data.

Both read the same release images and trimaps. The baseline is the least a cache build must do: read, decode
and resize every image (bilinear) and trimap (nearest) with `tf.data`, batched and fully iterated; it writes
nothing. visionflow's build decodes the prepared TFDS records, resizes, splits, writes the `Dataset.save`
shards, pins their metadata and reads them back to count. Ratio = bare seconds / visionflow seconds (1.0: no
slower than bare tf.data).
"""

from __future__ import annotations

import contextlib
import io

import tensorflow as tf

from bench.common import Context, alternate, figure, median

NAME = "cache"
TITLE = "Cache build"
GOAL = (">=", 0.8)


def bare_pipeline(images: list[str], trimaps: list[str], size: int, batch_size: int = 32) -> tf.data.Dataset:
    """Plain tf.data: read, decode and resize every (image, trimap) pair, batched."""

    def load(image_path, trimap_path):
        image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
        trimap = tf.io.decode_png(tf.io.read_file(trimap_path), channels=1)
        return (tf.image.resize(image, (size, size)),  # (S, S, 3) float32
                tf.image.resize(trimap, (size, size), method="nearest"))  # (S, S, 1) uint8

    pairs = tf.data.Dataset.from_tensor_slices((images, trimaps))
    return pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def run(ctx: Context) -> dict:
    from visionflow.data import pets

    records = [r for split in pets.SPLIT_LISTS.values() for r in pets.parse_release(ctx.release, split)[0]]
    images, trimaps = [str(r.image_path) for r in records], [str(r.trimap_path) for r in records]
    size, out = ctx.sizes.image_size, ctx.workdir / "cache"
    print(f"  {len(records)} images ({ctx.data_name}) -> {size}x{size}, {ctx.sizes.cache_repeats} repeats", flush=True)
    ctx.prepared  # noqa: B018 - prepared once, outside the timing: the prepare stage's work, not the cache's
    counted = {}

    def bare() -> None:
        counted["bare"] = sum(int(batch[0].shape[0]) for batch in bare_pipeline(images, trimaps, size))

    def ours() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # write_cache's "writing <split> ..." lines, each build
            counted["ours"] = sum(ctx.build_cache(out)["counts"].values())

    bare(), ours()  # warm-up: file cache, TF's first traces
    times = alternate({"bare tf.data": bare, "visionflow.cache": ours}, ctx.sizes.cache_repeats)
    if counted["bare"] != counted["ours"]:
        raise RuntimeError(f"cache benchmark: bare tf.data read {counted['bare']} images, the cache holds "
                           f"{counted['ours']}: they did not process the same files")
    bare_s, ours_s = median(times["bare tf.data"]), median(times["visionflow.cache"])
    return {
        "figures": {"ratio": figure(bare_s / ours_s, "x", "bare tf.data seconds / visionflow.cache seconds", GOAL)},
        "details": {"images": len(records), "image_size": size, "data": ctx.data_name,
                    "bare_seconds": bare_s, "visionflow_seconds": ours_s, "seconds": times},
    }
