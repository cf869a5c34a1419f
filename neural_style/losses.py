"""The lecture's losses: content, style (through Gram matrices), total variation, and their sum."""
from __future__ import annotations

from typing import Callable, Sequence

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


def style_loss(Y_hat: nd.NDArray, gram_Y: nd.NDArray, gram: Callable[[nd.NDArray], nd.NDArray] = gram) -> nd.NDArray:
    """Mean squared difference between the Gram matrix of Y_hat and the target Gram matrix."""
    return (gram(Y_hat) - gram_Y).square().mean()


def tv_loss(Y_hat: nd.NDArray) -> nd.NDArray:
    """Total variation: mean absolute difference of vertical and of horizontal neighbours, halved."""
    return 0.5 * (
        (Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).abs().mean()
        + (Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).abs().mean()
    )


def compute_loss(
    X: nd.NDArray,
    contents_Y_hat: Sequence[nd.NDArray],
    styles_Y_hat: Sequence[nd.NDArray],
    contents_Y: Sequence[nd.NDArray],
    styles_Y_gram: Sequence[nd.NDArray],
    weights: LossWeights = LossWeights(),
    gram: Callable[[nd.NDArray], nd.NDArray] = gram,
) -> dict[str, nd.NDArray]:
    """The weighted losses by name, each summed over its layers, and their sum as ``total``.

    A new term is one function above, one entry here and one weight in LossWeights; the
    progress bar, the log and the plot take the names from this mapping. ``gram`` computes the
    generated image's Gram matrices (the benchmark passes the lecture's own formula).
    """
    style_weights = [weights.style * w for w in weights.style_layers or [1.0] * len(styles_Y_gram)]
    losses = {
        "content": nd.add_n(*[content_loss(Y_hat, Y) * weights.content for Y_hat, Y in zip(contents_Y_hat, contents_Y)]),
        "style": nd.add_n(*[style_loss(Y_hat, Y, gram) * w for Y_hat, Y, w in zip(styles_Y_hat, styles_Y_gram, style_weights)]),
        "tv": tv_loss(X) * weights.tv,
    }
    terms = list(losses.values())
    losses["total"] = sum(terms[1:], terms[0])
    return losses
