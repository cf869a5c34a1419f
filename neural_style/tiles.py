"""Tiled optimisation: the untiled loss and gradient of an image whose activations do not fit,
computed from overlapping tiles, exactly (to rounding), not approximately.

Each tile is an interior, a part of a partition of the image, plus a halo within the image.
The halo covers what the interior's features depend on up to the deepest tap (``halo``, derived
from the network's layer windows); interiors start on the pooling grid (multiples of the deepest
tap's stride), so the interior's features at every tap are the whole image's, rows and columns
[top / stride, bottom // stride). At the true image border a tile ends where the image does, and
the network pads it as it pads the whole image.

Content and total variation are local. The style statistics' moments are averages over
positions (losses.StyleStatistic), so the whole map's are the interiors' mixed by their share of
the positions (losses.mix). An epoch (``TiledObjective``) is then two passes over the tiles:
the first, without recording, mixes the whole image's moments M; with M as leaves, the style
loss is recorded and differentiated, giving dL/dM; the second records each tile and
back-propagates its content loss and <dL/dM, its share of M> into the tile's input, added into
the image's gradient. TV is taken on the whole image: only the activations are tiled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import mxnet as mx
from mxnet import autograd, nd

from .config import Settings, Stage
from .cpu import run_precision
from .losses import (GRAM, StyleStatistic, content_loss, mix, neighbour_difference, stage_loss_weights, style_layer_weights,
                     with_total)
from .vgg import FeatureNet, extract_features

#: A layer's (kernel, stride, padding) along one side (vgg.layer_window).
Window = tuple[int, int, int]

#: What a tiled epoch reports after each tile: (tiles done, tiles in the epoch's two passes).
TileCallback = Callable[[int, int], None]


def check_windows(windows: Sequence[Window]) -> None:
    """ValueError unless every layer keeps positions where tiles need them: size-preserving
    (stride 1, padding (kernel - 1) / 2) or non-overlapping (kernel = stride, no padding)."""
    for i, (kernel, stride, pad) in enumerate(windows):
        if not ((stride == 1 and 2 * pad == kernel - 1) or (kernel == stride and pad == 0)):
            raise ValueError(f"layer {i} (kernel {kernel}, stride {stride}, padding {pad}) can not be tiled: "
                             "tiling needs size-preserving convolutions and non-overlapping pooling")


def tap_stride(windows: Sequence[Window], tap: int) -> int:
    """How many input pixels one position of layer ``tap``'s output spans along a side."""
    stride = 1
    for _, s, _ in windows[: tap + 1]:
        stride *= s
    return stride


