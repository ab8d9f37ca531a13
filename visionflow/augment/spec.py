"""The augmentation op registry: names, arguments (types, ranges, defaults) and where each op may run.

Pure Python on purpose: `visionflow.config` validates params.yaml with it before TensorFlow loads.

An op is a mapping `{op: <name>, <arg>: <value>, ...}`. Two families:

* Keras-layer ops (`resizing`, `rescaling`, `random_*`): named after the Keras preprocessing layer they
  build; classifier only. With `augment.placement=model` they become layers inside the model; with
  `placement=dataset` each runs as its stateless twin (`random_rotation` as `rotate`, ...) in
  `Dataset.map`, seeded per example.
* Stateless ops (`flip`, `rotate`, `zoom`, `crop`, `brightness`, ...): tf.image / affine ops driven by
  an explicit per-example seed; `placement=dataset` for the classifier, and the segmentation list,
  where spatial ones move image and mask with the same parameters.

Images reaching augmentation are float32 in [0, 1]; `rescaling`, if used, must therefore come last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Kind = Literal["classifier", "segmentation"]
Placement = Literal["model", "dataset"]
KINDS: tuple[Kind, ...] = ("classifier", "segmentation")

_REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class Arg:
    """One argument of an op: its type, allowed range or choices, and default (absent = required)."""

    type: type  # float, int or str
    default: Any = _REQUIRED
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: lo itself is excluded
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def describe(self, name: str) -> str:
        """`0 < factor <= 0.5`, `mode in {horizontal, vertical}`, ... for error messages and docs."""
        if self.choices:
            return f"{name} one of {', '.join(self.choices)}"
        parts = []
        if self.lo is not None:
            parts.append(f"{_num(self.lo)} {'<' if self.lo_open else '<='} ")
        parts.append(name)
        if self.hi is not None:
            parts.append(f" {'<' if self.hi_open else '<='} {_num(self.hi)}")
        text = "".join(parts)
        return text if text != name else f"{name} a {self.type.__name__}"


@dataclasses.dataclass(frozen=True)
class Op:
    """An augmentation op: its arguments, the kinds it may use, whether it is a Keras layer, whether it moves
    pixels (spatial ops move a segmentation mask with the image; the others touch the image only)."""

    args: Mapping[str, Arg]
    kinds: frozenset[str]
    keras_layer: bool
    doc: str
    spatial: bool = False


def _num(x: float) -> str:
    return f"{x:g}"


_CLS = frozenset({"classifier"})
_BOTH = frozenset(KINDS)

_FILL_MODE = Arg(str, "reflect", choices=("reflect", "wrap", "constant", "nearest"),
                 doc="how areas brought in from outside the image are filled (image only)")
_FILL_VALUE = Arg(float, 0.0, 0.0, 1.0, doc="image value used with fill_mode=constant")
_INTERPOLATION = Arg(str, "bilinear", choices=("bilinear", "nearest"), doc="image interpolation")
_FLIP_MODE = ("horizontal", "vertical", "horizontal_and_vertical")

OPS: dict[str, Op] = {
    # Keras preprocessing layers (classifier; model or dataset placement).
    "resizing": Op(
        {"height": Arg(int, lo=1, hi=8192), "width": Arg(int, lo=1, hi=8192),
         "interpolation": Arg(str, "bilinear", choices=("bilinear", "nearest", "bicubic", "area", "lanczos3",
                                                        "lanczos5"))},
        _CLS, True, "keras.layers.Resizing(height, width)", spatial=True),
    "rescaling": Op(
        {"scale": Arg(float, lo=-1000.0, hi=1000.0), "offset": Arg(float, 0.0, -1000.0, 1000.0)},
        _CLS, True, "keras.layers.Rescaling: x * scale + offset; [0,1] -> [-1,1] is scale=2, offset=-1"),
    "random_flip": Op({"mode": Arg(str, "horizontal_and_vertical", choices=_FLIP_MODE)},
                      _CLS, True, "keras.layers.RandomFlip", spatial=True),
    "random_rotation": Op(
        {"factor": Arg(float, lo=0.0, hi=0.5, lo_open=True, doc="fraction of a full turn, both ways"),
         "fill_mode": _FILL_MODE, "fill_value": _FILL_VALUE, "interpolation": _INTERPOLATION},
        _CLS, True, "keras.layers.RandomRotation", spatial=True),
    "random_zoom": Op(
        {"factor": Arg(float, lo=0.0, hi=1.0, lo_open=True, hi_open=True, doc="zoom in or out by up to this"),
         "fill_mode": _FILL_MODE, "fill_value": _FILL_VALUE, "interpolation": _INTERPOLATION},
        _CLS, True, "keras.layers.RandomZoom(height_factor=factor), aspect ratio kept", spatial=True),
    "random_translation": Op(
        {"height_factor": Arg(float, lo=0.0, hi=1.0, hi_open=True),
         "width_factor": Arg(float, lo=0.0, hi=1.0, hi_open=True),
         "fill_mode": _FILL_MODE, "fill_value": _FILL_VALUE, "interpolation": _INTERPOLATION},
        _CLS, True, "keras.layers.RandomTranslation", spatial=True),
    "random_crop": Op({"height": Arg(int, lo=1, hi=8192), "width": Arg(int, lo=1, hi=8192)},
                      _CLS, True, "keras.layers.RandomCrop (changes the image size)", spatial=True),
    "random_contrast": Op({"factor": Arg(float, lo=0.0, hi=1.0, lo_open=True)},
                          _CLS, True, "keras.layers.RandomContrast, value_range (0, 1)"),
    "random_brightness": Op({"factor": Arg(float, lo=0.0, hi=1.0, lo_open=True)},
                            _CLS, True, "keras.layers.RandomBrightness, value_range (0, 1)"),
    "random_invert": Op({"probability": Arg(float, 0.5, 0.0, 1.0)},
                        _CLS, True, "visionflow RandomInvert layer: x -> 1 - x with this probability"),
    # Stateless ops (classifier with placement=dataset, and segmentation).
    "flip": Op({"mode": Arg(str, "horizontal", choices=_FLIP_MODE)}, _BOTH, False,
               "random flip (each axis with probability 1/2)", spatial=True),
    "rot90": Op({}, _BOTH, False, "rotate by a random multiple of 90 degrees (square images keep their shape)",
                spatial=True),
    "rotate": Op(
        {"factor": Arg(float, lo=0.0, hi=0.5, lo_open=True, doc="fraction of a full turn, both ways"),
         "fill_mode": _FILL_MODE, "fill_value": _FILL_VALUE, "interpolation": _INTERPOLATION},
        _BOTH, False, "rotate by a uniform angle in [-factor, factor] * 360 degrees", spatial=True),
    "zoom": Op(
        {"factor": Arg(float, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
         "fill_mode": _FILL_MODE, "fill_value": _FILL_VALUE, "interpolation": _INTERPOLATION},
        _BOTH, False, "scale about the centre by a uniform factor in [1 - factor, 1 + factor]", spatial=True),
    "translate": Op(
        {"height_factor": Arg(float, lo=0.0, hi=1.0, hi_open=True),
         "width_factor": Arg(float, lo=0.0, hi=1.0, hi_open=True),
         "fill_mode": _FILL_MODE, "fill_value": _FILL_VALUE, "interpolation": _INTERPOLATION},
        _BOTH, False, "shift by up to height_factor * H and width_factor * W pixels", spatial=True),
    "central_crop": Op({"fraction": Arg(float, lo=0.0, hi=1.0, lo_open=True)}, _BOTH, False,
                       "tf.image.central_crop, resized back to the input size", spatial=True),
    "crop": Op({"fraction": Arg(float, lo=0.0, hi=1.0, lo_open=True)}, _BOTH, False,
               "tf.image.stateless_random_crop of a fraction x fraction window, resized back to the input size",
               spatial=True),
    "brightness": Op({"max_delta": Arg(float, lo=0.0, hi=1.0, lo_open=True)}, _BOTH, False,
                     "tf.image.stateless_random_brightness, clipped to [0, 1]"),
    "contrast": Op({"lower": Arg(float, lo=0.0, hi=10.0), "upper": Arg(float, lo=0.0, hi=10.0, lo_open=True)},
                   _BOTH, False, "tf.image.stateless_random_contrast, clipped to [0, 1]"),
    "saturation": Op({"lower": Arg(float, lo=0.0, hi=10.0), "upper": Arg(float, lo=0.0, hi=10.0, lo_open=True)},
                     _BOTH, False, "tf.image.stateless_random_saturation"),
    "hue": Op({"max_delta": Arg(float, lo=0.0, hi=0.5, lo_open=True)}, _BOTH, False,
              "tf.image.stateless_random_hue"),
    "invert": Op({"probability": Arg(float, 0.5, 0.0, 1.0)}, _BOTH, False,
                 "x -> 1 - x with this probability"),
    "grayscale": Op({"probability": Arg(float, 0.5, 0.0, 1.0)}, _BOTH, False,
                    "tf.image.rgb_to_grayscale (kept as 3 channels) with this probability"),
    "jpeg_quality": Op({"min_quality": Arg(int, lo=0, hi=100), "max_quality": Arg(int, lo=0, hi=100)},
                       _BOTH, False, "tf.image.stateless_random_jpeg_quality"),
    "gaussian_noise": Op({"stddev": Arg(float, lo=0.0, hi=1.0, lo_open=True)}, _BOTH, False,
                         "add N(0, stddev) noise, clipped to [0, 1]"),
    "gaussian_blur": Op({"max_sigma": Arg(float, lo=0.0, hi=10.0, lo_open=True)}, _BOTH, False,
                        "Gaussian blur with sigma uniform in [0, max_sigma] (pixels)"),
}

# Ops whose two bounds must satisfy lower < upper (tf.image raises otherwise).
_ORDERED = {"contrast": ("lower", "upper"), "saturation": ("lower", "upper"),
            "jpeg_quality": ("min_quality", "max_quality")}


def allowed_ops(kind: Kind, placement: Placement | None = None) -> list[str]:
    """Op names valid for a kind (and, for the classifier, a placement)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} unknown (expected one of {', '.join(KINDS)})")
    if placement not in (None, "model", "dataset"):
        raise ValueError(f"placement={placement!r} unknown (expected model or dataset)")
    names = [n for n, op in OPS.items() if kind in op.kinds]
    if kind == "classifier" and placement == "model":
        names = [n for n in names if OPS[n].keras_layer]
    return names


