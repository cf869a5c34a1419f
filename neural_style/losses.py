"""The lecture's losses: content, style (through Gram matrices), total variation, and their sum."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from mxnet import nd

from .config import LossWeights


def content_loss(Y_hat: nd.NDArray, Y: nd.NDArray) -> nd.NDArray:
    """Mean squared difference between generated and target features."""
    return (Y_hat - Y).square().mean()


def gram(X: nd.NDArray) -> nd.NDArray:
    """Channel correlations of a (1, c, h, w) feature map, normalised by c*h*w."""
    num_channels, n = X.shape[1], X.size // X.shape[1]
    X = X.reshape((num_channels, n))
    # X Xᵀ as an inner product of X with itself (FullyConnected, X as data and as weight): oneDNN
    # runs it on all cores, 3 to 4 times as fast forward plus backward as BLAS's syrk or
    # nd.dot(X, X.T), which cost a quarter of an epoch in MXNet's profile (docs/BENCHMARKS.md).
    return nd.FullyConnected(X, X, no_bias=True, num_hidden=num_channels) / (num_channels * n)


class StyleStatistic(Protocol):
    """What the style loss matches of a feature map. ``moments`` are averages over the map's
    positions (an NDArray or a tuple of them), so that the moments of parts of a map, weighted by
    their share of the positions, add up to the whole map's (mix): style blends and tiles rely on
    it. ``loss`` compares the generated image's moments with the target's."""

    def moments(self, Y: nd.NDArray) -> Any: ...

    def loss(self, moments: Any, target: Any) -> nd.NDArray: ...


@dataclass(frozen=True)
class Gram:
    """The lecture's statistic: the Gram matrix (``gram``: the package's, or the benchmark's
    copy of the lecture's formula), compared by mean squared difference."""

    gram: Callable[[nd.NDArray], nd.NDArray] = gram

    def moments(self, Y: nd.NDArray) -> nd.NDArray:
        return self.gram(Y)

    def loss(self, moments: nd.NDArray, target: nd.NDArray) -> nd.NDArray:
        return (moments - target).square().mean()


GRAM = Gram()


def mix(moments: Sequence[Any], weights: Sequence[float]) -> Any:
    """The weighted sum of several moments (NDArrays, or tuples of them taken item by item)."""
    if isinstance(moments[0], tuple):
        return tuple(mix(items, weights) for items in zip(*moments))
    return nd.add_n(*[m * w for m, w in zip(moments, weights)]) if len(moments) > 1 else moments[0] * weights[0]


def style_loss(Y_hat: nd.NDArray, gram_Y: Any, statistic: StyleStatistic = GRAM) -> nd.NDArray:
    """Mean squared difference between the Gram matrix of Y_hat and the target Gram matrix (the
    lecture's), or another statistic's loss against its target."""
    return statistic.loss(statistic.moments(Y_hat), gram_Y)


def tv_loss(Y_hat: nd.NDArray) -> nd.NDArray:
    """Total variation: mean absolute difference of vertical and of horizontal neighbours, halved."""
    return 0.5 * (neighbour_difference(Y_hat, 2) + neighbour_difference(Y_hat, 3))


def neighbour_difference(Y: nd.NDArray, axis: int) -> nd.NDArray:
    """Mean absolute difference of neighbours along an axis of Y (2: vertical, 3: horizontal)."""
    n = Y.shape[axis]
    return (nd.slice_axis(Y, axis, 1, n) - nd.slice_axis(Y, axis, 0, n - 1)).abs().mean()


def compute_loss(
    X: nd.NDArray,
    contents_Y_hat: Sequence[nd.NDArray],
    styles_Y_hat: Sequence[nd.NDArray],
    contents_Y: Sequence[nd.NDArray],
    styles_Y_gram: Sequence[nd.NDArray],
    weights: LossWeights = LossWeights(),
    statistic: StyleStatistic = GRAM,
) -> dict[str, nd.NDArray]:
    """The weighted losses by name, each summed over its layers, and their sum as ``total``.

    A new term is one function above, one entry here and one weight in LossWeights; the
    progress bar, the log and the plot take the names from this mapping. ``statistic`` is what
    the style loss matches (the lecture's Gram matrices by default; styles_Y_gram are its moments).
    """
    style_weights = style_layer_weights(weights, len(styles_Y_gram))
    return with_total({
        "content": nd.add_n(*[content_loss(Y_hat, Y) * weights.content for Y_hat, Y in zip(contents_Y_hat, contents_Y)]),
        "style": nd.add_n(*[style_loss(Y_hat, Y, statistic) * w for Y_hat, Y, w in zip(styles_Y_hat, styles_Y_gram, style_weights)]),
        "tv": tv_loss(X) * weights.tv,
    })


def style_layer_weights(weights: LossWeights, layers: int) -> list[float]:
    """The weight of each of the style layers' losses: the style weight times the layer's multiplier."""
    return [weights.style * w for w in weights.style_layers or [1.0] * layers]


def with_total(losses: dict[str, nd.NDArray]) -> dict[str, nd.NDArray]:
    """The losses by name and, last, their sum as ``total``."""
    terms = list(losses.values())
    return {**losses, "total": sum(terms[1:], terms[0])}
