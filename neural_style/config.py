"""All settings in one place, with the lecture's values as defaults."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional

# ImageNet statistics used by the lecture's preprocess/postprocess (RGB).
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)

# VGG19 feature indices the lecture uses: conv1_1 .. conv5_1 for style, conv4_4 for content.
STYLE_LAYERS = (0, 5, 10, 19, 28)
CONTENT_LAYERS = (25,)

# What Settings.preserve_colors may be.
PRESERVE_COLORS = (None, "luminance", "histogram")

# Activation scale k applied to the Caffe VGG19 so the lecture's loss weights and learning
# rates keep their meaning (see docs/CALIBRATION.md for how it was chosen).
CAFFE_SCALE = 115.0

# Input images that declare more pixels than this are refused before they are decoded
# (decompression bombs); --max-pixels / Settings.max_pixels raises it. 250 MP decodes to 750 MB.
MAX_PIXELS = 250_000_000

# Images and stages more elongated than this are refused: every stage is stretched to its
# WIDTHxHEIGHT, and a 10:1 image still keeps 16 px on its short side at 160 px on its long one.
MAX_ASPECT_RATIO = 10.0


@dataclass(frozen=True)
class Stage:
    """One resolution of the small-to-large schedule.

    The size is width x height (the lecture's way: the content is resized to it whatever its
    aspect ratio), or ``long_side`` (the content's aspect ratio kept, its longer side this many
    pixels), or ``original=True`` (the content image's own size). The last two are turned into
    width x height by ``resolved()`` once the content image is known.
    """

    width: int = 0
    height: int = 0
    optimizer: str = "sgd"
    lr: float = 5.0
    epochs: int = 500
    lr_decay_epoch: int = 200
    lr_decay: float = 0.1
    long_side: Optional[int] = None
    original: bool = False

    @property
    def image_shape(self) -> tuple[int, int]:
        """(width, height), the lecture's convention."""
        if not self.is_resolved:
            raise ValueError(f"{self.describe_size()} becomes a width x height only once the content image is known")
        return (self.width, self.height)

    @property
    def is_resolved(self) -> bool:
        return self.long_side is None and not self.original

    def describe_size(self) -> str:
        if self.original:
            return "the content's own size"
        if self.long_side is not None:
            return f"long side {self.long_side}"
        return f"{self.width}x{self.height}"

    def resolved(self, content_width: int, content_height: int) -> "Stage":
        """This stage with a concrete width x height for a content image of the given size."""
        if self.original:
            w, h = content_width, content_height
        elif self.long_side is not None:
            ratio = self.long_side / max(content_width, content_height)
            w = max(1, round(content_width * ratio))
            h = max(1, round(content_height * ratio))
        else:
            return self
        return replace(self, width=w, height=h, long_side=None, original=False)


def style_size(stage: Stage, scale: float) -> tuple[int, int]:
    """(width, height) the style images are resized to at a stage: its working size times scale."""
    w, h = stage.image_shape
    return max(1, round(w * scale)), max(1, round(h * scale))


# The lecture notebook's two stages (final version, 2019-04-09).
LECTURE_STAGES = (
    Stage(300, 200, "sgd", 5.0, 500, 200),
    Stage(1200, 800, "sgd", 1.0, 300, 100),
)

# The embedded demo: small enough to finish in a few minutes on two CPU cores. The lecture's
# losses and weights, but L-BFGS: in the same time it gets much further than SGD (BENCHMARKS.md),
# so the style shows.
DEMO_STAGES = (
    Stage(150, 100, "lbfgs", 1.0, 150, 1000),
    Stage(300, 200, "lbfgs", 1.0, 60, 1000),
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
    # --- Controls beyond the lecture; every default leaves the lecture's method unchanged. ---
    # Blend weights of several style images (one each; normalised to sum 1). None: equal weights.
    # The style target of each layer is the weighted sum of the styles' Gram matrices.
    style_blend: Optional[tuple[float, ...]] = None
    # Each style image is resized to this multiple of the stage's working size before its Gram
    # matrices are taken: below 1 gives larger brush strokes, above 1 finer ones.
    style_scale: float = 1.0
    # None; "luminance": transfer the luminance only and take the colour (YIQ chroma) from the
    # content (Gatys et al. 2016); "histogram": match each style image's colour histogram to the
    # content's before the transfer.
    preserve_colors: Optional[str] = None
    # The first stage starts from "content" (the lecture), "random" (mid-grey plus noise drawn
    # from seed) or the path of an image.
    init: str = "content"
    # Per-layer multipliers of style_weight, one per style layer. None: all 1 (the lecture).
    style_layer_weights: Optional[tuple[float, ...]] = None
    # Every this many epochs of a stage, write an intermediate image and a checkpoint (0: never).
    save_every: int = 0

    def __post_init__(self) -> None:
        # Layers may be given by index or by VGG name ('conv4_4', 'relu4_2', 'pool5'): keep indices.
        # Only normalisation here; validate() says what is wrong with a value it cannot use.
        from .layers import layer_index

        def index(spec):
            try:
                return layer_index(spec)
            except (ValueError, TypeError):
                return spec

        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, (int, str)):
                value = (value,)
            setattr(self, name, tuple(index(v) for v in value))
        self.stages = tuple(self.stages)
        for name in ("style_blend", "style_layer_weights"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))

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
        from .layers import LAYER_NAMES, layer_index
        from .vgg import min_side

        def number(name: str, value: Any, low: float = 0.0, allow_low: bool = False) -> None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
            if value < low or (value == low and not allow_low):
                raise ValueError(f"{name} must be {'at least' if allow_low else 'greater than'} {low:g}, not {value!r}")

        def integer(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be a whole number of at least {low}, not {value!r}")

        for kind in ("content", "style"):
            taps = getattr(self, f"{kind}_layers")
            if not taps:
                raise ValueError(f"at least one {kind} layer is needed")
            for tap in taps:
                if isinstance(tap, bool) or not isinstance(tap, int) or not 0 <= tap < len(LAYER_NAMES):
                    try:
                        layer_index(tap)
                    except (ValueError, TypeError) as e:
                        raise ValueError(f"{kind} layer: {e}") from None
        deepest = max(tuple(self.content_layers) + tuple(self.style_layers))
        smallest = min_side((deepest,))
        if not self.stages:
            raise ValueError("at least one stage is needed")
        from mxnet.optimizer import Optimizer

        for n, stage in enumerate(self.stages, 1):
            where = f"stage {n}"
            if stage.original:
                pass  # the content's own size: checked once it is known
            elif stage.long_side is not None:
                integer(f"{where} long side", stage.long_side, smallest)
            else:
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
        # The controls beyond the lecture.
        if self.style_blend is not None:
            for w in self.style_blend:
                number("style blend weight", w, allow_low=True)
            if not sum(self.style_blend) > 0:
                raise ValueError("the style blend weights are all 0; give at least one style a weight")
        number("style scale", self.style_scale)
        style_side = min_side((max(self.style_layers),))
        for n, stage in enumerate(self.stages, 1):
            if stage.is_resolved:
                w, h = style_size(stage, self.style_scale)
                if min(w, h) < style_side:
                    raise ValueError(
                        f"stage {n}'s style images would be {w}x{h} at style scale {self.style_scale:g}, too small: "
                        f"VGG19's max-pools need at least {style_side} px per side up to layer "
                        f"{LAYER_NAMES[max(self.style_layers)]}; raise the style scale or the size")
        if self.preserve_colors not in PRESERVE_COLORS:
            raise ValueError(f"preserve_colors {self.preserve_colors!r} is not one of "
                             + ", ".join(map(repr, PRESERVE_COLORS)))
        if not isinstance(self.init, str) or not self.init:
            raise ValueError(f"init must be 'content', 'random' or the path of an image, not {self.init!r}")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(f"{len(self.style_layer_weights)} style layer weights for "
                                 f"{len(self.style_layers)} style layers")
            for w in self.style_layer_weights:
                number("style layer weight", w, allow_low=True)
        integer("save_every", self.save_every, 0)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["activation_scale"] = self.activation_scale
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Settings":
        """The inverse of to_dict (also of its JSON); derived and unknown keys are left out."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "stages" in kw:
            stage_names = {f.name for f in fields(Stage)}
            kw["stages"] = tuple(Stage(**{k: v for k, v in st.items() if k in stage_names}) for st in kw["stages"])
        for key in ("content_layers", "style_layers", "style_blend", "style_layer_weights"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)