def _check_value(name: str, spec: Arg, value: Any) -> str | None:
    """Why `value` is not valid for `spec`, or None."""
    # bool is an int in Python, and YAML writes 1 for 1.0: accept ints for floats, never bools.
    accepted = (int, float) if spec.type is float else spec.type
    if isinstance(value, bool) or not isinstance(value, accepted):
        return f"{name}={value!r} has the wrong type (expected {spec.type.__name__}: {spec.describe(name)})"
    if spec.choices and value not in spec.choices:
        return f"{name}={value!r} not allowed (expected {spec.describe(name)})"
    if spec.type in (int, float):
        too_low = spec.lo is not None and (value <= spec.lo if spec.lo_open else value < spec.lo)
        too_high = spec.hi is not None and (value >= spec.hi if spec.hi_open else value > spec.hi)
        if too_low or too_high:
            return f"{name}={value!r} out of range (expected {spec.describe(name)})"
    return None


def resolve(op: Mapping[str, Any]) -> dict[str, Any]:
    """The op's arguments with registry defaults filled in (assumes `validate_ops` passed)."""
    spec = OPS[op["op"]]
    return {name: op.get(name, arg.default) for name, arg in spec.args.items()}


def validate_ops(ops: Sequence[Mapping[str, Any]], kind: Kind, placement: Placement | None = None) -> None:
    """Raise ValueError naming the position, op and argument of the first invalid op in `ops`."""
    allowed = allowed_ops(kind, placement)  # checks kind and placement
    if isinstance(ops, (str, bytes, Mapping)) or not isinstance(ops, Sequence):
        raise ValueError(f"expected a list of ops like [{{op: flip, mode: horizontal}}], got {ops!r}")
    for i, op in enumerate(ops):
        where = f"[{i}]"
        if not isinstance(op, Mapping) or "op" not in op:
            raise ValueError(f"{where}: expected a mapping with an 'op' key, like {{op: flip}}, got {op!r}")
        name = op["op"]
        where = f"[{i}] {name}"
        if not isinstance(name, str) or name not in OPS:
            raise ValueError(f"{where}: unknown op (known: {', '.join(OPS)})")
        if name not in allowed:
            why = (f"not allowed for {kind} with placement={placement} (Keras-layer ops only)"
                   if kind == "classifier" and placement == "model" and kind in OPS[name].kinds
                   else f"not allowed for {kind}")
            raise ValueError(f"{where}: {why} (allowed: {', '.join(allowed)})")
        spec = OPS[name]
        for key in op:
            if key != "op" and key not in spec.args:
                raise ValueError(f"{where}: unknown argument {key!r} (allowed: {', '.join(spec.args) or 'none'})")
        for key, arg in spec.args.items():
            if key not in op:
                if arg.required:
                    raise ValueError(f"{where}: missing argument {key!r} (expected {arg.describe(key)})")
                continue
            problem = _check_value(key, arg, op[key])
            if problem:
                raise ValueError(f"{where}: {problem}")
        if name in _ORDERED:
            lo_key, hi_key = _ORDERED[name]
            if op[lo_key] >= op[hi_key]:
                raise ValueError(f"{where}: {lo_key}={op[lo_key]!r} must be < {hi_key}={op[hi_key]!r}")
        if name == "rescaling" and i != len(ops) - 1:
            raise ValueError(f"{where}: must be the last op (the other ops expect images in [0, 1])")
