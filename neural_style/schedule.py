"""The multi-scale schedule: every stage of the settings, small to large, each starting from the
previous one's result (the lecture's 300x200 then 1200x800), with the hooks attached."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import nd

from . import gpu, runtime
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint, trainer_states
from .config import Settings, Stage
from .controls import (StyleLike, blend_weights, fingerprint, initial_image, keep_content_chroma, network_images,
                       style_list, style_targets)
from .errors import Interrupted, OutOfMemory, PartialWork, drain_engine, free_failed_work, is_out_of_memory
from .hooks import Average, Callback, CallbackHook, DivergenceGuard, History, Resume, Snapshots, Stop, StopFlag
from .images import ImageLike, load_image, postprocess, preprocess, save_image
from .losses import GRAM, StyleStatistic, style_statistic
from .tiles import TiledObjective, Tiling, memory_budget, tile_size_for
from .train import Hook, Loop, Objective, train
from .version import __version__
from .cpu import run_precision
from .vgg import BFloat16Features, FeatureNet, extract_features, load_vgg


@dataclass
class Result:
    """The stylised image (HWC, floats in [0, 1]), each stage's image, and the loss history."""

    image: np.ndarray
    stage_images: list[np.ndarray]
    history: list[dict] = field(default_factory=list)
    stage_seconds: list[float] = field(default_factory=list)
    # The settings the run used: every stage's size resolved, the seed of a random start drawn,
    # the activation scale filled in.
    settings: Optional[Settings] = None


def get_context(device: str) -> mx.Context:
    """'cpu', 'gpu' or 'gpu:N' as an MXNet context; for a GPU, gpu.require_gpu's verdict (no
    driver, a CPU-only MXNet, a GPU MXNet 1.9.1 has no kernels for) before any work."""
    if device == "cpu":
        return mx.cpu()
    kind, _, index = device.partition(":")
    if kind != "gpu" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r} (use cpu, gpu or gpu:N)")
    n = int(index or 0)
    gpu.require_gpu(n, cuda_build=mx.runtime.Features().is_enabled("CUDA"))
    return mx.gpu(n)


@contextlib.contextmanager
def static_memory(net: FeatureNet, pixels: int, tiled: bool = False) -> Iterator[None]:
    """Run the network with memory allocated once for its forward and backward pass, not every
    epoch, and freed memory kept for the next epoch, up to a size (runtime.keep_freed_memory);
    free the static memory afterwards: the network outlives the run in feature_net's cache.

    Above that size an untiled stage allocates call by call instead: static memory holds the
    forward's and the backward's buffers side by side for the whole stage, and with freed memory
    handed back to the kernel anyway it saves no time (1800x1200, 3 runs each: peaks of 8929 MiB
    static and 7357 MiB without, 0.99x the time, docs/BENCHMARKS.md). A tiled stage keeps it: its
    buffers are one tile's, reused by every tile."""
    small = pixels <= runtime.KEEP_MEMORY_MAX_PIXELS
    runtime.keep_freed_memory(small)
    static = small or tiled
    net.hybridize(static_alloc=static, static_shape=static)
    try:
        yield
    finally:
        net.hybridize(False)


@contextlib.contextmanager
def out_of_memory(where: str, fix: str, ctx: mx.Context, stage: int = 0) -> Iterator[None]:
    """An allocation that fails inside (MXNet's or numpy's) as one OutOfMemory: where it happened,
    on which device, and what to try. After any MXNet error the engine is drained first: the work
    it queued behind the failure would raise it again, C++ traceback and all, when Python exits."""
    try:
        yield
    except (mx.base.MXNetError, MemoryError) as e:
        drain_engine()
        if not is_out_of_memory(e):
            raise
        free_failed_work(e)
        other = ("--device cpu if the machine has more memory than the GPU" if ctx.device_type == "gpu"
                 else "a GPU (--device gpu)")
        raise OutOfMemory(f"out of memory {where} on {ctx}; try {fix}, or {other}").at(stage, 0) from e


def next_stage_init(X: nd.NDArray, image_shape: tuple[int, int]) -> nd.NDArray:
    """The previous stage's result resized to the next stage: postprocess, x255, preprocess."""
    return preprocess(postprocess(X) * 255, image_shape, X.context)


_NET_CACHE: dict = {}


