"""Training: optimise the generated image one stage at a time, small to large."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

from . import __version__
from . import optim  # noqa: F401  (registers the 'lbfgs' optimizer with Gluon)
from . import runtime
from .checkpoint import Checkpoint, load_checkpoint, load_trainer_states, save_checkpoint, trainer_states
from .config import Settings, Stage
from .controls import (StyleLike, blend_weights, fingerprint, initial_image, keep_content_chroma, network_images,
                       style_list, style_targets)
from .generated import GeneratedImage, generated_image
from .images import ImageLike, load_image, postprocess, preprocess, save_image
from .losses import compute_loss, gram
from .vgg import VGGFeatures, extract_features, load_vgg


@dataclass
class LoopState:
    """Everything the rest of a stage depends on, between two epochs (what a checkpoint holds)."""

    stage: int
    epoch: int  # epochs of this stage done
    lr: float  # the learning rate of the epoch just done (a due decay is applied before the next)
    gen_img: GeneratedImage
    trainer: gluon.Trainer
    last_good: nd.NDArray
    best: float
    recoveries: int
    previous: Optional[tuple[nd.NDArray, nd.NDArray]]  # (loss, image) of the epoch not yet judged


@dataclass
class Progress:
    """What a callback sees after each epoch; ``losses`` is filled only on report epochs.

    Under transfer() a callback may also call ``image()`` for the image as it stands and
    ``checkpoint(path)`` to write a checkpoint that transfer(..., resume=path) continues from.
    """

    stage: int
    stages: int
    epoch: int
    epochs: int
    lr: float
    elapsed: float
    losses: Optional[dict[str, float]] = None
    event: Optional[str] = None
    state: Optional[LoopState] = field(default=None, repr=False, compare=False)
    run: Optional["Run"] = field(default=None, repr=False, compare=False)

    def image(self) -> np.ndarray:
        """The generated image now, HWC floats in [0, 1], as the result would show it."""
        X = self.state.gen_img.weight.data()
        return self.run.finish(X) if self.run is not None else postprocess(X).asnumpy()

    def checkpoint(self, path: Union[str, os.PathLike]) -> Path:
        """Write a checkpoint of the run as it stands after this epoch (atomically)."""
        if self.run is None:
            raise RuntimeError("checkpoints are written by runs of transfer(), not by train() alone")
        return self.run.checkpoint(path, self.state)


Callback = Callable[[Progress], None]


class StopFlag(Protocol):
    """What ``stop`` is: a threading.Event, or anything whose is_set() says to stop."""

    def is_set(self) -> bool: ...


# A loss above this multiple of the stage's best so far counts as diverging, like NaN or inf.
DIVERGENCE_FACTOR = 100.0

# How MXNet (CPU and GPU) and numpy word a failed allocation, and MXNet's limit on a tensor's size.
OUT_OF_MEMORY = re.compile(r"out of memory|bad_alloc|failed to allocate|cannot allocate memory|larger than 2\^31 elements",
                           re.IGNORECASE)


class PartialWork(BaseException):
    """Mixed into the exceptions that end a run early; they carry the work done so far.

    ``image`` is the stage's last image whose loss was finite (NCHW, preprocessed), where the
    stage had one; transfer() turns it and the finished stages into ``result`` (None when no
    image exists yet), ready to be saved.
    """

    stage: int = 0
    epoch: int = 0
    image: Optional[nd.NDArray] = None
    result: Optional["Result"] = None
    state: Optional[LoopState] = None  # Interrupted: the loop's state, for a checkpoint
    checkpoint: Optional[Path] = None  # Interrupted under transfer(save_to=...): where it was written


class DivergedError(PartialWork, RuntimeError):
    """The loss stayed non-finite although the learning rate was lowered several times."""


class Interrupted(PartialWork, KeyboardInterrupt):
    """Training stopped because ``stop`` was set (the command line sets it on SIGINT/SIGTERM)."""


class OutOfMemory(PartialWork, RuntimeError):
    """A stage did not fit in memory; the message says its size and what to try."""


@dataclass
class Result:
    """The stylised image (HWC, floats in [0, 1]), each stage's image, and the loss history."""

    image: np.ndarray
    stage_images: list[np.ndarray]
    history: list[dict] = field(default_factory=list)
    stage_seconds: list[float] = field(default_factory=list)
    # The settings the run used: every stage's size resolved, the seed of a random start drawn.
    settings: Optional[Settings] = None


