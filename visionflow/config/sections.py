"""params.yaml's sections as frozen dataclasses; each checks its own ranges and cross-field rules.

No field has a default: params.yaml is the one place values live, so a key missing there is an error, not a
silent fallback (tests and benchmarks start from it with `visionflow.config.shipped_params`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

_STRICT = ConfigDict(extra="forbid")

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
LearningRate = Annotated[float, Field(gt=0.0, le=1.0)]
Alpha = Literal[0.35, 0.5, 0.75, 1.0, 1.3, 1.4]
# How a photo becomes a model's square input (`cache.resize_image`): stretched to it (its aspect lost), or its
# aspect kept by cropping its central square or by padding it with black.
ResizeMode = Literal["stretch", "crop", "pad"]
AugmentOps = tuple[dict[str, Any], ...]
# Bounds the command line checks too (visionflow.cli_checks).
BATCH_SIZE_RANGE = (1, 1024)
IMAGE_SIDE_RANGE = (64, 8192)
BatchSize = Annotated[int, Field(ge=BATCH_SIZE_RANGE[0], le=BATCH_SIZE_RANGE[1])]


def _ordered(cfg, *pairs: tuple[str, str]):
    """`cfg` unchanged when each (low, high) pair of its fields is in order; else the one-line error."""
    for low, high in pairs:
        if getattr(cfg, low) > getattr(cfg, high):
            raise ValueError(f"{low} must not exceed {high}")
    return cfg


@dataclass(frozen=True, config=_STRICT)
class SyntheticConfig:
    """Size of the generated offline datasets."""

    pets_images: Annotated[int, Field(ge=30, le=20000)]
    pets_min_side: Annotated[int, Field(ge=64, le=1024)]
    pets_max_side: Annotated[int, Field(ge=64, le=1024)]
    flowers_per_class: Annotated[int, Field(ge=10, le=5000)]
    flowers_min_side: Annotated[int, Field(ge=32, le=1024)]
    flowers_max_side: Annotated[int, Field(ge=32, le=1024)]
    jpeg_quality: Annotated[int, Field(ge=50, le=100)]  # of every generated photo (Pillow's quality scale)

    @model_validator(mode="after")
    def _sides(self):
        return _ordered(self, ("pets_min_side", "pets_max_side"), ("flowers_min_side", "flowers_max_side"))


@dataclass(frozen=True, config=_STRICT)
class SplitFractions:
    """Train/val/test fractions of a dataset with no official split (tf_flowers)."""

    train: Fraction
    val: Fraction
    test: Fraction

    @model_validator(mode="after")
    def _sum_to_one(self):
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, got {self.train + self.val + self.test:g}")
        return self


@dataclass(frozen=True, config=_STRICT)
class DataConfig:
    """Where the images come from and how they are split."""

    source: Literal["synthetic", "directory", "tfds"]
    pets_dir: str | None
    flowers_dir: str | None
    # Content digests of those folders (`sources.folder_digest`), set by `make run-real`: DVC sees the folder
    # only through params, so without them it would not rerun a preparation when files inside change.
    pets_digest: str | None
    flowers_digest: str | None
    val_fraction: Fraction
    flowers_split: SplitFractions
    flowers_resize: ResizeMode
    max_image_side: Annotated[int, Field(ge=IMAGE_SIDE_RANGE[0], le=IMAGE_SIDE_RANGE[1])]
    # k-fold cross-validation: with folds > 1, fold `fold` (0-based) of all the images is the caches' test split
    # and the rest is split into train and val as above; one experiment per fold gives a mean +- std.
    folds: Annotated[int, Field(ge=1, le=20)]
    fold: Annotated[int, Field(ge=0, le=19)]
    synthetic: SyntheticConfig

    @model_validator(mode="after")
    def _fold_in_range(self):
        if self.fold >= self.folds:
            raise ValueError(f"data.fold: {self.fold} is not a fold of data.folds: {self.folds} "
                             f"(folds count from 0: use 0 to {self.folds - 1})")
        return self


@dataclass(frozen=True, config=_STRICT)
class EncoderConfig:
    """A MobileNetV2 backbone: ImageNet weights or none, width multiplier, frozen or not."""

    weights: Literal["imagenet"] | None
    alpha: Alpha
    trainable: bool


@dataclass(frozen=True, config=_STRICT)
class FineTuneConfig:
    """Two-phase transfer learning: the model trains with its encoder frozen, then its last `epochs` epochs
    train the encoder's blocks from `from_block` on as well (BatchNorm layers stay frozen) at `learning_rate`."""

    epochs: Annotated[int, Field(ge=0, le=1000)]  # 0: one phase
    from_block: Annotated[int, Field(ge=1, le=16)]  # MobileNetV2 block_<n>_*
    learning_rate: LearningRate