def feature_net(settings: Settings, ctx: mx.Context) -> FeatureNet:
    """The frozen VGG19 for settings' layers, weights, pooling, padding and precision (bfloat16:
    vgg.BFloat16Features), kept for the next run with the same ones (loading it takes longer
    than a small run: repeated stylize() calls, tests)."""
    taps = tuple(settings.content_layers) + tuple(settings.style_layers)
    precision = run_precision(settings)
    key = (tuple(sorted(set(taps))), settings.weights_source, settings.k, str(ctx), settings.weights_file, precision,
           settings.pooling, settings.padding)
    if key not in _NET_CACHE:
        _NET_CACHE.clear()  # one network at a time: they are large
        if precision == "bfloat16":
            runtime.allow_amx()  # only now: holding AMX's state slows every float32 run (docs/BENCHMARKS.md)
        net = load_vgg(taps, settings.weights_source, settings.k, ctx, settings.weights_file,
                       pooling=settings.pooling, padding=settings.padding)
        _NET_CACHE[key] = BFloat16Features(net, ctx) if precision == "bfloat16" else net
    return _NET_CACHE[key]


def effective_settings(settings: Settings, content_img: np.ndarray) -> Settings:
    """settings for this content image: every stage's size made width x height, the activation
    scale and the precision (auto decided for this CPU) filled in, the style layers moved where
    style_taps puts them, and a seed drawn when the start is random and none was given (so that
    the result records how to repeat it)."""
    h, w = content_img.shape[:2]
    seed = settings.seed
    if seed is None and settings.init == "random":
        seed = secrets.randbits(32)
    return replace(settings, stages=tuple(st.resolved(w, h) for st in settings.stages), seed=seed,
                   activation_scale=settings.k, precision=run_precision(settings),
                   style_layers=settings.tapped_style_layers)


# Settings a resumed run takes from its checkpoint when they are not given: what the interrupted
# run drew or measured (the seed, the memory limit that decided which stages are tiled).
RESUME_FILLS = ("seed", "max_memory")


def objective_for(net: FeatureNet, content_X: nd.NDArray, style_nets: Sequence[np.ndarray], weights: Sequence[float],
                  stage: Stage, settings: Settings, statistic: StyleStatistic = GRAM,
                  on_tile: Optional[Callable[[int, int], None]] = None) -> Union[Objective, TiledObjective]:
    """A stage's objective with its content and style targets: the lecture's Objective, or, for a
    stage tiles.tile_size_for tiles, a TiledObjective whose targets are computed in tiles too."""
    ctx = content_X.context
    tile = tile_size_for(net, stage, settings)
    if not tile:
        contents_Y, _ = extract_features(net, content_X, settings.content_layers, settings.style_layers)
        styles_Y_gram = style_targets(net, style_nets, weights, stage, settings, ctx, statistic)
        return Objective(net, contents_Y, styles_Y_gram, settings, statistic)
    tiling = Tiling.of(net, tile)
    contents_Y = tiling.features(net, content_X, settings.content_layers)
    styles_Y_gram = style_targets(net, style_nets, weights, stage, settings, ctx, statistic,
                                  lambda X: tiling.moments(net, X, settings.style_layers, statistic))
    return TiledObjective(net, contents_Y, styles_Y_gram, settings, tiling, statistic, on_tile)


# Settings that may differ between a run and its resumption: they do not change the image.
RESUME_MAY_CHANGE = ("device", "report_every", "save_every")


def check_resumable(ckpt: Checkpoint, settings: Settings, inputs: dict) -> None:
    """A clear ValueError unless ckpt was written by a run of these settings on these images (a
    setting newer than the checkpoint counts as its default, which is how that run ran)."""
    now = json.loads(json.dumps(settings.to_dict()))
    then = {**json.loads(json.dumps(Settings().to_dict())), **ckpt.settings}
    keys = (set(now) | set(then)) - set(RESUME_MAY_CHANGE)
    differ = sorted(k for k in keys if now.get(k) != then.get(k))
    if differ:
        raise ValueError(f"the checkpoint was written with other settings ({', '.join(differ)}); "
                         "resume with the settings of the interrupted run")
    if ckpt.inputs != inputs:
        raise ValueError("the checkpoint was written for other content or style images")
    if not 0 <= ckpt.stage < len(settings.stages):
        raise ValueError(f"the checkpoint's stage {ckpt.stage + 1} is not in this schedule")