def get_context(device: str) -> mx.Context:
    """'cpu', 'gpu' or 'gpu:N' as an MXNet context; a clear error where there is no GPU."""
    if device == "cpu":
        return mx.cpu()
    kind, _, index = device.partition(":")
    if kind != "gpu" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r} (use cpu, gpu or gpu:N)")
    if not mx.runtime.Features().is_enabled("CUDA"):
        raise RuntimeError(
            "this MXNet was built without CUDA, so --device gpu cannot work; install a CUDA build "
            "(e.g. pip install mxnet-cu112==1.9.1 with CUDA 11.2 and cuDNN 8) or use --device cpu"
        )
    n = int(index or 0)
    if n >= mx.context.num_gpus():
        raise RuntimeError(f"GPU {n} does not exist (MXNet sees {mx.context.num_gpus()} GPUs)")
    return mx.gpu(n)


@contextlib.contextmanager
def static_memory(net: VGGFeatures, pixels: int) -> Iterator[None]:
    """Run the network with memory allocated once for its forward and backward pass, not every
    epoch, and freed memory kept for the next epoch up to a size (runtime.keep_freed_memory);
    free the static memory afterwards: the network outlives the run in feature_net's cache."""
    runtime.keep_freed_memory(pixels <= runtime.KEEP_MEMORY_MAX_PIXELS)
    net.hybridize(static_alloc=True, static_shape=True)
    try:
        yield
    finally:
        net.hybridize(False)


def train(
    X: nd.NDArray,
    contents_Y: list[nd.NDArray],
    styles_Y: list[nd.NDArray],
    net: VGGFeatures,
    stage: Stage,
    settings: Settings,
    callback: Optional[Callback] = None,
    stage_index: int = 0,
    stop: Optional[StopFlag] = None,
    *,
    style_grams: Optional[list[nd.NDArray]] = None,
    resume: Optional[Checkpoint] = None,
) -> nd.NDArray:
    """Optimise one stage from initial image X; returns the final image (NCHW, preprocessed).

    Raises Interrupted, with the last good image and the loop's state, at the end of the epoch
    in which stop is set. ``style_grams`` gives the style targets as Gram matrices (e.g. a blend
    of several styles) instead of the features ``styles_Y``. ``resume`` continues from a
    checkpoint taken during this stage: the loop goes on exactly as it would have without the
    interruption.
    """
    ctx = X.context
    gen_img = generated_image(X, ctx)
    styles_Y_gram = [gram(Y) for Y in styles_Y] if style_grams is None else style_grams
    lr = stage.lr
    trainer = gluon.Trainer(gen_img.collect_params(), stage.optimizer, {"learning_rate": lr})
    start = time.perf_counter()
    last_good, previous, recoveries, best = X.copy(), None, 0, float("inf")
    first = 0
    if resume is not None:
        lr, best, recoveries, first = resume.lr, resume.best, resume.recoveries, resume.epoch
        gen_img.weight.set_data(nd.array(resume.image, ctx=ctx))
        last_good = nd.array(resume.last_good, ctx=ctx)
        if resume.previous_image is not None:
            previous = (nd.array([resume.previous_loss], ctx=ctx), nd.array(resume.previous_image, ctx=ctx))
        trainer = gluon.Trainer(gen_img.collect_params(), stage.optimizer, {"learning_rate": lr})
        load_trainer_states(trainer, resume.trainer_states)
        trainer.set_learning_rate(lr)
    with static_memory(net, X.shape[2] * X.shape[3]):
        for i in range(first, stage.epochs):
            # The lecture decays after epoch i - 1 when (i - 1) % lr_decay_epoch == 0 and i - 1 != 0;
            # doing it here, before epoch i, leaves a checkpoint after epoch i - 1 nothing pending.
            if i - 1 > 0 and (i - 1) % stage.lr_decay_epoch == 0:
                lr *= stage.lr_decay
                trainer.set_learning_rate(lr)
            with autograd.record():
                X = gen_img()
                contents_Y_hat, styles_Y_hat = extract_features(net, X, settings.content_layers, settings.style_layers)
                losses = compute_loss(
                    X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                    settings.content_weight, settings.style_weight, settings.tv_weight, settings.style_layer_weights,
                )
            snapshot = X.copy()
            losses[-1].backward()
            trainer.step(1)
            # Check the previous epoch's loss: one epoch stays in flight, memory stays bounded.
            event = None
            if previous is not None:
                value = float(previous[0].asscalar())
                if np.isfinite(value) and value <= DIVERGENCE_FACTOR * best:
                    last_good, best = previous[1], min(best, value)
                else:
                    recoveries += 1
                    if recoveries > settings.max_recoveries:
                        raise _partial(DivergedError(
                            f"the loss diverged again after lowering the learning rate {settings.max_recoveries} "
                            f"times (stage {stage_index + 1}, epoch {i}); try a lower --lr"), stage_index, i, last_good)
                    lr *= 0.1
                    gen_img.weight.set_data(last_good)
                    trainer = gluon.Trainer(gen_img.collect_params(), stage.optimizer, {"learning_rate": lr})
                    event = (f"the loss diverged ({value:.3g}) at epoch {i - 1}; "
                             f"restored the last good image and lowered the learning rate to {lr:g}")
            # After a recovery this epoch's loss belongs to the discarded image: do not judge it.
            previous = (losses[-1], snapshot) if event is None else None
            report = (i % settings.report_every == 0 and i != 0) or i == stage.epochs - 1
            # Between two epochs: all a checkpoint needs (references, no copies).
            state = LoopState(stage_index, i + 1, lr, gen_img, trainer, last_good, best, recoveries, previous)
            if callback is not None:
                values = None
                if report and event is None:
                    values = dict(zip(("content", "style", "tv", "total"), (float(l.asscalar()) for l in losses)))
                callback(Progress(stage_index, len(settings.stages), i, stage.epochs, lr,
                                  time.perf_counter() - start, values, event, state))
            if stop is not None and stop.is_set():
                raise _partial(Interrupted(f"stopped at stage {stage_index + 1}, epoch {i}"), stage_index, i, last_good,
                               state)
        if previous is None or not np.isfinite(previous[0].asscalar()):
            gen_img.weight.set_data(last_good)
        return gen_img.weight.data().copy()