def _check_fine_tune(cfg, section: str, whole_run: bool = False):
    """`whole_run`: phase two may take every epoch (a head that is fitted before training needs no phase one)."""
    if cfg.fine_tune.epochs:
        if cfg.encoder.trainable:
            raise ValueError(f"fine_tune.epochs needs {section}.encoder.trainable: false (phase one trains the rest on "
                             "a frozen encoder; set fine_tune.epochs: 0 to train the whole encoder throughout)")
        if cfg.fine_tune.epochs > cfg.epochs or (cfg.fine_tune.epochs == cfg.epochs and not whole_run):
            limit = "at most" if whole_run else "below"
            raise ValueError(f"fine_tune.epochs ({cfg.fine_tune.epochs}) must be {limit} {section}.epochs "
                             f"({cfg.epochs}): they are the last epochs of the run")
    return cfg


@dataclass(frozen=True, config=_STRICT)
class SegmentationConfig:
    """U-Net training on Oxford-IIIT Pet trimaps."""

    image_size: Annotated[int, Field(ge=32, le=1024, multiple_of=32)]
    encoder: EncoderConfig
    # pix2pix decoder: one upsampling block per encoder skip below the deepest (S/32 -> S/2), this wide each
    decoder_filters: Annotated[tuple[PositiveInt, ...], Field(min_length=4, max_length=4)]
    decoder_kernel_size: Annotated[int, Field(ge=1, le=15)]  # every transposed convolution's, the logits' included
    decoder_init_std: Annotated[float, Field(gt=0.0, le=1.0)]  # normal initialiser of the blocks' convolutions
    decoder_dropout: Probability
    batchnorm_momentum: Annotated[float, Field(gt=0.0, lt=1.0)]
    border_weight: Annotated[float, Field(gt=0.0, le=100.0)]
    dice_weight: Annotated[float, Field(ge=0.0, le=100.0)]
    lr_schedule: Literal["constant", "cosine"]
    epochs: Annotated[int, Field(ge=1, le=1000)]
    fine_tune: FineTuneConfig
    batch_size: BatchSize
    learning_rate: LearningRate
    shuffle_buffer: PositiveInt

    @model_validator(mode="after")
    def _fine_tune(self):
        return _check_fine_tune(self, "segmentation")


@dataclass(frozen=True, config=_STRICT)
class WindowsConfig:
    """Detection windows the classifier also learns from: canvases built from training-split objects as detection
    builds its evaluation canvases from the test split, cut into windows the way the detector sees them. Windows
    without an object, or cutting one off, are the class "background", so detection can say "nothing here"."""

    canvases: Annotated[int, Field(ge=0, le=100000)]  # training canvases (0: no windows, no background class)
    objects: Annotated[int, Field(ge=0, le=1000)]  # windows per canvas centred on an object: IoU >= object_iou
    background: Annotated[int, Field(ge=0, le=1000)]  # windows per canvas touching no object
    # windows per canvas cutting an object off (0 < IoU <= partial_iou with every object), drawn by their IoU
    partial: Annotated[int, Field(ge=0, le=1000)]
    object_iou: Annotated[float, Field(gt=0.0, le=1.0)]
    partial_iou: Annotated[float, Field(gt=0.0, lt=1.0)]

    @model_validator(mode="after")
    def _ious(self):
        if self.partial_iou >= self.object_iou:
            raise ValueError(f"partial_iou ({self.partial_iou:g}) must be below object_iou ({self.object_iou:g}): a "
                             "window cannot be both background and an object")
        if self.canvases and not self.objects + self.background + self.partial:
            raise ValueError("canvases > 0 but objects, background and partial are all 0: give some windows per "
                             "canvas, or set canvases: 0")
        return self

    @property
    def has_background(self) -> bool:
        """Whether the classifier learns the class "background" (one output more)."""
        return self.canvases > 0 and self.background + self.partial > 0


