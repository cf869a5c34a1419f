"""The lecture's losses: content, style (through Gram matrices), total variation, and their sum;
and the peers' style loss, the 2-Wasserstein distance between the features' Gaussians."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from mxnet import nd

from .config import LossWeights, Settings


def content_loss(Y_hat: nd.NDArray, Y: nd.NDArray) -> nd.NDArray:
    """Mean squared difference between generated and target features."""
    return (Y_hat - Y).square().mean()


def channel_products(X: nd.NDArray) -> nd.NDArray:
    """X Xᵀ of a (1, c, h, w) feature map reshaped to (c, h*w): the sum of y yᵀ over its positions."""
    num_channels = X.shape[1]
    X = X.reshape((num_channels, X.size // num_channels))
    # X Xᵀ as an inner product of X with itself (FullyConnected, X as data and as weight): oneDNN
    # runs it on all cores, 3 to 4 times as fast forward plus backward as BLAS's syrk or
    # nd.dot(X, X.T), which cost a quarter of an epoch in MXNet's profile (docs/BENCHMARKS.md).
    # The weight side is a constant, so the backward pass runs one product (dA X), not two and
    # their sum; A + Aᵀ - A, the last term a constant, has A's value and hands A the gradient
    # dG + dGᵀ, so X still gets X Xᵀ's whole gradient (dG + dGᵀ) X, for any loss of G. detach(),
    # not stop_gradient: the same array without its history, where stop_gradient copies it.
    A = nd.FullyConnected(X, X.detach(), no_bias=True, num_hidden=num_channels)
    return A.T + (A - A.detach())


def gram(X: nd.NDArray) -> nd.NDArray:
    """Channel correlations of a (1, c, h, w) feature map, normalised by c*h*w."""
    return channel_products(X) / X.size


class StyleStatistic(Protocol):
    """What the style loss matches of a feature map. ``moments`` are averages over the map's
    positions (an NDArray or a tuple of them), so that the moments of parts of a map, weighted by
    their share of the positions, add up to the whole map's (mix): style blends and tiles rely on
    it. ``target`` turns the style's moments into what ``loss`` compares the generated image's
    moments with, once per stage; ``blank_loss`` is the loss of an all-zero feature map against
    a target, the size of that target (style_layer_norm divides by it)."""

    def moments(self, Y: nd.NDArray) -> Any: ...

    def target(self, moments: Any) -> Any: ...

    def loss(self, moments: Any, target: Any) -> nd.NDArray: ...

    def blank_loss(self, target: Any) -> float: ...


@dataclass(frozen=True)
class Gram:
    """The lecture's statistic: the Gram matrix (``gram``: the package's, or the benchmark's
    copy of the lecture's formula), compared by mean squared difference."""

    gram: Callable[[nd.NDArray], nd.NDArray] = gram

    def moments(self, Y: nd.NDArray) -> nd.NDArray:
        return self.gram(Y)

    def target(self, moments: nd.NDArray) -> nd.NDArray:
        return moments

    def loss(self, moments: nd.NDArray, target: nd.NDArray) -> nd.NDArray:
        return (moments - target).square().mean()

    def blank_loss(self, target: nd.NDArray) -> float:
        return float(target.square().mean().asscalar())


GRAM = Gram()


