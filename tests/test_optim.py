"""The L-BFGS optimizer against the exact minimiser of a badly conditioned quadratic."""
import mxnet as mx
import numpy as np
from mxnet import autograd, nd

from neural_style.optim import FIRST_STEP
from neural_style.train import get_inits


def minimise(optimizer, lr, steps, A, b):
    x, trainer = get_inits(nd.zeros((len(b),)), mx.cpu(), lr, optimizer)
    A_, b_ = nd.array(A), nd.array(b)
    for _ in range(steps):
        with autograd.record():
            loss = 0.5 * nd.dot(x, nd.dot(A_, x)) - nd.dot(b_, x)
        loss.backward()
        trainer.step(1)
    return x.asnumpy()


def test_lbfgs_solves_an_ill_conditioned_quadratic():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    A = Q @ np.diag(np.logspace(0, 3, 20)) @ Q.T
    b = rng.normal(size=20)
    exact = np.linalg.solve(A, b)
    assert np.abs(minimise("lbfgs", 1.0, 60, A, b) - exact).max() < 1e-3
    # plain gradient descent with a stable step gets nowhere near in the same number of steps
    assert np.abs(minimise("sgd", 1e-3, 60, A, b) - exact).max() > 0.1


def bfloat16_rounded(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16's 8 significant bits (to nearest, ties to even), by hand."""
    bits = x.astype(np.float32).view(np.uint32)
    bits = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


def lbfgs_steps(gradient, x0: np.ndarray, steps: int, lr: float = 1.0) -> list[np.ndarray]:
    """The points L-BFGS visits from x0, the gradient at x given by gradient(x) (numpy)."""
    x, trainer = get_inits(nd.array(x0), mx.cpu(), lr, "lbfgs")
    points = [x0]
    for _ in range(steps):
        with autograd.record():
            linear = (x * nd.array(gradient(x.asnumpy()))).sum()  # its gradient is the given one
        linear.backward()
        trainer.step(1)
        points.append(x.asnumpy())
    return points


def test_lbfgs_first_step_moves_the_largest_pixel_by_first_step_times_lr():
    g = np.array([0.5, -2.0, 1.0, 0.0], np.float32)
    x0 = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    _, x1 = lbfgs_steps(lambda x: g, x0, 1, lr=0.5)
    np.testing.assert_allclose(x1, x0 - g * (0.5 * FIRST_STEP / 2.0), rtol=1e-6)


def test_lbfgs_curvature_from_the_first_step_survives_bfloat16_rounding():
    # f = a/2 |x - c|^2 over an image's worth of pixels, its gradient rounded to bfloat16 as the
    # bfloat16 network's is. One exact curvature pair takes the second step to c. With Torch's
    # L1 rule the first step moved each pixel by about 1e-5, the pair was rounding noise, and the
    # second step ended no closer to c (1.07 of the start's distance; 0.013 after four steps).
    a, c = 3.0, np.random.default_rng(0).normal(size=100_000).astype(np.float32)
    x0 = np.zeros_like(c)
    points = lbfgs_steps(lambda x: bfloat16_rounded(a * (x - c)), x0, 4)
    distance = [np.linalg.norm(x - c) / np.linalg.norm(x0 - c) for x in points]
    assert distance[2] < 0.5 and distance[4] < 1e-3


def test_lbfgs_state_survives_save_and_load(tmp_path):
    x, trainer = get_inits(nd.ones((3,)), mx.cpu(), 1.0, "lbfgs")
    for _ in range(3):
        with autograd.record():
            loss = (x ** 2 * nd.array([1, 10, 100])).sum()
        loss.backward()
        trainer.step(1)
    trainer.save_states(str(tmp_path / "s"))
    _, other = get_inits(nd.ones((3,)), mx.cpu(), 1.0, "lbfgs")
    other.load_states(str(tmp_path / "s"))
    state = other._updaters[0].states[0]
    assert len(state.s) == len(trainer._updaters[0].states[0].s) > 0


def test_lbfgs_history_is_a_setting_that_bounds_the_pairs_kept():
    from skimage import data

    from neural_style import Settings, Stage, transfer
    from neural_style.train import Hook

    class Pairs(Hook):
        def __init__(self):
            self.counts = []

        def after_epoch(self, loop):
            self.counts.append(len(loop.trainer._updaters[0].states[0].s))

    pairs = Pairs()
    settings = Settings(stages=(Stage(32, 24, "lbfgs", 1.0, 6, 200),), lbfgs_history=2)
    transfer(data.chelsea(), data.immunohistochemistry(), settings, hooks=[pairs])
    assert max(pairs.counts) == 2 and pairs.counts[0] == 0  # the first step has no pair yet
    assert Settings(lbfgs_history=5).optimizer_params(Stage(optimizer="lbfgs")) == {"history": 5}
    assert Settings(lbfgs_history=5).optimizer_params(Stage(optimizer="adam")) == {}
