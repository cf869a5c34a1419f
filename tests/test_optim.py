"""The L-BFGS optimizer against the exact minimiser of a badly conditioned quadratic."""
import mxnet as mx
import numpy as np
from mxnet import autograd, nd

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