def _partial(error: PartialWork, stage: int, epoch: int, image: Optional[nd.NDArray],
             state: Optional[LoopState] = None) -> PartialWork:
    error.stage, error.epoch, error.image, error.state = stage, epoch, image, state
    return error


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or bool(OUT_OF_MEMORY.search(str(error)))


def next_stage_init(X: nd.NDArray, image_shape: tuple[int, int]) -> nd.NDArray:
    """The previous stage's result resized to the next stage: postprocess, x255, preprocess."""
    return preprocess(postprocess(X) * 255, image_shape, X.context)


_NET_CACHE: dict = {}


def feature_net(settings: Settings, ctx: mx.Context) -> VGGFeatures:
    """The frozen VGG19 for settings' layers and weights, kept for the next run with the same
    ones (loading it takes longer than a small run: repeated stylize() calls, tests)."""
    taps = tuple(settings.content_layers) + tuple(settings.style_layers)
    key = (tuple(sorted(set(taps))), settings.weights, settings.activation_scale, str(ctx), settings.weights_file)
    if key not in _NET_CACHE:
        net = load_vgg(taps, settings.weights, settings.activation_scale, ctx, settings.weights_file)
        _NET_CACHE.clear()  # one network at a time: they are large
        _NET_CACHE[key] = net
    return _NET_CACHE[key]


def effective_settings(settings: Settings, content_img: np.ndarray) -> Settings:
    """settings for this content image: every stage's size made width x height, and a seed drawn
    when the start is random and none was given (so that the result records how to repeat it)."""
    h, w = content_img.shape[:2]
    seed = settings.seed
    if seed is None and settings.init == "random":
        seed = secrets.randbits(32)
    return replace(settings, stages=tuple(st.resolved(w, h) for st in settings.stages), seed=seed)


# Settings that may differ between a run and its resumption: they do not change the image.
RESUME_MAY_CHANGE = ("device", "report_every", "save_every")


