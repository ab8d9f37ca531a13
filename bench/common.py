"""What the benchmarks share: sizes, the run context (a temp work folder and the pets data built once), timing
in alternating order, figures with their goals, and a description of the machine."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from visionflow.config import Params

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = ("cache", "detection", "unet", "tracking", "dvc")  # in the order they run (modules: bench/__main__.py)
# Every pet breed needs a trainval and a test image: the synthetic generator's minimum.
MIN_PETS = 74


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each benchmark times. Full runs take the pipeline's own sizes from params.yaml."""

    images: int  # pets images (synthetic unless --pets-dir)
    min_side: int  # synthetic image sides
    max_side: int
    image_size: int  # segmentation input S, the cache's size
    batch_size: int  # U-Net batch
    flowers_per_class: int  # synthetic flowers, for the classifier training of the tracking benchmark
    classifier_size: int  # its input size
    cache_repeats: int
    unet_warmup: int  # steps before timing
    unet_steps: int  # steps per timed chunk
    unet_rounds: int  # timed chunks per side, in alternating order
    tracking_epochs: int
    tracking_pairs: int  # (tracked, untracked) trainings, in alternating order
    detection_images: int
    detection_repeats: int
    dvc_repeats: int


def sizes(params: Params, quick: bool) -> Sizes:
    """The full sizes (params.yaml's data and segmentation sizes), or a smoke test's with --quick."""
    if quick:
        return Sizes(images=MIN_PETS, min_side=96, max_side=128, image_size=64, batch_size=8, flowers_per_class=10,
                     classifier_size=64, cache_repeats=2,
                     unet_warmup=1, unet_steps=2, unet_rounds=2, tracking_epochs=1, tracking_pairs=1,
                     detection_images=1, detection_repeats=1, dvc_repeats=1)
    syn, seg = params.data.synthetic, params.segmentation
    return Sizes(images=max(MIN_PETS, syn.pets_images), min_side=syn.pets_min_side, max_side=syn.pets_max_side,
                 image_size=seg.image_size, batch_size=seg.batch_size, flowers_per_class=syn.flowers_per_class,
                 classifier_size=params.classifier.image_size, cache_repeats=5, unet_warmup=5,
                 unet_steps=10, unet_rounds=6, tracking_epochs=5, tracking_pairs=4, detection_images=8,
                 detection_repeats=5, dvc_repeats=3)


class Context:
    """One suite run: params, sizes, a temp work folder, and the pets data made once for every benchmark."""

    def __init__(self, params: Params, quick: bool, workdir: Path, pets_dir: Path | None, weights: str | None):
        self.params, self.quick, self.workdir, self.pets_dir = params, quick, Path(workdir), pets_dir
        self.sizes = sizes(params, quick)
        self.weights = weights  # "imagenet" when the MobileNetV2 0.5/224 no-top file is in KERAS_HOME, else None

    @functools.cached_property
    def release(self) -> Path:
        """An Oxford-IIIT Pet release folder: --pets-dir, or synthetic images generated at the sizes above."""
        if self.pets_dir is not None:
            return self.pets_dir
        from visionflow.data import synthetic

        s = self.sizes
        syn = self.params.data.synthetic
        return synthetic.generate_pets(self.workdir / "release", s.images, s.min_side, s.max_side, self.params.seed,
                                       jpeg_quality=syn.jpeg_quality)

    @property
    def data_name(self) -> str:
        return f"{self.pets_dir} (pets release)" if self.pets_dir else (
            f"synthetic pets, {self.sizes.images} images of {self.sizes.min_side}-{self.sizes.max_side} px")

    @functools.cached_property
    def prepared(self) -> Path:
        """The release prepared as TFDS oxford_iiit_pet by the prepare stage's code (not timed)."""
        from visionflow.data import pets

        out = self.workdir / "prepared"
        pets.prepare_local(self.release, out, max_image_side=self.params.data.max_image_side)
        return out

    def build_cache(self, out: Path) -> dict:
        """The build_cache stage's code path for the pets cache at the benchmark's image size."""
        from visionflow import cache
        from visionflow.data.tfds_source import open_prepared

        params = dataclasses.replace(self.params, segmentation=dataclasses.replace(
            self.params.segmentation, image_size=self.sizes.image_size))
        splits, info = cache.dataset_splits(open_prepared(self.prepared), "pets", params)
        return cache.write_cache(splits, out, info, num_shards=4)

    @functools.cached_property
    def flowers_cache(self) -> Path:
        """A flowers cache from synthetic flowers, by the prepare and build_cache stages' code (not timed)."""
        from visionflow import cache
        from visionflow.data import flowers, synthetic
        from visionflow.data.tfds_source import open_prepared

        params = dataclasses.replace(self.params, classifier=dataclasses.replace(
            self.params.classifier, image_size=self.sizes.classifier_size))
        syn = params.data.synthetic
        root = synthetic.generate_flowers(self.workdir / "flowers", self.sizes.flowers_per_class, params.seed,
                                          size_range=(syn.flowers_min_side, syn.flowers_max_side),
                                          jpeg_quality=syn.jpeg_quality)
        flowers.prepare_local(root, self.workdir / "flowers_prepared", max_image_side=params.data.max_image_side)
        splits, info = cache.dataset_splits(open_prepared(self.workdir / "flowers_prepared"), "flowers", params)
        cache.write_cache(splits, self.workdir / "flowers_cache", info, num_shards=4)
        return self.workdir / "flowers_cache"

    @functools.cached_property
    def cache_dir(self) -> Path:
        """A pets cache to train from (the cache benchmark's last build when it ran)."""
        out = self.workdir / "cache"
        if not (out / "info.json").is_file():
            self.build_cache(out)
        return out


def alternate(runs: dict[str, Callable[[], float | None]], rounds: int) -> dict[str, list[float]]:
    """Call every run `rounds` times, in reversed order every other round so that drift in the machine's load
    hits each alike; a run's own return value is its time, else its wall-clock seconds."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            measured = runs[name]()
            times[name].append(time.perf_counter() - start if measured is None else measured)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def figure(value: float, unit: str, meaning: str, goal: tuple[str, float] | None = None) -> dict:
    """A reported number: value, unit (x = a ratio, % or s), what it means, its goal and whether it is met."""
    if not math.isfinite(value):
        raise ValueError(f"benchmark figure {meaning!r}: got {value}, not a finite number")
    met = None
    if goal is not None:
        op, bound = goal
        met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
    return {"value": value, "unit": unit, "meaning": meaning,
            "goal": f"{goal[0]} {goal[1]:g}" if goal else None, "met": met}


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where a figure was measured: CPUs, platform, TF and Keras versions, the device TF computes on, the load."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": f"GPU: {', '.join(names)}" if gpus else f"CPU: {_cpu_name()}",
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
