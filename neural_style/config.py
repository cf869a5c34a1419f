"""All settings in one place, with the lecture's values as defaults."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

# ImageNet statistics used by the lecture's preprocess/postprocess (RGB).
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)

# VGG19 feature indices the lecture uses: conv1_1 .. conv5_1 for style, conv4_4 for content.
STYLE_LAYERS = (0, 5, 10, 19, 28)
CONTENT_LAYERS = (25,)

# Activation scale k applied to the Caffe VGG19 so the lecture's loss weights and learning
# rates keep their meaning (see docs/CALIBRATION.md for how it was chosen).
CAFFE_SCALE = 100.0

# Input images that declare more pixels than this are refused before they are decoded
# (decompression bombs); --max-pixels / Settings.max_pixels raises it. 250 MP decodes to 750 MB.
MAX_PIXELS = 250_000_000

# Images and stages more elongated than this are refused: every stage is stretched to its
# WIDTHxHEIGHT, and a 10:1 image still keeps 16 px on its short side at 160 px on its long one.
MAX_ASPECT_RATIO = 10.0


@dataclass(frozen=True)
class Stage:
    """One resolution of the small-to-large schedule."""

    width: int
    height: int
    optimizer: str = "sgd"
    lr: float = 5.0
    epochs: int = 500
    lr_decay_epoch: int = 200
    lr_decay: float = 0.1

    @property
    def image_shape(self) -> tuple[int, int]:
        """(width, height), the lecture's convention."""
        return (self.width, self.height)


# The lecture notebook's two stages (final version, 2019-04-09).
LECTURE_STAGES = (
    Stage(300, 200, "sgd", 5.0, 500, 200),
    Stage(1200, 800, "sgd", 1.0, 300, 100),
)

# The embedded demo: small enough to finish in a few minutes on two CPU cores.
DEMO_STAGES = (
    Stage(150, 100, "sgd", 5.0, 300, 200),
    Stage(300, 200, "sgd", 1.0, 100, 100),
)


@dataclass
class Settings:
    """Everything a style-transfer run depends on."""

    stages: tuple[Stage, ...] = LECTURE_STAGES
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 10.0
    content_layers: tuple[int, ...] = CONTENT_LAYERS
    style_layers: tuple[int, ...] = STYLE_LAYERS
    weights: str = "caffe"
    weights_file: Optional[str] = None
    scale: Optional[float] = None
    device: str = "cpu"
    seed: Optional[int] = None
    report_every: int = 50
    # When the loss becomes NaN/inf: restore the last finite image, lr x0.1, at most this often.
    max_recoveries: int = 3
    # Refuse input images that declare more pixels than this (see MAX_PIXELS).
    max_pixels: int = MAX_PIXELS

    @property
    def activation_scale(self) -> float:
        """k for the chosen weights: the calibrated one for Caffe, 1 for the lecture's own."""
        if self.scale is not None:
            return float(self.scale)
        return CAFFE_SCALE if self.weights == "caffe" else 1.0

    def with_stages(self, *stages: Stage) -> "Settings":
        return replace(self, stages=tuple(stages))

    def validate(self) -> "Settings":
        """Raise ValueError naming the first setting that cannot work; returns self.

        Cheap: it runs before VGG is loaded, so a bad option fails at once, for the command
        line and for Python callers alike.
        """
        from .vgg import CONV_INDICES, CONV_NAMES, min_side

        def number(name: str, value: Any, low: float = 0.0, allow_low: bool = False) -> None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
            if value < low or (value == low and not allow_low):
                raise ValueError(f"{name} must be {'at least' if allow_low else 'greater than'} {low:g}, not {value!r}")

        def integer(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be a whole number of at least {low}, not {value!r}")

        layers = ", ".join(f"{i} ({n})" for i, n in zip(CONV_INDICES, CONV_NAMES))
        for kind in ("content", "style"):
            taps = getattr(self, f"{kind}_layers")
            if not taps:
                raise ValueError(f"at least one {kind} layer is needed")
            for tap in taps:
                if isinstance(tap, bool) or tap not in CONV_INDICES:
                    raise ValueError(f"{kind} layer {tap!r} is not a VGG19 convolution; use one of {layers}")
        deepest = max(tuple(self.content_layers) + tuple(self.style_layers))
        smallest = min_side((deepest,))
        if not self.stages:
            raise ValueError("at least one stage is needed")
        from mxnet.optimizer import Optimizer

        for n, stage in enumerate(self.stages, 1):
            where = f"stage {n}"
            integer(f"{where} width", stage.width, 1)
            integer(f"{where} height", stage.height, 1)
            if min(stage.width, stage.height) < smallest:
                raise ValueError(
                    f"{where} size {stage.width}x{stage.height} is too small: VGG19's max-pools need at least "
                    f"{smallest} px per side up to layer {deepest}")
            ratio = max(stage.width, stage.height) / min(stage.width, stage.height)
            if ratio > MAX_ASPECT_RATIO:
                raise ValueError(f"{where} size {stage.width}x{stage.height} has an aspect ratio of {ratio:.3g}:1; "
                                 f"at most {MAX_ASPECT_RATIO:g}:1 is supported")
            if not isinstance(stage.optimizer, str) or stage.optimizer.lower() not in Optimizer.opt_registry:
                raise ValueError(f"{where} optimizer {stage.optimizer!r} is not a gluon optimizer (e.g. sgd, adam)")
            number(f"{where} learning rate", stage.lr)
            integer(f"{where} epochs", stage.epochs, 1)
            integer(f"{where} lr_decay_epoch", stage.lr_decay_epoch, 1)
            number(f"{where} lr_decay", stage.lr_decay)
            if stage.lr_decay > 1:
                raise ValueError(f"{where} lr_decay must be at most 1 (it multiplies the learning rate), "
                                 f"not {stage.lr_decay!r}")
        number("content weight", self.content_weight, allow_low=True)
        number("style weight", self.style_weight)
        number("tv weight", self.tv_weight, allow_low=True)
        if self.weights not in ("caffe", "gluon"):
            raise ValueError(f"unknown weights source {self.weights!r} (choose 'caffe' or 'gluon')")
        if self.scale is not None:
            number("scale", self.scale)
        integer("report_every", self.report_every, 1)
        integer("max_recoveries", self.max_recoveries, 0)
        integer("max_pixels", self.max_pixels, 1)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["activation_scale"] = self.activation_scale
        return d
