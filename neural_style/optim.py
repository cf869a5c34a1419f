"""L-BFGS as a Gluon optimizer, so the one training loop drives it like SGD or Adam.

jcjohnson/neural-style and pastiche optimise the image with L-BFGS; like them (Torch's
``optim.lbfgs`` without a line search) this takes one fixed-length step per gradient evaluation,
so an epoch costs what an SGD epoch costs, the state stays on the device, and the Trainer's
``save_states`` checkpoints it.

One departure from Torch: a step without curvature pairs (a stage's first, the first after the
divergence guard restarts the optimizer, or one whose pairs were all refused) moves the largest
pixel by FIRST_STEP times the learning rate, where Torch's moves the image by at most the
learning rate in L1 norm. On an image that rule's step shrinks with the pixel count (3e-5 a pixel
at 128x85), and the first curvature pair, measured over it, is rounding noise: in bfloat16 its
s·y came out near 0 and the second step 75000 times as long as the first (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import mxnet as mx
from mxnet import nd

#: The largest change of a pixel in a step without curvature pairs, times the learning rate, in
#: the preprocessed image's units (one is a standard deviation of ImageNet's pixels, about 58 of
#: 255 levels: 0.05 is 3 levels).
FIRST_STEP = 0.05


class LBFGSState:
    """Curvature pairs (s, y) and the previous point and gradient."""

    def __init__(self) -> None:
        self.s: list[nd.NDArray] = []
        self.y: list[nd.NDArray] = []
        self.rho: list[nd.NDArray] = []
        self.weight = None
        self.grad = None


@mx.optimizer.register
class LBFGS(mx.optimizer.Optimizer):
    """Limited-memory BFGS with ``history`` pairs; ``learning_rate`` scales each step (1 is the usual)."""

    def __init__(self, history: int = 100, **kwargs) -> None:
        kwargs.setdefault("learning_rate", 1.0)
        super().__init__(**kwargs)
        self.history = history

    def create_state(self, index, weight):
        return LBFGSState()

    def update(self, index, weight, grad, state: LBFGSState) -> None:
        self._update_count(index)
        lr = self._get_lr(index)
        g = grad * self.rescale_grad
        if state.weight is not None:
            s, y = weight - state.weight, g - state.grad
            ys = nd.sum(y * s)
            # Keep the pair only where the curvature is positive (always, for a convex step).
            if ys.asscalar() > 1e-10:
                state.s.append(s)
                state.y.append(y)
                state.rho.append(1.0 / ys)
                if len(state.s) > self.history:
                    del state.s[0], state.y[0], state.rho[0]
        state.weight, state.grad = weight.copy(), g.copy()
        if not state.s:
            # Plain gradient descent, its largest change lr * FIRST_STEP (none for a zero gradient).
            step = g * (lr * FIRST_STEP / nd.maximum(nd.abs(g).max(), 1e-30))
        else:
            q = g.copy()
            alphas = []
            for s, y, rho in zip(reversed(state.s), reversed(state.y), reversed(state.rho)):
                alpha = rho * nd.sum(s * q)
                q -= alpha * y
                alphas.append(alpha)
            q *= nd.sum(state.s[-1] * state.y[-1]) / nd.sum(state.y[-1] * state.y[-1])
            for (s, y, rho), alpha in zip(zip(state.s, state.y, state.rho), reversed(alphas)):
                beta = rho * nd.sum(y * q)
                q += s * (alpha - beta)
            step = q * lr
        weight[:] = weight - step