def halo(windows: Sequence[Window], taps: Sequence[int]) -> int:
    """Pixels beyond an aligned interior, on the wider side, that the interior's features at
    ``taps`` depend on: feature row 0 of a tap of stride s covers pixels [0, s), and each layer
    below it, from the tap down, widens the rows it needs by its window."""
    check_windows(windows)
    widest = 0
    for tap in taps:
        low, high = 0, 0  # rows of the tap's output
        for kernel, stride, pad in reversed(windows[: tap + 1]):
            low, high = low * stride - pad, high * stride - pad + kernel - 1
        widest = max(widest, -low, high - (tap_stride(windows, tap) - 1))
    return widest


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def cuts(length: int, tile: int, align: int) -> list[int]:
    """The interiors' edges along one side: as few interiors of at most ``tile`` pixels as cover
    it, of one size (a multiple of ``align``), the last one taking the rest, so that each one
    spans at least ``align`` pixels (a position at the deepest tap) and the tiles waste little."""
    full = max(length // align * align, 1)
    count = -(-full // tile)
    return [*range(0, full, round_up(-(-full // count), align)), length]


@dataclass(frozen=True)
class Tile:
    """A part of the image: ``interior`` (top, bottom, left, right; ends exclusive) and
    ``bounds``, the interior with its halo, clipped to the image: the pixels the network sees."""

    interior: tuple[int, int, int, int]
    bounds: tuple[int, int, int, int]

    def take(self, X: nd.NDArray) -> nd.NDArray:
        """The tile's pixels of the (N, C, H, W) image X."""
        top, bottom, left, right = self.bounds
        return X[:, :, top:bottom, left:right]

    def add_to(self, X: nd.NDArray, part: nd.NDArray) -> None:
        """Add part, an array of the tile's shape, into the tile's pixels of X."""
        top, bottom, left, right = self.bounds
        X[:, :, top:bottom, left:right] += part

    def window(self, stride: int) -> tuple[slice, slice]:
        """The interior's rows and columns in the whole image's map at a layer of this stride."""
        top, bottom, left, right = self.interior
        return slice(top // stride, bottom // stride), slice(left // stride, right // stride)

    def interior_of(self, Y: nd.NDArray, stride: int) -> nd.NDArray:
        """The interior's part of Y, the tile's own map at a layer of this stride."""
        (rows, cols), y0, x0 = self.window(stride), self.bounds[0] // stride, self.bounds[2] // stride
        return Y[:, :, rows.start - y0: rows.stop - y0, cols.start - x0: cols.stop - x0]

    def part_of(self, Y: nd.NDArray, stride: int) -> nd.NDArray:
        """The interior's part of Y, the whole image's map at a layer of this stride."""
        rows, cols = self.window(stride)
        return Y[:, :, rows, cols]

    def share(self, stride: int, height: int, width: int) -> float:
        """The interior's share of the positions of a height x width image's map at this stride."""
        rows, cols = self.window(stride)
        return (rows.stop - rows.start) * (cols.stop - cols.start) / ((height // stride) * (width // stride))


def span(start: int, end: int, length: int, halo: int, side: int, align: int) -> tuple[int, int]:
    """The pixels a tile sees along one side: the interior [start, end) and ``halo`` beyond it,
    within [0, length). A tile cut by the image's edge reaches further inwards instead, up to
    ``side`` pixels (its start kept on the grid), so that the tiles share a few shapes (one where
    length is a multiple of align): each new shape costs MXNet and oneDNN memory and set-up time.
    More context than the halo changes none of the interior's features."""
    low, high = max(start - halo, 0), min(end + halo, length)
    if low == 0:
        high = max(high, min(side, length))
    elif high == length:
        low = min(low, max(round_up(length - side, align), 0))
    return low, high


def tile_grid(width: int, height: int, tile: int, halo: int, align: int = 16) -> list[Tile]:
    """The tiles of a width x height image, row by row: interiors of at most ``tile`` x ``tile``
    pixels (rounded up to a multiple of align; ``cuts``) starting at multiples of ``align``, each
    seen with ``halo`` pixels around it (rounded up to a multiple of align, so that every tile
    starts on the pooling grid), within the image (``span``)."""
    tile, halo = round_up(max(tile, 1), align), round_up(halo, align)

    def along(length: int) -> list[tuple[int, int, int, int]]:
        edges = cuts(length, tile, align)
        side = edges[1] - edges[0] + 2 * halo  # an inner tile's
        return [(start, end, *span(start, end, length, halo, side, align)) for start, end in zip(edges, edges[1:])]

    return [Tile((top, bottom, left, right), (y0, y1, x0, x1))
            for top, bottom, y0, y1 in along(height) for left, right, x0, x1 in along(width)]


@dataclass(frozen=True)
class Tiling:
    """How a network's image is cut: interiors of ``tile`` pixels, the network's halo, aligned to
    the stride of its deepest tap. ``strides``: each tap's."""

    tile: int
    halo: int
    align: int
    strides: dict

    @classmethod
    def of(cls, net: FeatureNet, tile: int) -> "Tiling":
        """The tiling of net's images with interiors of ``tile`` pixels (rounded up to the alignment)."""
        strides = {tap: tap_stride(net.windows, tap) for tap in net.taps}
        align = max(strides.values())
        # at least a pixel of halo: total variation compares an interior's last pixels with the next ones
        return cls(round_up(tile, align), round_up(max(halo(net.windows, net.taps), 1), align), align, strides)

    def grid(self, X: nd.NDArray) -> list[Tile]:
        """The tiles of image X (N, C, H, W)."""
        return tile_grid(X.shape[3], X.shape[2], self.tile, self.halo, self.align)

    def interiors(self, tile: Tile, Ys: Sequence[nd.NDArray], layers: Sequence[int]) -> list[nd.NDArray]:
        """The interior's part of each of the tile's feature maps Ys, at ``layers``."""
        return [tile.interior_of(Y, self.strides[layer]) for Y, layer in zip(Ys, layers)]

    def shares(self, tile: Tile, X: nd.NDArray, layers: Sequence[int]) -> list[float]:
        """The interior's share of the positions of image X's maps at ``layers``."""
        return [tile.share(self.strides[layer], X.shape[2], X.shape[3]) for layer in layers]

    def moments(self, net: FeatureNet, X: nd.NDArray, layers: Sequence[int], statistic: StyleStatistic = GRAM,
                on_tile: Optional[TileCallback] = None, total: int = 0) -> list[Any]:
        """The statistic's moments of image X's features at ``layers``, without recording: each
        tile's interior moments mixed by their shares (what the untiled network's would be)."""
        tiles, mixed = self.grid(X), None
        for n, tile in enumerate(tiles, 1):
            _, Ys = extract_features(net, tile.take(X), (), layers)
            parts = [statistic.moments(Y) for Y in self.interiors(tile, Ys, layers)]
            shares = self.shares(tile, X, layers)
            mixed = ([mix([m], [w]) for m, w in zip(parts, shares)] if mixed is None else
                     [mix([acc, m], [1.0, w]) for acc, m, w in zip(mixed, parts, shares)])
            report(on_tile, n, total or len(tiles), mixed)
        return mixed

    def features(self, net: FeatureNet, X: nd.NDArray, layers: Sequence[int]) -> list[nd.NDArray]:
        """Image X's whole feature maps at ``layers``, put together from the tiles' interiors."""
        maps = None
        for tile in self.grid(X):
            _, Ys = extract_features(net, tile.take(X), (), layers)
            if maps is None:
                maps = [nd.zeros((1, Y.shape[1], X.shape[2] // self.strides[layer], X.shape[3] // self.strides[layer]),
                                 ctx=X.context, dtype=Y.dtype) for Y, layer in zip(Ys, layers)]
            for whole, part, layer in zip(maps, self.interiors(tile, Ys, layers), layers):
                whole[(slice(None), slice(None), *tile.window(self.strides[layer]))] = part
            report(None, 0, 0, maps)
        return maps


def report(on_tile: Optional[TileCallback], done: int, total: int, result: Any) -> None:
    """Wait for a tile's work (so that at most one tile's activations are alive, and progress is
    true), then tell on_tile."""
    for array in leaves(result):
        array.wait_to_read()
    if on_tile is not None:
        on_tile(done, total)


def leaves(moments: Any) -> list[nd.NDArray]:
    """The NDArrays of moments: one, or a (nested) list or tuple of them."""
    if isinstance(moments, (list, tuple)):
        return [a for m in moments for a in leaves(m)]
    return [moments]


def inner(grads: Any, moments: Any) -> nd.NDArray:
    """The sum of the elementwise products of two moments of the same structure."""
    return nd.add_n(*[(g * m).sum() for g, m in zip(leaves(grads), leaves(moments))])


@dataclass
class TiledObjective:
    """train.Objective's loss and gradient, computed in tiles (see the module's docstring).

    ``contents_Y`` are the content targets' whole maps, ``styles_Y_gram`` the statistic's target
    moments. ``on_tile`` is told (done, total) after each tile of an epoch's two passes: the
    command line's progress within an epoch, and the stop flag's chance to end a long one.
    """

    net: FeatureNet
    contents_Y: Sequence[nd.NDArray]
    styles_Y_gram: Sequence[Any]
    settings: Settings
    tiling: Tiling
    statistic: StyleStatistic = GRAM
    on_tile: Optional[TileCallback] = None

    def __post_init__(self) -> None:
        self.weights = stage_loss_weights(self.settings.loss_weights, self.styles_Y_gram, self.statistic,
                                          self.settings.style_layer_norm)
        self.style_weights = style_layer_weights(self.weights, len(self.styles_Y_gram))

    def __call__(self, X: nd.NDArray) -> dict[str, nd.NDArray]:
        s, tiles = self.settings, self.tiling.grid(X)
        total = 2 * len(tiles)
        moments = self.tiling.moments(self.net, X, s.style_layers, self.statistic, self.on_tile, total)
        style, style_grads = self.style_loss(moments)
        grad, local = nd.zeros_like(X), []  # the image's gradient, each tile's (content, tv)
        for n, tile in enumerate(tiles, len(tiles) + 1):
            local.append(self.tile_backward(X, tile, style_grads, grad))
            report(self.on_tile, n, total, grad)
        # into X.grad the way backward writes it, so that the Trainer sees a fresh gradient:
        # the gradient of sum(X * grad) is grad
        with autograd.record():
            handover = (X * grad).sum()
        handover.backward()
        content, tv = (nd.add_n(*parts) for parts in zip(*local))
        return with_total({"content": content, "style": style, "tv": tv})

    def style_loss(self, moments: Sequence[Any]) -> tuple[nd.NDArray, list[Any]]:
        """The style loss of the whole image's moments, and its gradient with respect to them."""
        for array in leaves(moments):
            array.attach_grad()
        with autograd.record():
            style = nd.add_n(*[self.statistic.loss(M, target) * w
                               for M, target, w in zip(moments, self.styles_Y_gram, self.style_weights)])
        style.backward()
        grads = [tuple(a.grad for a in M) if isinstance(M, tuple) else M.grad for M in moments]
        return style, grads

    def tile_backward(self, X: nd.NDArray, tile: Tile, style_grads: Sequence[Any],
                      grad: nd.NDArray) -> tuple[nd.NDArray, nd.NDArray]:
        """Record one tile, back-propagate its interior's content and TV losses and its share of the
        style loss's linearisation into its pixels, add them to grad; returns its content and TV."""
        s, tiling = self.settings, self.tiling
        Xt = tile.take(X)
        Xt.attach_grad()
        with autograd.record():
            contents_hat, styles_hat = extract_features(self.net, Xt, s.content_layers, s.style_layers)
            content = nd.add_n(*[
                content_loss(Y_hat, tile.part_of(Y, tiling.strides[layer])) * (self.weights.content * share)
                for Y_hat, Y, layer, share in zip(tiling.interiors(tile, contents_hat, s.content_layers),
                                                  self.contents_Y, s.content_layers,
                                                  tiling.shares(tile, X, s.content_layers))])
            parts = [self.statistic.moments(Y) for Y in tiling.interiors(tile, styles_hat, s.style_layers)]
            linear = nd.add_n(*[inner(g, m) * share for g, m, share in
                                zip(style_grads, parts, tiling.shares(tile, X, s.style_layers))])
            tv = tv_part(Xt, tile, X.shape[2:]) * self.weights.tv
            surrogate = content + tv + linear
        surrogate.backward()
        tile.add_to(grad, Xt.grad)
        return content.detach(), tv.detach()


def tv_part(Xt: nd.NDArray, tile: Tile, shape: tuple[int, int]) -> nd.NDArray:
    """The tile's part of the image's total variation (losses.tv_loss): the differences between
    its interior's pixels and their next neighbours down and across, each direction weighted by
    its share of the image's pairs. Xt is the tile's pixels (its bounds)."""
    (top, bottom, left, right), (y0, _, x0, _), (height, width) = tile.interior, tile.bounds, shape
    parts = []
    ends = {2: (min(bottom, height - 1) + 1, right), 3: (bottom, min(right, width - 1) + 1)}  # with the neighbours
    for axis, (end_row, end_col) in ends.items():
        down, across = axis == 2, axis == 3  # the neighbour's row or column lies past the interior
        pairs = (end_row - top - down) * (end_col - left - across)
        if pairs > 0:
            part = Xt[:, :, top - y0: end_row - y0, left - x0: end_col - x0]
            parts.append(neighbour_difference(part, axis) * (pairs / ((height - down) * (width - across))))
    return 0.5 * nd.add_n(*parts)


# ---- the memory model: whether a stage is tiled, and in tiles of what size ----------------------

@dataclass(frozen=True)
class MemoryModel:
    """A stage's peak resident memory, fitted against its pixels by `python scripts/tiling.py
    --fit` (transfer(), one SGD stage, the default layers; docs/BENCHMARKS.md, "Tiling (issue
    13)"). Each kind of stage has its own line: a straight line through the sizes measured, not
    a count of the process's parts (Python, MXNet and VGG's weights take about 0.45 GB before any
    stage). Bytes: ``base``, an untiled stage's line at no pixels; ``untiled``, per pixel of an
    untiled stage; ``tiled_base``, a tiled stage's line at no pixels; ``tiled_image``, per pixel
    of the image in a tiled stage (the image, its gradient and the tiles' sum of it, the content
    image, the divergence guard's copies, the content targets' maps); ``tile``, per pixel of a
    tiled stage's largest tile (interior and halo): its activations."""

    base: float
    untiled: float
    tiled_base: float
    tiled_image: float
    tile: float


#: The model of each precision (the network's). bfloat16's maps are half as large, but the casts
#: and layout reorders around them add buffers and the float32 network stays loaded: its
#: untiled peaks were at or above float32's line at 450x300 and 1200x800, below it at 900x600
#: and 1800x1200, and no straight line passes near all four (static memory ends at 1.5 MP). So
#: its untiled line has float32's slope and a base raised until no bfloat16 row measured lies
#: above it (1200x800's decides); its tiled line is the fit through its three tiled rows
#: (`scripts/tiling.py --precision bfloat16`, docs/BENCHMARKS.md).
MEMORY_MODELS = {
    "float32": MemoryModel(base=1.09e9, untiled=4052.0, tiled_base=2.3e8, tiled_image=135.0, tile=5515.0),
    "bfloat16": MemoryModel(base=1.93e9, untiled=4052.0, tiled_base=-1.98e7, tiled_image=339.5, tile=4817.0),
}
#: Bytes per pixel of one array of the image's shape (3 float32 channels): what an optimizer keeps.
IMAGE_ARRAY_BYTES_PER_PIXEL = 12
#: The image-shaped arrays each optimizer keeps (L-BFGS: two per remembered pair).
OPTIMIZER_ARRAYS = {"sgd": 0, "nag": 1, "adagrad": 1, "rmsprop": 1, "adam": 2}
#: The share of the available memory a run takes by default (Settings.max_memory).
SAFE_SHARE = 0.8
#: MXNet 1.x's limit on an array's elements, and the widest map per pixel (conv1_1's 64
#: channels at full resolution): an image above 2**31 / 64 pixels is tiled whatever the memory.
MAX_ELEMENTS = 2**31 - 1
WIDEST_MAP_CHANNELS = 64


def memory_budget(ctx: mx.Context) -> int:
    """SAFE_SHARE of the memory available now: the machine's, or on a GPU its free memory."""
    if ctx.device_type == "gpu":
        free, _ = mx.context.gpu_memory_info(ctx.device_id)
        return int(SAFE_SHARE * free)
    import psutil

    return int(SAFE_SHARE * psutil.virtual_memory().available)


def optimizer_bytes(stage: Stage, settings: Settings) -> float:
    """Bytes per pixel the stage's optimizer keeps."""
    arrays = 2 * settings.lbfgs_history if stage.optimizer == "lbfgs" else OPTIMIZER_ARRAYS.get(stage.optimizer, 2)
    return arrays * IMAGE_ARRAY_BYTES_PER_PIXEL


def predicted_peak(stage: Stage, settings: Settings, tile_pixels: Optional[int] = None) -> float:
    """The model's peak memory of a stage, untiled or with tiles of ``tile_pixels`` (halo
    included), for the precision the run's network has."""
    model = MEMORY_MODELS[run_precision(settings)]
    pixels = stage.width * stage.height
    if tile_pixels is None:
        return model.base + (model.untiled + optimizer_bytes(stage, settings)) * pixels
    return model.tiled_base + (model.tiled_image + optimizer_bytes(stage, settings)) * pixels + model.tile * tile_pixels


def fits(stage: Stage, settings: Settings, side: Optional[int] = None) -> bool:
    """Whether the stage, untiled or in tiles ``side`` pixels across (halo included), fits in
    settings.max_memory and in MXNet's largest array."""
    w, h = (stage.width, stage.height) if side is None else (min(side, stage.width), min(side, stage.height))
    return (w * h * WIDEST_MAP_CHANNELS <= MAX_ELEMENTS
            and predicted_peak(stage, settings, None if side is None else w * h) <= settings.max_memory)


def tile_size_for(net: FeatureNet, stage: Stage, settings: Settings) -> int:
    """The side of the stage's tiles' interiors, 0 for an untiled stage: settings.tile_size where
    the stage is larger; otherwise tiles only where the untiled stage would not fit in
    settings.max_memory, the largest (a multiple of the alignment) that fit, or the smallest."""
    if settings.tile_size:
        return settings.tile_size if max(stage.width, stage.height) > settings.tile_size else 0
    if settings.max_memory is None or fits(stage, settings):
        return 0
    tiling = Tiling.of(net, 1)
    side = tiling.align
    while fits(stage, settings, side + tiling.align + 2 * tiling.halo) and side < max(stage.width, stage.height):
        side += tiling.align
    return side