def check_resumable(ckpt: Checkpoint, settings: Settings, inputs: dict) -> None:
    """A clear ValueError unless ckpt was written by a run of these settings on these images."""
    now = json.loads(json.dumps(settings.to_dict()))
    keys = (set(now) | set(ckpt.settings)) - set(RESUME_MAY_CHANGE)
    differ = sorted(k for k in keys if now.get(k) != ckpt.settings.get(k))
    if differ:
        raise ValueError(f"the checkpoint was written with other settings ({', '.join(differ)}); "
                         "resume with the settings of the interrupted run")
    if ckpt.inputs != inputs:
        raise ValueError("the checkpoint was written for other content or style images")
    if not 0 <= ckpt.stage < len(settings.stages):
        raise ValueError(f"the checkpoint's stage {ckpt.stage + 1} is not in this schedule")


class Run:
    """The bookkeeping of one transfer() run: the finished stages, the history, snapshots and
    checkpoints (what a checkpoint needs beyond the training loop's own state)."""

    def __init__(self, settings: Settings, content_img: np.ndarray, inputs: dict,
                 callback: Optional[Callback], save_to: Optional[Path]) -> None:
        self.settings, self.content_img, self.inputs = settings, content_img, inputs
        self.callback, self.save_to = callback, save_to
        self.stage_images: list[np.ndarray] = []
        self.history: list[dict] = []
        self.stage_seconds: list[float] = []

    def finish(self, X: nd.NDArray) -> np.ndarray:
        """The network's image as the result: HWC in [0, 1], the content's colours put back in
        luminance mode."""
        img = postprocess(X).asnumpy()
        if self.settings.preserve_colors == "luminance":
            img = keep_content_chroma(img, self.content_img)
        return img

    def attach(self, error: PartialWork, seconds: float) -> PartialWork:
        """Attach the work so far to error: the stage's last good image, else the last finished stage's."""
        if error.image is not None:
            image = self.finish(error.image)
            error.result = Result(image, self.stage_images + [image], self.history, self.stage_seconds + [seconds],
                                  self.settings)
        elif self.stage_images:
            error.result = Result(self.stage_images[-1], list(self.stage_images), self.history,
                                  list(self.stage_seconds), self.settings)
        return error

    def checkpoint(self, path: Union[str, os.PathLike], state: LoopState) -> Path:
        previous = state.previous
        return save_checkpoint(path, Checkpoint(
            version=__version__, settings=json.loads(json.dumps(self.settings.to_dict())), inputs=self.inputs,
            stage=state.stage, epoch=state.epoch, lr=state.lr, best=state.best, recoveries=state.recoveries,
            image=state.gen_img.weight.data().asnumpy(), last_good=state.last_good.asnumpy(),
            trainer_states=trainer_states(state.trainer),
            previous_loss=None if previous is None else float(previous[0].asscalar()),
            previous_image=None if previous is None else previous[1].asnumpy(),
            stage_images=list(self.stage_images), history=list(self.history),
            stage_seconds=list(self.stage_seconds),
        ))

    def record(self, p: Progress) -> None:
        p.run = self
        if p.losses is not None or p.event is not None:
            stage = self.settings.stages[p.stage]
            self.history.append({"stage": p.stage, "width": stage.width, "height": stage.height, "epoch": p.epoch,
                                 "lr": p.lr, "seconds": p.elapsed, **(p.losses or {"event": p.event})})
        every = self.settings.save_every
        if every and (p.epoch + 1) % every == 0:
            from .metadata import image_metadata

            meta = image_metadata(self.settings, extra={"stage": p.stage + 1, "epoch": p.epoch + 1})
            save_image(p.image(), snapshot_path(self.save_to, p.stage, p.epoch + 1), metadata=meta)
            p.checkpoint(checkpoint_path(self.save_to))
        if self.callback is not None:
            self.callback(p)


def snapshot_path(output: Union[str, os.PathLike], stage: int, epoch: int) -> Path:
    """Where --save-every writes stage (0-based) after its epoch-th epoch: OUT_s1_e0100.png."""
    output = Path(output)
    return output.with_name(f"{output.stem}_s{stage + 1}_e{epoch:04d}{output.suffix}")


def checkpoint_path(output: Union[str, os.PathLike]) -> Path:
    """Where a run writing output keeps its checkpoint: OUT.ckpt."""
    return Path(output).with_suffix(".ckpt")


