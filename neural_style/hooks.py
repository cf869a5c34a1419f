"""What attaches to the lecture's loop from outside (train.Hook): the divergence guard, the
history of the losses, the user's callback, snapshots and checkpoints, the stop flag, resume.

transfer() attaches them in this order: guard, the average (with --ema), history, run
(schedule.Run), snapshots, callback, stop, and for a resumed stage, last, the resume. A hook
that holds state names itself (``name``) and can save and restore it, so a checkpoint is the
loop's state plus each hook's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np
from mxnet import nd

from .checkpoint import Checkpoint, load_trainer_states, trainer_states
from .errors import DivergedError, Interrupted
from .train import Hook, Loop

# A loss above this multiple of the stage's best so far counts as diverging, like NaN or inf.
DIVERGENCE_FACTOR = 100.0


class DivergenceGuard(Hook):
    """When the loss becomes NaN, infinite or explodes: restore the last good image, start the
    optimizer afresh at a tenth of the learning rate, and give up after ``max_recoveries``.

    Each epoch's loss is judged one epoch later, so the loop never waits for the epoch it has
    just queued: the engine stays one epoch ahead, and memory bounded.
    """

    name = "guard"

    def __init__(self, max_recoveries: int) -> None:
        self.max_recoveries = max_recoveries

    def start(self, loop: Loop) -> None:
        self.last_good, self.best, self.recoveries = loop.X.copy(), float("inf"), 0
        self.previous: Optional[tuple[nd.NDArray, nd.NDArray]] = None  # (loss, image) of the epoch not yet judged
        self.upcoming = loop.X.copy()  # the image the next epoch evaluates
        self.fresh = trainer_states(loop.trainer)

    def after_epoch(self, loop: Loop) -> None:
        if self.previous is not None:
            value = float(self.previous[0].asscalar())
            if np.isfinite(value) and value <= DIVERGENCE_FACTOR * self.best:
                self.last_good, self.best = self.previous[1], min(self.best, value)
            else:
                self.recover(loop, value)
        # After a recovery this epoch's loss belongs to the discarded image: it is not judged.
        self.previous = (loop.losses["total"], self.upcoming) if loop.event is None else None
        self.upcoming = loop.X.copy()

    def recover(self, loop: Loop, value: float) -> None:
        self.recoveries += 1
        if self.recoveries > self.max_recoveries:
            raise DivergedError(
                f"the loss diverged again after lowering the learning rate {self.max_recoveries} times "
                f"(stage {loop.index + 1}, epoch {loop.epoch}); try a lower --lr").at(loop.index, loop.epoch,
                                                                                      self.last_good)
        lr = loop.trainer.learning_rate * 0.1
        load_trainer_states(loop.trainer, self.fresh)
        loop.trainer.set_learning_rate(lr)
        loop.X[:] = self.last_good
        loop.lr *= 0.1
        loop.event = (f"the loss diverged ({value:.3g}) at epoch {loop.epoch - 1}; "
                      f"restored the last good image and lowered the learning rate to {loop.lr:g}")

    def finish(self, loop: Loop) -> None:
        # The last epoch's loss is judged here; the image after it is kept unless that loss was bad.
        if self.previous is None or not np.isfinite(self.previous[0].asscalar()):
            loop.X[:] = self.last_good

    def state(self) -> dict[str, Any]:
        previous = self.previous
        return {"last_good": self.last_good.asnumpy(), "best": self.best, "recoveries": self.recoveries,
                "previous_loss": None if previous is None else float(previous[0].asscalar()),
                "previous_image": None if previous is None else previous[1].asnumpy()}

    def restore(self, state: dict[str, Any], loop: Loop) -> None:
        ctx = loop.X.context
        self.last_good, self.best, self.recoveries = nd.array(state["last_good"], ctx=ctx), state["best"], state["recoveries"]
        if state["previous_image"] is not None:
            self.previous = (nd.array([state["previous_loss"]], ctx=ctx), nd.array(state["previous_image"], ctx=ctx))
        self.upcoming = loop.X.copy()


def is_report_epoch(loop: Loop, every: int) -> bool:
    """The lecture's every-N-epochs print, and the stage's last epoch."""
    return (loop.epoch % every == 0 and loop.epoch != 0) or loop.epoch == loop.stage.epochs - 1


class History(Hook):
    """Reads the losses every ``report_every`` epochs (into ``loop.values``) and keeps them, with
    the events (a recovery), across all stages: what the log and the plot show."""

    name = "history"

    def __init__(self, report_every: int) -> None:
        self.report_every = report_every
        self.entries: list[dict] = []

    def after_epoch(self, loop: Loop) -> None:
        if loop.event is None and is_report_epoch(loop, self.report_every):
            loop.values = {name: float(loss.asscalar()) for name, loss in loop.losses.items()}
        if loop.values is not None or loop.event is not None:
            self.entries.append({"stage": loop.index, "width": loop.stage.width, "height": loop.stage.height,
                                 "epoch": loop.epoch, "lr": loop.lr, "seconds": time.perf_counter() - loop.started,
                                 **(loop.values or {"event": loop.event})})

    def state(self) -> dict[str, Any]:
        return {"entries": list(self.entries)}

    def restore(self, state: dict[str, Any], loop: Loop) -> None:
        self.entries = list(state["entries"])


class Run(Protocol):
    """What snapshots and the callback need of a transfer() run (schedule.Run)."""

    def image(self, X: nd.NDArray) -> np.ndarray: ...
    def checkpoint(self, path) -> Any: ...
    def snapshot(self, loop: Loop) -> None: ...


@dataclass
class Progress:
    """What a callback sees after each epoch; ``losses`` is filled only on report epochs.

    ``image()`` is the image as it stands, as the result would show it; under transfer(),
    ``checkpoint(path)`` writes a checkpoint that transfer(..., resume=path) continues from.
    """

    stage: int
    stages: int
    epoch: int
    epochs: int
    lr: float  # the epoch's learning rate; after a recovery, the lowered one
    elapsed: float
    losses: Optional[dict[str, float]] = None
    event: Optional[str] = None
    size: tuple[int, int] = (0, 0)  # the stage's (width, height)
    X: Optional[nd.NDArray] = field(default=None, repr=False, compare=False)
    run: Optional[Run] = field(default=None, repr=False, compare=False)

    def image(self) -> np.ndarray:
        """The generated image now, HWC floats in [0, 1]."""
        return self.run.image(self.X)

    def checkpoint(self, path):
        """Write a checkpoint of the run as it stands after this epoch (atomically)."""
        return self.run.checkpoint(path)


Callback = Callable[[Progress], None]


class Snapshots(Hook):
    """Every ``every`` epochs of a stage: the image so far, and a checkpoint (schedule.Run.snapshot)."""

    def __init__(self, every: int, run: Run) -> None:
        self.every, self.run = every, run

    def after_epoch(self, loop: Loop) -> None:
        if (loop.epoch + 1) % self.every == 0:
            self.run.snapshot(loop)


class CallbackHook(Hook):
    """The user's callback, given a Progress after every epoch."""

    def __init__(self, callback: Callback, run: Run, stages: int) -> None:
        self.callback, self.run, self.stages = callback, run, stages

    def after_epoch(self, loop: Loop) -> None:
        self.callback(Progress(loop.index, self.stages, loop.epoch, loop.stage.epochs, loop.lr,
                               time.perf_counter() - loop.started, loop.values, loop.event,
                               (loop.stage.width, loop.stage.height), loop.image, self.run))