def second_moment(Y: nd.NDArray) -> nd.NDArray:
    """E[y yᵀ] over the positions of a (1, c, h, w) feature map: the Gram matrix times c."""
    return channel_products(Y) / (Y.size // Y.shape[1])


def psd_sqrt(C: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (float64; the rounding's
    negative eigenvalues taken as 0)."""
    eigenvalues, vectors = np.linalg.eigh((C + C.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


# Eigenvalues of C'^½ C C'^½ below this fraction of the largest, times the channel count, count
# as 0 (float32 rounding; a layer with fewer positions than channels is rank-deficient), and get
# no gradient, whose 1/(2 sqrt(eigenvalue)) would be unbounded there.
EIGENVALUE_CUTOFF = float(np.finfo(np.float32).eps)


def trace_sqrt(M: nd.NDArray) -> nd.NDArray:
    """tr(M^½) of a symmetric positive semi-definite (c, c) M, differentiable: the sum of the
    square roots of its eigenvalues (linalg.syevd), those under the cutoff left out."""
    eigenvalues = nd.linalg.syevd((M + M.T) / 2)[1]
    kept = eigenvalues > eigenvalues.max().detach() * (EIGENVALUE_CUTOFF * M.shape[0])
    # 1 in place of the eigenvalues left out: their square root's gradient stays finite (times 0)
    return (nd.sqrt(nd.where(kept, eigenvalues, nd.ones_like(eigenvalues))) * kept).sum()


@dataclass(frozen=True)
class Wasserstein:
    """Each layer's features as a Gaussian: their mean μ and covariance C over the positions,
    compared by the squared 2-Wasserstein distance

        |μ - μ'|² + tr(C) + tr(C') - 2 tr((C'^½ C C'^½)^½).

    The moments are averages over positions (the mean and the second moment E[y yᵀ]), so parts
    of a map mix into the whole; the covariances are formed in ``loss``. The target keeps C'^½
    and tr(C'), computed once in float64."""

    def moments(self, Y: nd.NDArray) -> tuple[nd.NDArray, nd.NDArray]:
        return Y.reshape((Y.shape[1], -1)).mean(axis=1), second_moment(Y)

    def target(self, moments: tuple[nd.NDArray, nd.NDArray]) -> tuple[nd.NDArray, nd.NDArray, nd.NDArray]:
        mean, second = moments
        mu = mean.asnumpy().astype(np.float64)
        C = second.asnumpy().astype(np.float64) - np.outer(mu, mu)
        return mean, nd.array(psd_sqrt(C), ctx=mean.context), nd.array([np.trace(C)], ctx=mean.context)

    def loss(self, moments: tuple[nd.NDArray, nd.NDArray], target: tuple[nd.NDArray, ...]) -> nd.NDArray:
        mean, second = moments
        target_mean, target_root, target_trace = target
        C = second - nd.dot(mean.expand_dims(1), mean.expand_dims(0))
        cross = trace_sqrt(nd.dot(nd.dot(target_root, C), target_root))
        trace = nd.diag(second).sum() - mean.square().sum()
        return (mean - target_mean).square().sum() + trace + target_trace - 2 * cross

    def blank_loss(self, target: tuple[nd.NDArray, ...]) -> float:
        target_mean, _, target_trace = target
        return float((target_mean.square().sum() + target_trace).asscalar())


WASSERSTEIN = Wasserstein()

# The statistics by their name in Settings.style_loss.
STATISTICS: dict[str, StyleStatistic] = {"gram": GRAM, "wasserstein": WASSERSTEIN}


def style_statistic(settings: Settings) -> StyleStatistic:
    """The statistic settings.style_loss names: the one place a run's is chosen."""
    return STATISTICS[settings.style_loss]


def normalised_style_layers(weights: LossWeights, targets: Sequence[Any], statistic: StyleStatistic) -> LossWeights:
    """weights with each style layer's multiplier divided by its target's blank loss, and
    multiplied by the layers' mean blank loss (style_layer_norm).

    The lecture's style losses differ by orders of magnitude between layers (its sum is mostly
    conv4_1's); divided by the blank loss each is a relative error, so the layers weigh alike.
    The mean keeps the style loss's total where every layer's relative error is the same, so
    --style-weight keeps its scale. A layer whose target is all zero keeps its multiplier."""
    blank = [statistic.blank_loss(t) for t in targets]
    mean = sum(blank) / len(blank)
    given = weights.style_layers or (1.0,) * len(targets)
    return replace(weights, style_layers=tuple(w * mean / b if b > 0 else w for w, b in zip(given, blank)))


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


def stage_loss_weights(weights: LossWeights, targets: Sequence[Any], statistic: StyleStatistic,
                       normalise: bool) -> LossWeights:
    """A stage's loss weights, built once per stage by every objective: as given, or with each
    style layer normalised by its target (Settings.style_layer_norm)."""
    return normalised_style_layers(weights, targets, statistic) if normalise else weights


def style_layer_weights(weights: LossWeights, layers: int) -> list[float]:
    """The weight of each of the style layers' losses: the style weight times the layer's multiplier."""
    return [weights.style * w for w in weights.style_layers or [1.0] * layers]


def with_total(losses: dict[str, nd.NDArray]) -> dict[str, nd.NDArray]:
    """The losses by name and, last, their sum as ``total``."""
    terms = list(losses.values())
    return {**losses, "total": sum(terms[1:], terms[0])}