@dataclass(frozen=True, config=_STRICT)
class ClassifierConfig:
    """Flowers classifier: backbone + head."""

    backbone: Literal["small_cnn", "mobilenet_v2"]
    image_size: Annotated[int, Field(ge=32, le=1024)]
    encoder: EncoderConfig
    filters: tuple[PositiveInt, ...]
    dense_units: PositiveInt
    dropout: Probability
    batchnorm_momentum: Annotated[float, Field(gt=0.0, lt=1.0)]
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)]
    mixup_alpha: Annotated[float, Field(ge=0.0, le=100.0)]  # 0: none; else MixUp's Beta(a, a) (augment.mixup)
    cutmix_alpha: Annotated[float, Field(ge=0.0, le=100.0)]  # 0: none; else CutMix's Beta(a, a) (augment.mixup)
    head_init: Literal["random", "linear_probe"]  # linear_probe: the head's Dense is fitted before training (LP-FT)
    probe_c: Annotated[float, Field(gt=0.0, le=1e6)]  # the probe's inverse L2 strength (standardised features)
    head_refit: bool  # the head's Dense is fitted again, as the probe, on the trained backbone's features
    head_refit_pretrained: bool  # the refit also reads a frozen copy of the pretrained encoder (models.classifier)
    wise_alpha: Annotated[float, Field(gt=0.0, le=1.0)]  # 1: the trained weights; else WiSE-FT's interpolation
    windows: WindowsConfig
    lr_schedule: Literal["constant", "cosine"]
    weight_ema: Annotated[float, Field(ge=0.0, lt=1.0)]  # 0: none; else the saved weights are this moving average
    epochs: Annotated[int, Field(ge=1, le=1000)]
    fine_tune: FineTuneConfig
    batch_size: BatchSize
    learning_rate: LearningRate
    optimizer: Literal["adam", "sgd"]  # sgd: SGD with Nesterov momentum
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)]  # optimizer: sgd only
    layer_decay: Annotated[float, Field(gt=0.0, le=1.0)]  # each MobileNetV2 stage's rate: x this per stage down
    sam_rho: Annotated[float, Field(ge=0.0, le=10.0)]  # 0: none; else SAM's radius (visionflow.models.sam)
    shuffle_buffer: PositiveInt

    @property
    def mixes_batches(self) -> bool:
        """Whether training batches are mixed (MixUp or CutMix), so every target is one-hot."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @model_validator(mode="after")
    def _fine_tune(self):
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            raise ValueError(f"mixup_alpha {self.mixup_alpha:g} and cutmix_alpha {self.cutmix_alpha:g}: a batch is "
                             "mixed one way; set one of them to 0")
        if self.fine_tune.epochs and self.backbone != "mobilenet_v2":
            raise ValueError("fine_tune.epochs needs classifier.backbone: mobilenet_v2 (an encoder to unfreeze)")
        if self.layer_decay < 1 and self.backbone != "mobilenet_v2":
            raise ValueError(f"layer_decay: {self.layer_decay:g} needs classifier.backbone: mobilenet_v2 (stages to "
                             "decay the rate over); set layer_decay: 1.0 for small_cnn")
        if self.layer_decay < 1 and self.optimizer != "adam":
            raise ValueError(f"layer_decay: {self.layer_decay:g} needs classifier.optimizer: adam (the rate decays "
                             f"in Adam's step); set layer_decay: 1.0 for optimizer {self.optimizer}")
        if self.head_init == "linear_probe" and self.backbone != "mobilenet_v2":
            raise ValueError("head_init: linear_probe needs classifier.backbone: mobilenet_v2 (pooled features and "
                             "a linear head); set head_init: random for small_cnn")
        if self.head_refit and self.backbone != "mobilenet_v2":
            raise ValueError("head_refit: true needs classifier.backbone: mobilenet_v2 (pooled features and a linear "
                             "head); set head_refit: false for small_cnn")
        if self.head_refit_pretrained and not self.head_refit:
            raise ValueError("head_refit_pretrained: true needs classifier.head_refit: true (the refit is what reads "
                             "the pretrained copy's features); set head_refit: true, or head_refit_pretrained: false")
        if self.head_refit_pretrained and self.encoder.weights is None:
            raise ValueError("head_refit_pretrained: true needs classifier.encoder.weights: imagenet (a pretrained "
                             "encoder to keep a copy of); set head_refit_pretrained: false for a random encoder")
        if self.wise_alpha < 1 and self.head_init != "linear_probe":
            raise ValueError(f"wise_alpha: {self.wise_alpha:g} needs classifier.head_init: linear_probe (the probe "
                             "start to interpolate from); set wise_alpha: 1.0 for a random head")
        return _check_fine_tune(self, "classifier", whole_run=self.head_init == "linear_probe")


@dataclass(frozen=True, config=_STRICT)
class AugmentConfig:
    """Augmentation pipelines; each op is a mapping with an `op` name and its arguments."""

    placement: Literal["model", "dataset"]
    offline_copies: Annotated[int, Field(ge=0, le=100)]
    classifier: AugmentOps
    segmentation: AugmentOps


@dataclass(frozen=True, config=_STRICT)
class EvaluationConfig:
    """How the segmentation and classifier evaluation stages predict."""

    test_time_flip: bool  # average the softmax of each test image and of its horizontal mirror
    # The classifier's test-time crops: central squares of these fractions of the side, each resized back to the
    # input size; its softmax is averaged over them (and their mirrors with test_time_flip). (1.0,): the image.
    classifier_crops: Annotated[tuple[Annotated[float, Field(gt=0.0, le=1.0)], ...], Field(min_length=1)]
    # The classifier's test scales: the image resized to these multiples of classifier.image_size (scaled_side),
    # through the backbone and pooling head; its softmax is averaged over them. (1.0,): the input size alone.
    classifier_scales: Annotated[tuple[Annotated[float, Field(gt=0.0, le=4.0)], ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self):
        for name in ("classifier_crops", "classifier_scales"):
            values = list(getattr(self, name))
            if len(set(values)) != len(values):
                raise ValueError(f"{name} {values} repeats a {name.split('_')[1][:-1]}; list each once")
        return self


# evaluation.classifier_scales: scaled sides are multiples of this, so that 1.15 and 1.3 of 224 px are the common
# 256 and 288, and 1.15 and 1.3 of 128 px still differ (144 and 160; multiples of 32 would make both 160)
SCALE_STEP = 16


def scaled_side(image_size: int, scale: float) -> int:
    """The input side of test scale `scale`: image_size at 1, else image_size x scale rounded to a multiple of
    SCALE_STEP."""
    if scale == 1.0:
        return image_size
    return max(SCALE_STEP, SCALE_STEP * round(image_size * scale / SCALE_STEP))


@dataclass(frozen=True, config=_STRICT)
class TrainConfig:
    """Where and how the training stages run (visionflow.distribute); the batch sizes above are per replica."""

    distribution: Literal["none", "mirrored", "multi_worker"]
    mixed_precision: bool  # float16 compute, float32 weights and outputs (GPUs with compute capability 7+)
    jit_compile: bool  # XLA-compile the training step


@dataclass(frozen=True, config=_STRICT)
class DetectionConfig:
    """Sliding-window detection over the classifier, and its evaluation set."""

    classifier: Literal["pipeline", "imagenet"]
    strategy: Literal["crops", "feature_crops", "dense"]
    upscale: Annotated[float, Field(ge=1.0, le=8.0)]
    stride: Annotated[int, Field(gt=0, le=1024)]
    num_images: Annotated[int, Field(ge=1, le=10000)]
    canvas_size: Annotated[int, Field(ge=32, le=4096)]
    min_objects: Annotated[int, Field(ge=1, le=16)]
    max_objects: Annotated[int, Field(ge=1, le=16)]
    min_object_scale: Annotated[float, Field(gt=0.0, le=1.0)]
    max_object_scale: Annotated[float, Field(gt=0.0, le=1.0)]
    max_object_overlap: Annotated[float, Field(ge=0.0, lt=1.0)]  # IoU two objects of a canvas may share
    score_threshold: Probability
    nms_iou: Annotated[float, Field(gt=0.0, le=1.0)]
    imagenet_alpha: Alpha
    batch_size: Annotated[int, Field(ge=1, le=4096)]
    agreement_images: Annotated[int, Field(ge=1, le=10000)]  # canvases the strategies' scores are compared on

    @model_validator(mode="after")
    def _ranges(self):
        return _ordered(self, ("min_objects", "max_objects"), ("min_object_scale", "max_object_scale"))


@dataclass(frozen=True, config=_STRICT)
class Params:
    """The whole of params.yaml."""

    seed: Annotated[int, Field(ge=0, le=2**31 - 1)]
    data: DataConfig
    segmentation: SegmentationConfig
    classifier: ClassifierConfig
    augment: AugmentConfig
    evaluation: EvaluationConfig
    train: TrainConfig
    detection: DetectionConfig

    @model_validator(mode="after")
    def _window_fits(self):
        upscaled = int(self.detection.canvas_size * self.detection.upscale)
        if self.classifier.image_size > upscaled:
            raise ValueError(
                f"detection: the window (classifier.image_size={self.classifier.image_size}) is larger than the "
                f"upscaled image (detection.canvas_size * detection.upscale = {upscaled}); raise "
                "detection.upscale or detection.canvas_size, or lower classifier.image_size"
            )
        scales = list(self.evaluation.classifier_scales)
        if scales != [1.0] and self.classifier.backbone != "mobilenet_v2":
            raise ValueError(
                f"evaluation.classifier_scales: {scales} needs classifier.backbone: mobilenet_v2 (the "
                f"{self.classifier.backbone} head flattens a feature map of one size); set classifier_scales: [1.0]"
            )
        sides = [scaled_side(self.classifier.image_size, scale) for scale in scales]
        if len(set(sides)) != len(sides):
            raise ValueError(
                f"evaluation.classifier_scales: {scales} give the sides {sides} at classifier.image_size "
                f"{self.classifier.image_size} (rounded to a multiple of {SCALE_STEP}); list scales whose sides "
                "differ"
            )
        if self.classifier.sam_rho > 0 and self.train.distribution != "none":
            raise ValueError(
                f"classifier.sam_rho: {self.classifier.sam_rho:g} trains on one device (SAM moves every weight "
                f"between a step's two passes); set train.distribution: none, or classifier.sam_rho: 0 for "
                f"{self.train.distribution}"
            )
        return self
