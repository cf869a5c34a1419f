"""Training: the lecture's loop for one stage, and the seams where everything else attaches.

``train()`` is the lecture's loop, in its order. Its ``Objective`` is the lecture's epoch body:
record, extract_features, compute_loss, backward; another objective computes the same loss and
gradient another way (in tiles: tiles.py). What goes beyond the lecture (the divergence guard,
progress and history, snapshots, checkpoints, resume, the stop flag: hooks.py) is a ``Hook``:
the loop calls each hook once before the first epoch, after every epoch and at the end, and a
hook sees and may change the ``Loop`` (the image, the trainer, the epoch's losses).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import mxnet as mx
from mxnet import autograd, gluon, init, nd

from . import optim  # noqa: F401  (registers the 'lbfgs' optimizer with Gluon)
from .config import Settings, Stage
from .generated import GeneratedImage
from .losses import GRAM, StyleStatistic, compute_loss, stage_loss_weights
from .vgg import FeatureNet, extract_features


def get_inits(X: nd.NDArray, ctx: mx.Context, lr: float, optimizer: str = "sgd",
              optimizer_params: Optional[dict[str, Any]] = None) -> tuple[nd.NDArray, gluon.Trainer]:
    """The generated image, initialised from X, and the Trainer that updates it
    (``optimizer_params``: the optimizer's other arguments, e.g. L-BFGS's history).

    (The lecture's get_inits also took the style features' Gram matrices; here the caller
    passes them in, since controls.style_targets may blend several styles.)
    """
    gen_img = GeneratedImage(X.shape)
    gen_img.initialize(init.Constant(X), ctx=ctx, force_reinit=True)
    trainer = gluon.Trainer(gen_img.collect_params(), optimizer, {"learning_rate": lr, **(optimizer_params or {})})
    return gen_img(), trainer


@dataclass
class Objective:
    """What each epoch minimises, and how its gradient reaches the image: the lecture's lines.

    Called with the image (a parameter's data, its gradient buffer attached), it records the
    features and the losses, back-propagates the total into ``X.grad`` and returns the losses
    by name (compute_loss's). ``styles_Y_gram`` are the style targets (the statistic's, made
    from the style's moments: the lecture's Gram matrices by default).
    """

    net: FeatureNet
    contents_Y: Sequence[nd.NDArray]
    styles_Y_gram: Sequence[Any]
    settings: Settings
    statistic: StyleStatistic = GRAM

    def __post_init__(self) -> None:
        self.weights = stage_loss_weights(self.settings.loss_weights, self.styles_Y_gram, self.statistic,
                                          self.settings.style_layer_norm)  # built once, not every epoch

    def __call__(self, X: nd.NDArray) -> dict[str, nd.NDArray]:
        s = self.settings
        with autograd.record():
            contents_Y_hat, styles_Y_hat = extract_features(self.net, X, s.content_layers, s.style_layers)
            losses = compute_loss(X, contents_Y_hat, styles_Y_hat, self.contents_Y, self.styles_Y_gram,
                                  self.weights, self.statistic)
        losses["total"].backward()
        return losses


@dataclass
class Loop:
    """The loop's state between two epochs, as the hooks see it: the image (the parameter's
    data, changed in place), the trainer, and the epoch just done with its losses (NDArrays,
    not read: reading one waits for the engine). A hook may set ``event`` for the hooks after it,
    or ``values``: the losses read as numbers, or ``shown``: the image to show and save in the
    place of X (hooks.Average's average), while the optimizer steps X."""

    stage: Stage
    index: int  # the stage's position in the schedule
    X: nd.NDArray
    trainer: gluon.Trainer
    epoch: int = -1  # the epoch just done (0-based); -1 before the first
    lr: float = 0.0  # the learning rate that epoch used
    losses: dict[str, nd.NDArray] = field(default_factory=dict)
    event: Optional[str] = None
    values: Optional[dict[str, float]] = None
    shown: Optional[nd.NDArray] = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def image(self) -> nd.NDArray:
        """The image to show and save: ``shown`` where a hook keeps one, else X."""
        return self.X if self.shown is None else self.shown

    def end_epoch(self, epoch: int, losses: dict[str, nd.NDArray]) -> None:
        self.epoch, self.lr, self.losses, self.event, self.values = epoch, self.trainer.learning_rate, losses, None, None


class Hook:
    """Something attached to the loop from outside. ``name`` is its key in a checkpoint: a hook
    with state returns it from ``state()`` (JSON values and numpy arrays) and takes it back in
    ``restore()``."""

    name = ""

    def start(self, loop: Loop) -> None:
        """Before the stage's first epoch."""

    def after_epoch(self, loop: Loop) -> None:
        """After each epoch's step and learning-rate decay."""

    def finish(self, loop: Loop) -> None:
        """After the stage's last epoch."""

    def within_epoch(self, loop: Loop, done: int, total: int) -> None:
        """Between two of the ``total`` steps of an epoch that takes several (a tiled epoch's
        tiles: tiles.TiledObjective), ``done`` of them done; the loop's state is the last epoch's."""

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any], loop: Loop) -> None:
        """Take back what state() gave, after the loop's own state is restored."""


def train(X: nd.NDArray, objective: Objective, stage: Stage, settings: Settings, hooks: Sequence[Hook] = (),
          index: int = 0) -> nd.NDArray:
    """Optimise one stage from initial image X; returns the final image (NCHW, preprocessed).

    The lecture's loop: the objective (record, features, losses, backward), step, the
    learning-rate decay; then the hooks. What the lecture did besides, printing the losses every
    50 epochs and waiting for the engine, hooks do here: hooks.History reads the losses every
    ``report_every`` epochs, and hooks.DivergenceGuard's judge keeps the engine at most one epoch
    ahead.
    """
    X, trainer = get_inits(X, X.context, stage.lr, stage.optimizer, settings.optimizer_params(stage))
    loop = Loop(stage, index, X, trainer)
    for hook in hooks:
        hook.start(loop)
    for i in range(loop.epoch + 1, stage.epochs):
        losses = objective(X)
        trainer.step(1)
        loop.end_epoch(i, losses)
        if i % stage.lr_decay_epoch == 0 and i != 0:
            trainer.set_learning_rate(trainer.learning_rate * stage.lr_decay)
        for hook in hooks:
            hook.after_epoch(loop)
    for hook in hooks:
        hook.finish(loop)
    return X