class StopFlag(Protocol):
    """What ``stop`` is: a threading.Event, or anything whose is_set() says to stop."""

    def is_set(self) -> bool: ...


class Stop(Hook):
    """Ends the stage with Interrupted once ``flag`` is set, carrying the guard's last good image,
    or the image a hook shows in X's place (the average): after an epoch, or between two tiles of
    a tiled one, whose partial work is dropped (the loop, and so a checkpoint, stand as after the
    last full epoch)."""

    def __init__(self, flag: StopFlag, guard: DivergenceGuard) -> None:
        self.flag, self.guard = flag, guard

    def after_epoch(self, loop: Loop) -> None:
        if self.flag.is_set():
            raise Interrupted(f"stopped at stage {loop.index + 1}, epoch {loop.epoch}").at(
                loop.index, loop.epoch, self.shown(loop))

    def within_epoch(self, loop: Loop, done: int, total: int) -> None:
        if self.flag.is_set():
            raise Interrupted(f"stopped at stage {loop.index + 1} during epoch {loop.epoch + 1}, which is dropped").at(
                loop.index, loop.epoch, self.shown(loop))

    def shown(self, loop: Loop):
        """The image to keep: the one a hook shows in X's place (the average), else the last good one."""
        return self.guard.last_good if loop.shown is None else loop.shown


class Average(Hook):
    """An exponential moving average of the images, shown, saved and carried on in their place
    (Settings.ema): after each epoch average = decay * average + (1 - decay) * X, from the
    stage's starting image; the optimizer keeps stepping X. It smooths the pixel noise the steps
    leave. After a recovery (the guard's event) it starts again from the restored image; at the
    stage's end the average, where finite, becomes X: the stage's result and the next start."""

    name = "average"

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def start(self, loop: Loop) -> None:
        self.average = loop.shown = loop.X.copy()

    def after_epoch(self, loop: Loop) -> None:
        if loop.event is not None:
            self.average[:] = loop.X
        else:
            self.average[:] = self.decay * self.average + (1 - self.decay) * loop.X

    def finish(self, loop: Loop) -> None:
        if np.isfinite(self.average.sum().asscalar()):
            loop.X[:] = self.average

    def state(self) -> dict[str, Any]:
        return {"average": self.average.asnumpy()}

    def restore(self, state: dict[str, Any], loop: Loop) -> None:
        self.average[:] = nd.array(state["average"], ctx=loop.X.context)

    def within_epoch(self, loop: Loop, done: int, total: int) -> None:
        if self.flag.is_set():
            raise Interrupted(f"stopped at stage {loop.index + 1} during epoch {loop.epoch + 1}, which is dropped").at(
                loop.index, loop.epoch, self.guard.last_good)


class OnTile(Hook):
    """Calls ``report(done, total)`` between the tiles of a tiled epoch (the command line's
    progress bar moves within a long epoch)."""

    def __init__(self, report: Callable[[int, int], None]) -> None:
        self.report = report

    def within_epoch(self, loop: Loop, done: int, total: int) -> None:
        self.report(done, total)


class Resume(Hook):
    """Puts a checkpoint's stage back: the image, the optimizer, the epochs done, then each
    hook's state. Attached last, so that it restores after every hook has started."""

    def __init__(self, ckpt: Checkpoint, hooks: Sequence[Hook]) -> None:
        self.ckpt, self.hooks = ckpt, hooks

    def start(self, loop: Loop) -> None:
        loop.X[:] = nd.array(self.ckpt.image, ctx=loop.X.context)
        load_trainer_states(loop.trainer, self.ckpt.trainer_states)
        loop.epoch = self.ckpt.epoch - 1
        for hook in self.hooks:
            if hook.name:
                hook.restore(self.ckpt.hooks[hook.name], loop)
