"""The lecture's losses against the same formulas written out in numpy."""
import numpy as np
import pytest
from mxnet import autograd, nd

from neural_style.config import LossWeights
from neural_style.losses import compute_loss, content_loss, gram, style_loss, tv_loss


def np_gram(x):
    c = x.shape[1]
    f = x.reshape(c, -1).astype(np.float64)
    return f @ f.T / f.size


def test_content_loss_is_mean_squared_error(rng):
    a, b = rng.normal(size=(2, 1, 4, 5, 6)).astype(np.float32)
    assert content_loss(nd.array(a), nd.array(b)).asscalar() == pytest.approx(((a - b) ** 2).mean(), rel=1e-5)


def test_gram_is_normalised_by_channels_times_pixels(rng):
    x = rng.normal(size=(1, 3, 4, 5)).astype(np.float32)
    g = gram(nd.array(x)).asnumpy()
    assert g.shape == (3, 3)
    by_hand = np.array([[np.sum(x[0, i] * x[0, j]) / (3 * 4 * 5) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(g, by_hand, rtol=1e-5)
    # doubling the spatial size with the same statistics keeps the Gram matrix unchanged
    np.testing.assert_allclose(gram(nd.array(np.concatenate([x, x], axis=3))).asnumpy(), g, rtol=1e-5)


def test_style_loss_compares_gram_matrices(rng):
    y_hat, y = rng.normal(size=(2, 1, 8, 6, 7)).astype(np.float32)
    expected = ((np_gram(y_hat) - np_gram(y)) ** 2).mean()
    assert style_loss(nd.array(y_hat), gram(nd.array(y))).asscalar() == pytest.approx(expected, rel=1e-4)


def test_tv_loss_by_hand():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4) ** 1.5
    vertical = np.abs(np.diff(x, axis=2)).mean()
    horizontal = np.abs(np.diff(x, axis=3)).mean()
    assert tv_loss(nd.array(x)).asscalar() == pytest.approx(0.5 * (vertical + horizontal), rel=1e-5)
    assert tv_loss(nd.ones((1, 3, 5, 5))).asscalar() == 0


def test_compute_loss_weights_and_sums(rng):
    X = rng.normal(size=(1, 3, 6, 6)).astype(np.float32)
    c_hat, c = rng.normal(size=(2, 1, 4, 3, 3)).astype(np.float32)
    s_hats = [rng.normal(size=(1, 4, 3, 3)).astype(np.float32) for _ in range(2)]
    s_targets = [rng.normal(size=(1, 4, 3, 3)).astype(np.float32) for _ in range(2)]
    losses = compute_loss(
        nd.array(X), [nd.array(c_hat)], [nd.array(s) for s in s_hats], [nd.array(c)],
        [gram(nd.array(s)) for s in s_targets], LossWeights(content=2.0, style=30.0, tv=0.5))
    assert list(losses) == ["content", "style", "tv", "total"]
    cl, sl, tl, total = losses.values()
    exp_c = 2.0 * ((c_hat - c) ** 2).mean()
    exp_s = 30.0 * sum(((np_gram(a) - np_gram(b)) ** 2).mean() for a, b in zip(s_hats, s_targets))
    exp_t = 0.5 * 0.5 * (np.abs(np.diff(X, axis=2)).mean() + np.abs(np.diff(X, axis=3)).mean())
    assert cl.asscalar() == pytest.approx(exp_c, rel=1e-5)
    assert sl.asscalar() == pytest.approx(exp_s, rel=1e-4)
    assert tl.asscalar() == pytest.approx(exp_t, rel=1e-5)
    assert total.asscalar() == pytest.approx(exp_c + exp_s + exp_t, rel=1e-4)


def test_gram_gradient_is_the_whole_gradient_of_x_xt(rng):
    """gram's backward pass runs one product; it must still be d/dX of sum(W * X Xᵀ / size) =
    (W + Wᵀ) X / size, for a W that is not symmetric (a loss of G need not be)."""
    x = rng.normal(size=(1, 5, 3, 4)).astype(np.float32)
    W = rng.normal(size=(5, 5)).astype(np.float32)
    X = nd.array(x)
    X.attach_grad()
    with autograd.record():
        loss = (gram(X) * nd.array(W)).sum()
    loss.backward()
    f = x.reshape(5, -1).astype(np.float64)
    by_hand = ((W + W.T) @ f / x.size).reshape(x.shape)
    np.testing.assert_allclose(X.grad.asnumpy(), by_hand, rtol=1e-5, atol=1e-7)
    assert loss.asscalar() == pytest.approx((W * (f @ f.T) / x.size).sum(), rel=1e-5)