def snapshot_path(output: Union[str, os.PathLike], stage: int, epoch: int) -> Path:
    """Where --save-every writes stage (0-based) after its epoch-th epoch: OUT_s1_e0100.png."""
    output = Path(output)
    return output.with_name(f"{output.stem}_s{stage + 1}_e{epoch:04d}{output.suffix}")


def checkpoint_path(output: Union[str, os.PathLike]) -> Path:
    """Where a run writing output keeps its checkpoint: OUT.ckpt."""
    return Path(output).with_suffix(".ckpt")


class Run(Hook):
    """The bookkeeping of one transfer() run, itself a hook: the finished stages and their
    seconds, the stage in progress, and checkpoints of all the hooks' state."""

    name = "run"

    def __init__(self, settings: Settings, content_img: np.ndarray, inputs: dict, save_to: Optional[Path]) -> None:
        self.settings, self.content_img, self.inputs, self.save_to = settings, content_img, inputs, save_to
        self.stage_images: list[np.ndarray] = []
        self.stage_seconds: list[float] = []
        self.hooks: Sequence[Hook] = ()
        self.loop: Optional[Loop] = None

    def start(self, loop: Loop) -> None:
        self.loop = loop

    def between_tiles(self, done: int, total: int) -> None:
        """Between two tiles of a tiled epoch: tell every hook (Hook.within_epoch)."""
        for hook in self.hooks:
            hook.within_epoch(self.loop, done, total)

    def state(self) -> dict[str, Any]:
        return {"stage_images": list(self.stage_images), "stage_seconds": list(self.stage_seconds)}

    def restore(self, state: dict[str, Any], loop: Loop) -> None:
        self.stage_images, self.stage_seconds = list(state["stage_images"]), list(state["stage_seconds"])

    def image(self, X: nd.NDArray) -> np.ndarray:
        """The network's image as the result: HWC in [0, 1], the content's colours put back in
        luminance mode."""
        img = postprocess(X).asnumpy()
        if self.settings.preserve_colors == "luminance":
            img = keep_content_chroma(img, self.content_img)
        return img

    def checkpoint(self, path: Union[str, os.PathLike]) -> Path:
        """Write the loop's state and every hook's, as they stand after the latest epoch."""
        loop = self.loop
        return save_checkpoint(path, Checkpoint(
            version=__version__, settings=json.loads(json.dumps(self.settings.to_dict())), inputs=self.inputs,
            stage=loop.index, epoch=loop.epoch + 1, image=loop.X.asnumpy(), trainer_states=trainer_states(loop.trainer),
            hooks={hook.name: hook.state() for hook in self.hooks if hook.name}))

    def snapshot(self, loop: Loop) -> None:
        """--save-every: the image so far (OUT_s1_e0100.png, the settings inside) and the checkpoint."""
        from .metadata import image_metadata

        meta = image_metadata(self.settings, extra={"stage": loop.index + 1, "epoch": loop.epoch + 1})
        save_image(self.image(loop.image), snapshot_path(self.save_to, loop.index, loop.epoch + 1), metadata=meta)
        self.checkpoint(checkpoint_path(self.save_to))

    def result(self, history: list[dict], image: Optional[np.ndarray] = None, seconds: float = 0.0) -> Result:
        """The run's result: the finished stages, and the stage in progress where it has an image."""
        if image is None:
            return Result(self.stage_images[-1], list(self.stage_images), history, list(self.stage_seconds),
                          self.settings)
        return Result(image, self.stage_images + [image], history, self.stage_seconds + [seconds], self.settings)