def transfer(
    content: ImageLike,
    style: StyleLike,
    settings: Optional[Settings] = None,
    callback: Optional[Callback] = None,
    stop: Optional[StopFlag] = None,
    *,
    resume: Optional[Union[str, os.PathLike]] = None,
    save_to: Optional[Union[str, os.PathLike]] = None,
) -> Result:
    """Run every stage of settings.stages, each starting from the previous one's result.

    ``style`` is one image or a list of them (blended by settings.style_blend).

    Set ``stop`` (e.g. a threading.Event) to end the run after the current epoch: it raises
    Interrupted. Interrupted, DivergedError and OutOfMemory carry the work done so far in
    their ``result`` (the latest good image, the finished stages, the history), never NaN.

    ``save_to`` is the output path that settings.save_every's snapshots and the checkpoint
    (OUT.ckpt) are named after; an Interrupted run writes that checkpoint too. ``resume`` is a
    checkpoint to continue from (same settings and images as the interrupted run): the result is
    the one the uninterrupted run would have given, bit for bit on the same machine.
    """
    settings = (settings or Settings()).validate()
    ctx = get_context(settings.device)
    content_img = load_image(content, settings.max_pixels)
    style_imgs = [load_image(s, settings.max_pixels) for s in style_list(style)]
    weights = blend_weights(settings, len(style_imgs))
    inputs = {"content": fingerprint(content_img), "styles": [fingerprint(s) for s in style_imgs]}
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if settings.seed is None:
            settings = replace(settings, seed=ckpt.settings.get("seed"))
    settings = effective_settings(settings, content_img).validate()  # sizes known now: check them too
    if ckpt is not None:
        check_resumable(ckpt, settings, inputs)
    if settings.save_every and save_to is None:
        raise ValueError("save_every needs to know where to write: give save_to (the output path)")
    if settings.seed is not None:
        mx.random.seed(settings.seed)
        np.random.seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    net = feature_net(settings, ctx)
    content_net, style_nets = network_images(content_img, style_imgs, settings.preserve_colors)
    run = Run(settings, content_img, inputs, callback, save_to)
    if ckpt is not None:
        run.stage_images, run.history, run.stage_seconds = list(ckpt.stage_images), ckpt.history, ckpt.stage_seconds

    X = None
    for s, stage in enumerate(settings.stages):
        if ckpt is not None and s < ckpt.stage:
            continue
        start = time.perf_counter()
        try:
            content_X = preprocess(content_net, stage.image_shape, ctx)
            contents_Y, _ = extract_features(net, content_X, settings.content_layers, settings.style_layers)
            grams = style_targets(net, style_nets, weights, stage, settings, ctx)
            here = ckpt if ckpt is not None and s == ckpt.stage else None
            if here is not None:
                init = nd.array(here.image, ctx=ctx)
            elif X is None:
                init = initial_image(settings, content_X, stage, rng, ctx)
            else:
                init = next_stage_init(X, stage.image_shape)
            X = train(init, contents_Y, None, net, stage, settings, run.record, s, stop, style_grams=grams, resume=here)
            run.stage_images.append(run.finish(X))
        except PartialWork as e:
            run.attach(e, time.perf_counter() - start)
            if isinstance(e, Interrupted) and e.state is not None and save_to is not None:
                with contextlib.suppress(OSError):  # the image is saved anyway; resume then starts earlier
                    e.checkpoint = run.checkpoint(checkpoint_path(save_to), e.state)
            raise
        except (mx.base.MXNetError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
            advice = ("a smaller --size or fewer stages, or --device cpu if the machine has more memory than the GPU"
                      if ctx.device_type == "gpu" else "a smaller --size or fewer stages, or a GPU (--device gpu)")
            error = _partial(OutOfMemory(
                f"out of memory at stage {s + 1}/{len(settings.stages)} ({stage.width}x{stage.height}) on {ctx}; "
                f"try {advice}"), s, 0, None)
            raise run.attach(error, time.perf_counter() - start) from e
        run.stage_seconds.append(time.perf_counter() - start)
    return Result(run.stage_images[-1], run.stage_images, run.history, run.stage_seconds, settings)
