"""All settings in one place, with the lecture's values as defaults."""
from __future__ import annotations

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
CAFFE_SCALE = 100.0


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
    # The first stage starts from "content" (the lecture), "random" (uniform noise drawn from
    # seed) or the path of an image.
    init: str = "content"
    # Per-layer multipliers of style_weight, one per style layer. None: all 1 (the lecture).
    style_layer_weights: Optional[tuple[float, ...]] = None
    # Every this many epochs of a stage, write an intermediate image and a checkpoint (0: never).
    save_every: int = 0

    def __post_init__(self) -> None:
        # Layers may be given by index or by VGG name ('conv4_4', 'relu4_2', 'pool5'); keep indices.
        from .layers import layer_indices

        self.content_layers = layer_indices(self.content_layers)
        self.style_layers = layer_indices(self.style_layers)
        self.stages = tuple(self.stages)
        if self.style_blend is not None:
            self.style_blend = tuple(float(w) for w in self.style_blend)
            if any(not w >= 0 for w in self.style_blend) or not sum(self.style_blend) > 0:
                raise ValueError(f"style blend weights {self.style_blend} must be 0 or more, not all 0")
        if self.style_layer_weights is not None:
            self.style_layer_weights = tuple(float(w) for w in self.style_layer_weights)
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(f"{len(self.style_layer_weights)} style layer weights for "
                                 f"{len(self.style_layers)} style layers")
        if not self.style_scale > 0:
            raise ValueError(f"style scale {self.style_scale} must be greater than 0")
        if self.preserve_colors not in PRESERVE_COLORS:
            raise ValueError(f"preserve_colors {self.preserve_colors!r} is not one of "
                             + ", ".join(map(repr, PRESERVE_COLORS)))
        if not isinstance(self.init, str) or not self.init:
            raise ValueError("init is 'content', 'random' or the path of an image")
        if self.save_every < 0:
            raise ValueError(f"save_every {self.save_every} must be 0 (never) or more")

    @property
    def activation_scale(self) -> float:
        """k for the chosen weights: the calibrated one for Caffe, 1 for the lecture's own."""
        if self.scale is not None:
            return float(self.scale)
        return CAFFE_SCALE if self.weights == "caffe" else 1.0

    def with_stages(self, *stages: Stage) -> "Settings":
        return replace(self, stages=tuple(stages))

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
