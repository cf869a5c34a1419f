"""All settings in one place, with the lecture's values as defaults."""
from __future__ import annotations

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