def transfer(
    content: ImageLike,
    style: StyleLike,
    settings: Optional[Settings] = None,
    callback: Optional[Callback] = None,
    stop: Optional[StopFlag] = None,
    *,
    resume: Optional[Union[str, os.PathLike, Checkpoint]] = None,
    save_to: Optional[Union[str, os.PathLike]] = None,
    hybridize: bool = True,
    hooks: Sequence[Hook] = (),
) -> Result:
    """Run every stage of settings.stages, each starting from the previous one's result.

    ``style`` is one image or a list of them (blended by settings.style_blend).

    Set ``stop`` (e.g. a threading.Event) to end the run after the current epoch: it raises
    Interrupted. Interrupted, DivergedError and OutOfMemory carry the work done so far in
    their ``result`` (the latest good image, the finished stages, the history), never NaN.

    ``save_to`` is the output path that settings.save_every's snapshots and the checkpoint
    (OUT.ckpt) are named after; an Interrupted run writes that checkpoint too. ``resume`` is a
    checkpoint (its path, or one load_checkpoint read) to continue from (same settings and
    images as the interrupted run): the result is
    the one the uninterrupted run would have given, bit for bit on the same machine.
    ``hybridize=False`` runs VGG operator by operator (what a profiler needs to name them).
    ``hooks`` are attached to every stage's loop after the package's own (train.Hook), before
    the stop flag's.
    """
    settings = (settings or Settings()).validate()
    ctx = get_context(settings.device)
    with out_of_memory("loading the images", "smaller images", ctx):
        content_img = load_image(content, settings.max_pixels)
        style_imgs = [load_image(s, settings.max_pixels) for s in style_list(style)]
        content_net, style_nets = network_images(content_img, style_imgs, settings.preserve_colors)
    weights = blend_weights(settings, len(style_imgs))
    inputs = {"content": fingerprint(content_img), "styles": [fingerprint(s) for s in style_imgs]}
    ckpt = None
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        settings = replace(settings, **{key: ckpt.settings.get(key) for key in RESUME_FILLS
                                        if getattr(settings, key) is None})
    if settings.max_memory is None:  # a share of what is available now, which the result records
        settings = replace(settings, max_memory=memory_budget(ctx))
    settings = effective_settings(settings, content_img).validate()  # sizes known now: check them too
    if ckpt is not None:
        check_resumable(ckpt, settings, inputs)
    if settings.save_every and save_to is None:
        raise ValueError("save_every needs to know where to write: give save_to (the output path)")
    if settings.seed is not None:
        mx.random.seed(settings.seed)
        np.random.seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    with out_of_memory("loading VGG19", "closing other programs", ctx):
        net = feature_net(settings, ctx)
    statistic = style_statistic(settings)

    run = Run(settings, content_img, inputs, save_to)
    guard, history = DivergenceGuard(settings.max_recoveries), History(settings.report_every)
    extra = hooks
    hooks = [guard, *([Average(settings.ema)] if settings.ema else []), history, run]
    if settings.save_every:
        hooks.append(Snapshots(settings.save_every, run))
    if callback is not None:
        hooks.append(CallbackHook(callback, run, len(settings.stages)))
    hooks += extra
    if stop is not None:
        hooks.append(Stop(stop, guard))
    run.hooks = hooks

    X = None
    for s, stage in enumerate(settings.stages):
        if ckpt is not None and s < ckpt.stage:
            continue
        start = time.perf_counter()
        where = f"at stage {s + 1}/{len(settings.stages)} ({stage.width}x{stage.height})"
        try:
            with out_of_memory(where, "a smaller --size or fewer stages", ctx, s):
                content_X = preprocess(content_net, stage.image_shape, ctx)
                objective = objective_for(net, content_X, style_nets, weights, stage, settings, statistic,
                                          on_tile=run.between_tiles)
                resumed = ckpt is not None and s == ckpt.stage
                if resumed:
                    X = content_X  # a placeholder of the stage's shape: Resume puts the checkpoint's image back
                elif X is None:
                    X = initial_image(settings, content_X, stage, rng, ctx)
                else:
                    X = next_stage_init(X, stage.image_shape)
                tiled = isinstance(objective, TiledObjective)
                with static_memory(net, stage.width * stage.height, tiled) if hybridize else contextlib.nullcontext():
                    X = train(X, objective, stage, settings, [*hooks, Resume(ckpt, hooks)] if resumed else hooks, s)
                run.stage_images.append(run.image(X))
        except PartialWork as e:
            if e.image is not None:
                e.result = run.result(history.entries, run.image(e.image), time.perf_counter() - start)
            elif run.stage_images:
                e.result = run.result(history.entries)
            if isinstance(e, Interrupted) and save_to is not None and run.loop is not None:
                with contextlib.suppress(OSError):  # the image is saved anyway; resume then starts earlier
                    e.checkpoint = run.checkpoint(checkpoint_path(save_to))
            raise
        run.stage_seconds.append(time.perf_counter() - start)
    return run.result(history.entries)
