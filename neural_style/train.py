"""Training: optimise the generated image one stage at a time, small to large."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

from . import optim  # noqa: F401  (registers the 'lbfgs' optimizer with Gluon)
from .config import Settings, Stage
from .generated import generated_image
from .images import ImageLike, load_image, postprocess, preprocess
from .losses import compute_loss, gram
from .vgg import VGGFeatures, extract_features, load_vgg


@dataclass
class Progress:
    """What a callback sees after each epoch; ``losses`` is filled only on report epochs."""

    stage: int
    stages: int
    epoch: int
    epochs: int
    lr: float
    elapsed: float
    losses: Optional[dict[str, float]] = None
    event: Optional[str] = None


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
) -> nd.NDArray:
    """Optimise one stage from initial image X; returns the final image (NCHW, preprocessed).

    Raises Interrupted, with the last good image, at the end of the epoch in which stop is set.
    """
    ctx = X.context
    gen_img = generated_image(X, ctx)
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    lr = stage.lr
    trainer = gluon.Trainer(gen_img.collect_params(), stage.optimizer, {"learning_rate": lr})
    start = time.perf_counter()
    last_good, previous, recoveries, best = X.copy(), None, 0, float("inf")
    for i in range(stage.epochs):
        with autograd.record():
            X = gen_img()
            contents_Y_hat, styles_Y_hat = extract_features(net, X, settings.content_layers, settings.style_layers)
            losses = compute_loss(
                X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                settings.content_weight, settings.style_weight, settings.tv_weight,
            )
        snapshot = X.copy()
        losses[-1].backward()
        trainer.step(1)
        # Check the previous epoch's loss: one epoch stays in flight, memory stays bounded.
        event = None
        if previous is not None:
            value = previous[0].asscalar()
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
        if callback is not None:
            values = None
            if report and event is None:
                values = dict(zip(("content", "style", "tv", "total"), (float(l.asscalar()) for l in losses)))
            callback(Progress(stage_index, len(settings.stages), i, stage.epochs, lr,
                              time.perf_counter() - start, values, event))
        if stop is not None and stop.is_set():
            raise _partial(Interrupted(f"stopped at stage {stage_index + 1}, epoch {i}"), stage_index, i, last_good)
        if i % stage.lr_decay_epoch == 0 and i != 0:
            lr *= stage.lr_decay
            trainer.set_learning_rate(lr)
    if previous is None or not np.isfinite(previous[0].asscalar()):
        gen_img.weight.set_data(last_good)
    return gen_img.weight.data().copy()


def _partial(error: PartialWork, stage: int, epoch: int, image: Optional[nd.NDArray]) -> PartialWork:
    error.stage, error.epoch, error.image = stage, epoch, image
    return error


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or bool(OUT_OF_MEMORY.search(str(error)))


def next_stage_init(X: nd.NDArray, image_shape: tuple[int, int]) -> nd.NDArray:
    """The previous stage's result resized to the next stage: postprocess, x255, preprocess."""
    return preprocess(postprocess(X) * 255, image_shape, X.context)


def transfer(
    content: ImageLike,
    style: ImageLike,
    settings: Optional[Settings] = None,
    callback: Optional[Callback] = None,
    stop: Optional[StopFlag] = None,
) -> Result:
    """Run every stage of settings.stages, each starting from the previous one's result.

    Set ``stop`` (e.g. a threading.Event) to end the run after the current epoch: it raises
    Interrupted. Interrupted, DivergedError and OutOfMemory carry the work done so far in
    their ``result`` (the latest good image, the finished stages, the history), never NaN.
    """
    settings = (settings or Settings()).validate()
    ctx = get_context(settings.device)
    if settings.seed is not None:
        mx.random.seed(settings.seed)
        np.random.seed(settings.seed)
    net = load_vgg(
        tuple(settings.content_layers) + tuple(settings.style_layers), settings.weights,
        settings.activation_scale, ctx, settings.weights_file,
    )
    content_img, style_img = load_image(content, settings.max_pixels), load_image(style, settings.max_pixels)
    history: list[dict] = []

    def record(p: Progress) -> None:
        if p.losses is not None or p.event is not None:
            stage = settings.stages[p.stage]
            history.append({"stage": p.stage, "width": stage.width, "height": stage.height, "epoch": p.epoch,
                            "lr": p.lr, "seconds": p.elapsed, **(p.losses or {"event": p.event})})
        if callback is not None:
            callback(p)

    X = None
    stage_images, stage_seconds = [], []
    for s, stage in enumerate(settings.stages):
        start = time.perf_counter()
        try:
            content_X = preprocess(content_img, stage.image_shape, ctx)
            contents_Y, _ = extract_features(net, content_X, settings.content_layers, settings.style_layers)
            _, styles_Y = extract_features(net, preprocess(style_img, stage.image_shape, ctx),
                                           settings.content_layers, settings.style_layers)
            init = content_X if X is None else next_stage_init(X, stage.image_shape)
            X = train(init, contents_Y, styles_Y, net, stage, settings, record, s, stop)
            stage_images.append(postprocess(X).asnumpy())
        except PartialWork as e:
            _with_result(e, stage_images, history, stage_seconds, time.perf_counter() - start)
            raise
        except (mx.base.MXNetError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
            advice = ("a smaller --size or fewer stages, or --device cpu if the machine has more memory than the GPU"
                      if ctx.device_type == "gpu" else "a smaller --size or fewer stages, or a GPU (--device gpu)")
            error = _partial(OutOfMemory(
                f"out of memory at stage {s + 1}/{len(settings.stages)} ({stage.width}x{stage.height}) on {ctx}; "
                f"try {advice}"), s, 0, None)
            raise _with_result(error, stage_images, history, stage_seconds, time.perf_counter() - start) from e
        stage_seconds.append(time.perf_counter() - start)
    return Result(stage_images[-1], stage_images, history, stage_seconds)


def _with_result(error: PartialWork, stage_images: list, history: list, stage_seconds: list, seconds: float) -> PartialWork:
    """Attach the work so far to error: the stage's last good image, else the last finished stage's."""
    if error.image is not None:
        image = postprocess(error.image).asnumpy()
        error.result = Result(image, stage_images + [image], history, stage_seconds + [seconds])
    elif stage_images:
        error.result = Result(stage_images[-1], list(stage_images), history, list(stage_seconds))
    return error
