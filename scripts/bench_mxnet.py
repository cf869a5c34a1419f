"""The MXNet side of scripts/benchmark.py: one measurement per process, one JSON line out.

Usage (benchmark.py does this): ``python scripts/bench_mxnet.py MODE '<json spec>'``. Modes:

  sgemm           numpy float32 matmul rate (no MXNet)
  prepare         the inputs every path shares, written to one .npz: VGG19 weights with the
                  package's fold and scale, the preprocessed images at each size, a check input
  check           loss and image gradient on the check input, package network and lecture's
  lecture         seconds per iteration of the lecture's literal loop
  default         seconds per iteration of neural_style.transfer() with the default settings
                  (the spec's ``precision``, if given, in place of the default one)
  info            versions, MXNet's features, the package's default first stage
  lecture-pair    whether the lecture's images are in SHARED_LECTURE
  quality-lecture the lecture's SGD schedule in the lecture's loop: final loss and time
  quality-train   one optimizer through transfer() until the loss reaches a target
  memory          RSS after every epoch, each epoch's peak and the process's, for one stage

Thread counts: MXNet sizes its OpenMP pool when it is first imported: half the cores unless
OMP_NUM_THREADS is set, in which case that. neural_style sets OMP_NUM_THREADS to the core count
on import. benchmark.py starts every worker without the variable, so the modes that import
neural_style first get the package's setting, and the lecture modes, which import mxnet before
anything from neural_style, get MXNet's own default, as the lecture did. Likewise they keep
glibc's malloc as it is (NEURAL_STYLE_MALLOC=system), where the package tunes it on import.
"""
from __future__ import annotations

import os
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
LECTURE_MODES = ("lecture", "quality-lecture")

if MODE in LECTURE_MODES:
    # Must stay the first import of mxnet in this process (see the module docstring).
    import mxnet  # noqa: F401

    _OMP_SET_BEFORE = "OMP_NUM_THREADS" in os.environ
    os.environ["NEURAL_STYLE_MALLOC"] = "system"  # the lecture ran with glibc's defaults

import ctypes  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from statistics import median  # noqa: E402
from typing import Any, Optional  # noqa: E402

import numpy as np  # noqa: E402

if MODE != "sgemm":
    import neural_style  # noqa: E402

    if MODE in LECTURE_MODES and not _OMP_SET_BEFORE:
        # neural_style just set it; MXNet has already read its default, so only tidy up.
        os.environ.pop("OMP_NUM_THREADS", None)
    import mxnet as mx  # noqa: E402
    from mxnet import autograd, gluon, init, nd  # noqa: E402
    from mxnet.gluon import nn  # noqa: E402
    from mxnet.gluon.model_zoo import vision  # noqa: E402

    from neural_style import LECTURE_STAGES, Settings, Stage, transfer  # noqa: E402
    from neural_style.generated import GeneratedImage  # noqa: E402
    from neural_style.images import load_image, preprocess  # noqa: E402
    from neural_style.lecture_data import LECTURE_IMAGES, SHARED_LECTURE, lecture_pair, md5  # noqa: E402
    from neural_style.config import LossWeights  # noqa: E402
    from neural_style.cpu import cpu_info, has_fast_bfloat16  # noqa: E402
    from neural_style.losses import Gram, compute_loss, gram  # noqa: E402
    from neural_style.vgg import (CONV_INDICES, extract_features, fold_caffe_preprocessing,  # noqa: E402
                                  load_vgg, scale_activations)
    from neural_style.weights import load_caffe_vgg19  # noqa: E402

    if MODE in LECTURE_MODES:
        def gram(X):
            """The lecture's own Gram matrix, nd.dot with a transpose (the package uses an inner product)."""
            num_channels, n = X.shape[1], X.size // X.shape[1]
            X = X.reshape((num_channels, n))
            return nd.dot(X, X.T) / (num_channels * n)

RESULT_PREFIX = "BENCH_JSON "


def emit(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """This process's maximum resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def omp_threads() -> Optional[int]:
    """OpenMP's thread count for this (the main) thread, where MXNet set it on import."""
    try:
        return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    except (OSError, AttributeError):
        return None


def common() -> dict[str, Any]:
    return {"threads": omp_threads(), "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
            "package": os.path.dirname(os.path.abspath(neural_style.__file__)), "mxnet": mx.__version__}


def loss_weights(settings: "Settings") -> tuple[float, float, float]:
    return settings.content_weight, settings.style_weight, settings.tv_weight


# ---------------------------------------------------------------------------------------------


def mode_sgemm(spec: dict[str, Any]) -> dict[str, Any]:
    n, repeats = int(spec["n"]), int(spec["repeats"])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2 * n**3 / best / 1e9, "seconds": best, "n": n, "repeats": repeats, "numpy": np.__version__}


def speed_pair() -> tuple[np.ndarray, np.ndarray, str]:
    """The lecture's images where they are, else the embedded demo pair (uint8 RGB arrays)."""
    content, style, source = lecture_pair()
    if source == str(SHARED_LECTURE):
        source = "the lecture's pair (" + ", ".join(name for name, _, _ in LECTURE_IMAGES.values()) + ")"
    return load_image(content), load_image(style), source


def layer_kind(layer) -> str:
    name = type(layer).__name__
    return {"Conv2D": "conv", "Activation": "relu", "MaxPool2D": "pool"}.get(name, name)


def package_weights(settings: "Settings") -> dict[str, np.ndarray]:
    """VGG19's convolutions up to the last tapped layer as the package prepares them (Caffe
    weights, preprocessing folded into conv1_1, activations scaled by k), as w<i>/b<i> by
    feature index, and the input shift subtracted before conv1_1."""
    last = max(settings.content_layers + settings.style_layers)
    convs = load_caffe_vgg19(settings.weights_file)
    folded, shift = fold_caffe_preprocessing(convs[0][0])
    convs[0] = (folded, convs[0][1])
    arrays = {"shift": shift.reshape(1, 3, 1, 1)}
    for i, (w, b) in zip(CONV_INDICES, scale_activations(convs, settings.k)):
        if i <= last:
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    return arrays


def mode_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Everything the paths share: weights as the package prepares them, and the inputs."""
    settings = Settings()
    if settings.weights_source != "caffe":
        raise SystemExit(f"the benchmark knows only the caffe weights, the default is {settings.weights_source!r}")
    last = max(settings.content_layers + settings.style_layers)
    arrays = package_weights(settings)
    kinds = [layer_kind(layer) for layer in list(vision.vgg19().features)[: last + 1]]
    content, style, source = speed_pair()
    arrays["content_image"], arrays["style_image"] = content, style
    for w, h in [tuple(s) for s in spec["sizes"]] + [tuple(spec["check_size"])]:
        arrays[f"content_{w}x{h}"] = preprocess(content, (w, h)).asnumpy()
        arrays[f"style_{w}x{h}"] = preprocess(style, (w, h)).asnumpy()
    cw, ch = spec["check_size"]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(arrays[f"content_{cw}x{ch}"].shape).astype(np.float32)
    arrays["check_x"] = arrays[f"content_{cw}x{ch}"] + 0.5 * noise
    meta = {
        "layer_kinds": kinds, "content_layers": list(settings.content_layers),
        "style_layers": list(settings.style_layers), "weights": list(loss_weights(settings)),
        "lr": LECTURE_STAGES[0].lr, "check_size": list(spec["check_size"]), "pair": source,
        "scale": settings.k,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(spec["out"], **arrays)
    return {"layer_kinds": kinds, "pair": source, **common()}


def load_data(path: str) -> tuple[Any, dict[str, Any]]:
    data = np.load(path)
    return data, json.loads(str(data["meta"]))


def lecture_network(data, last: int):
    """VGG19 layers 0..last as the lecture builds its net: a plain nn.Sequential of the model-zoo
    layers, parameters left as Gluon creates them (grad_req='write'), never hybridized.
    The weights are the package's (the Caffe VGG19 with the preprocessing folded in); their
    constant part, the input shift, is returned to be subtracted before the first layer."""
    features = vision.vgg19().features
    net = nn.Sequential()
    for i in range(last + 1):
        net.add(features[i])
    convs = [i for i in CONV_INDICES if i <= last]
    for i in convs:
        features[i].weight.shape = data[f"w{i}"].shape
    net.initialize(ctx=mx.cpu())
    for i in convs:
        features[i].weight.set_data(nd.array(data[f"w{i}"]))
        features[i].bias.set_data(nd.array(data[f"b{i}"]))
    return net, nd.array(data["shift"])


def lecture_features(net, shift, X, content_layers, style_layers):
    """The lecture's extract_features: layer by layer, keeping the outputs at the tapped indices."""
    contents, styles = [], []
    Y = nd.broadcast_sub(X, shift)
    for i in range(len(net)):
        Y = net[i](Y)
        if i in style_layers:
            styles.append(Y)
        if i in content_layers:
            contents.append(Y)
    return contents, styles


def loss_dict(losses) -> dict[str, float]:
    return {name: float(loss.asscalar()) for name, loss in losses.items()}


def mode_check(spec: dict[str, Any]) -> dict[str, Any]:
    """Loss and image gradient at the check input, through the package's and the lecture's network."""
    data, meta = load_data(spec["data"])
    settings = Settings()
    cl, sl = tuple(meta["content_layers"]), tuple(meta["style_layers"])
    w, h = meta["check_size"]
    content, style, x = (nd.array(data[k]) for k in (f"content_{w}x{h}", f"style_{w}x{h}", "check_x"))
    out, grads = {"size": f"{w}x{h}"}, {}

    def run(name, features):
        contents_Y, _ = features(content)
        _, styles_Y = features(style)
        X = x.copy()
        X.attach_grad()
        with autograd.record():
            c_hat, s_hat = features(X)
            losses = compute_loss(X, c_hat, s_hat, contents_Y, [gram(Y) for Y in styles_Y],
                                  LossWeights(*meta["weights"]), Gram(gram))
        losses["total"].backward()
        out[name] = loss_dict(losses)
        grads[name] = X.grad.asnumpy()

    net = load_vgg(cl + sl, settings.weights_source, settings.k, mx.cpu(), settings.weights_file)
    run("default", lambda X: extract_features(net, X, cl, sl))
    lnet, shift = lecture_network(data, max(cl + sl))
    run("lecture", lambda X: lecture_features(lnet, shift, X, cl, sl))
    np.savez(spec["out"], **grads)
    return {**out, **common()}


def lecture_loop(content_X, style_X, data, meta, epochs: int, lr: float, lr_decay_epoch: int,
                 report_every: int = 50) -> dict[str, Any]:
    """The lecture's training loop, literally: record, extract features, losses, backward,
    trainer.step(1), nd.waitall(); lr x0.1 every lr_decay_epoch epochs. Times every epoch."""
    cl, sl = tuple(meta["content_layers"]), tuple(meta["style_layers"])
    net, shift = lecture_network(data, max(cl + sl))
    contents_Y, _ = lecture_features(net, shift, content_X, cl, sl)
    _, styles_Y = lecture_features(net, shift, style_X, cl, sl)
    gen_img = GeneratedImage(content_X.shape)
    gen_img.initialize(init.Constant(content_X), ctx=mx.cpu())
    trainer = gluon.Trainer(gen_img.collect_params(), "sgd", {"learning_rate": lr})
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    X = gen_img()
    nd.waitall()
    times, reported = [], {}
    cpu0, start = cpu_seconds(), time.perf_counter()
    for i in range(epochs):
        t = time.perf_counter()
        with autograd.record():
            contents_Y_hat, styles_Y_hat = lecture_features(net, shift, X, cl, sl)
            losses = compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                                  LossWeights(*meta["weights"]), Gram(gram))
        losses["total"].backward()
        trainer.step(1)
        nd.waitall()
        times.append(time.perf_counter() - t)
        if (i % report_every == 0 and i != 0) or i == epochs - 1:
            reported[i] = loss_dict(losses)
        if i % lr_decay_epoch == 0 and i != 0:
            trainer.set_learning_rate(trainer.learning_rate * 0.1)
    seconds = time.perf_counter() - start
    return {"times": times, "seconds": seconds, "cpu_per_wall": (cpu_seconds() - cpu0) / seconds,
            "losses": reported, "final": reported[epochs - 1], "epochs": epochs}


def mode_lecture(spec: dict[str, Any]) -> dict[str, Any]:
    data, meta = load_data(spec["data"])
    w, h = spec["size"]
    warmup, iters = int(spec["warmup"]), int(spec["iters"])
    content_X, style_X = nd.array(data[f"content_{w}x{h}"]), nd.array(data[f"style_{w}x{h}"])
    # lr stays constant here (no decay within warm-up + timed iterations): only time matters.
    r = lecture_loop(content_X, style_X, data, meta, warmup + iters, meta["lr"], 10**9)
    timed = r["times"][warmup:]
    return {"seconds_per_iter": median(timed), "iteration_seconds": timed, "cpu_per_wall": r["cpu_per_wall"],
            "peak_rss_mb": peak_rss_mb(), "optimizer": "sgd", **common()}


def mode_default(spec: dict[str, Any]) -> dict[str, Any]:
    """transfer() with the default settings and the default first stage at this size, timed
    from its progress callback (called once per epoch, elapsed since the stage's loop began)."""
    data, _ = load_data(spec["data"])
    w, h = spec["size"]
    warmup, iters = int(spec["warmup"]), int(spec["iters"])
    base = Settings()
    stage = replace(base.stages[0], width=w, height=h, epochs=warmup + iters)
    settings = replace(base, stages=(stage,), precision=spec.get("precision", base.precision))
    marks: list[tuple[int, float, float, float]] = []

    def callback(p) -> None:
        marks.append((p.epoch, p.elapsed, time.perf_counter(), cpu_seconds()))

    result = transfer(data["content_image"], data["style_image"], settings, callback)
    nd.waitall()
    end, cpu_end = time.perf_counter(), cpu_seconds()
    out = {"optimizer": stage.optimizer, "lr": stage.lr, "precision": result.settings.precision}
    epochs = [m[0] for m in marks]
    if epochs != list(range(warmup + iters)):
        raise SystemExit(f"the progress callback came at epochs {epochs}, expected every epoch once")
    elapsed = [m[1] for m in marks]
    per_epoch = [b - a for a, b in zip(elapsed[warmup - 1:], elapsed[warmup:])]
    s = median(per_epoch)
    # The loop may keep work in flight when it calls back (train() keeps one epoch). Then the
    # time between callbacks is still the time per epoch, and what is in flight drains after the
    # last callback, before transfer() returns its image. A drain of much more than an epoch
    # would mean work queues up and the callback times undercount it.
    drain = end - marks[-1][2]
    if drain > 1.5 * s + 0.05:
        out["note"] = (f"{drain:.3f} s passed between the last callback and the end of transfer(), more than "
                       f"an epoch ({s:.3f} s): work queued between callbacks? the timed window's mean is "
                       f"{(end - marks[warmup - 1][2]) / iters:.3f} s per epoch")
    out.update({"seconds_per_iter": s, "iteration_seconds": per_epoch, "drain_seconds": drain,
                "window_seconds_per_iter": (end - marks[warmup - 1][2]) / iters,
                "cpu_per_wall": (cpu_end - marks[warmup - 1][3]) / (end - marks[warmup - 1][2]),
                "peak_rss_mb": peak_rss_mb(), **common()})
    return out


def lecture_files() -> tuple[Optional[list], str]:
    paths = [SHARED_LECTURE / name for name, _, _ in LECTURE_IMAGES.values()]
    for p, (_, _, digest) in zip(paths, LECTURE_IMAGES.values()):
        if not p.is_file():
            return None, f"the lecture's images are not in {SHARED_LECTURE} ({p.name} is missing)"
        if md5(p) != digest:
            return None, f"{p} is not the lecture's file (md5 differs)"
    return paths, ""


def mode_lecture_pair(spec: dict[str, Any]) -> dict[str, Any]:
    paths, reason = lecture_files()
    return {"found": paths is not None, "reason": reason}


def mode_info(spec: dict[str, Any]) -> dict[str, Any]:
    s, lecture = Settings().stages[0], LECTURE_STAGES[0]
    same = replace(s, width=lecture.width, height=lecture.height, epochs=lecture.epochs) == lecture
    features = mx.runtime.Features()
    return {"numpy": np.__version__, "mkldnn": features.is_enabled("MKLDNN"),
            "cpu_features": cpu_info()["features"], "fast_bfloat16": has_fast_bfloat16(cpu_info()["features"]),
            "default_precision": Settings().precision,
            "onednn_max_isa": os.environ.get("DNNL_MAX_CPU_ISA"),
            "default_stage": {"optimizer": s.optimizer, "lr": s.lr, "lr_decay_epoch": s.lr_decay_epoch,
                              "lr_decay": s.lr_decay, "epochs": s.epochs, "size": [s.width, s.height],
                              "is_lecture_schedule": same}, **common()}


def mode_quality_lecture(spec: dict[str, Any]) -> dict[str, Any]:
    paths, reason = lecture_files()
    if paths is None:
        raise SystemExit(reason)
    size = tuple(spec["size"])
    settings = Settings()
    data = package_weights(settings)
    meta = {"content_layers": list(settings.content_layers), "style_layers": list(settings.style_layers),
            "weights": list(loss_weights(settings))}
    content_X = preprocess(load_image(paths[0]), size)
    style_X = preprocess(load_image(paths[1]), size)
    r = lecture_loop(content_X, style_X, data, meta, int(spec["epochs"]), float(spec["lr"]),
                     int(spec["lr_decay_epoch"]))
    return {"final": r["final"], "seconds": r["seconds"], "epochs": r["epochs"],
            "losses": {str(k): v for k, v in r["losses"].items()}, "peak_rss_mb": peak_rss_mb(), **common()}


class _Reached(Exception):
    pass


def mode_quality_train(spec: dict[str, Any]) -> dict[str, Any]:
    """One stage through transfer(), losses every epoch, until the total is at most the target."""
    paths, reason = lecture_files()
    if paths is None:
        raise SystemExit(reason)
    st = spec["stage"]
    w, h = spec["size"]
    stage = Stage(w, h, st["optimizer"], float(st["lr"]), int(st["epochs"]), int(st["lr_decay_epoch"]),
                  float(st.get("lr_decay", 0.1)))
    settings = replace(Settings(), stages=(stage,), report_every=1)
    target, stop = float(spec["target"]), bool(spec["stop"])
    state = {"reached_epoch": None, "seconds": None, "best_total": float("inf"), "last_total": None,
             "epochs_run": 0, "elapsed": 0.0, "events": []}

    def callback(p) -> None:
        state["epochs_run"], state["elapsed"] = p.epoch + 1, p.elapsed
        if p.event:
            state["events"].append(p.event)
        if p.losses is None:
            return
        total = p.losses["total"]
        state["last_total"] = total
        state["best_total"] = min(state["best_total"], total)
        if total <= target and state["reached_epoch"] is None:
            state["reached_epoch"], state["seconds"] = p.epoch, p.elapsed
            if stop:
                raise _Reached

    error = None
    try:
        transfer(paths[0], paths[1], settings, callback)
    except _Reached:
        pass
    except Exception as e:  # a diverging optimizer is a result here, not a crash
        error = f"{type(e).__name__}: {e}"
    reached = state["reached_epoch"] is not None
    return {"reached": reached, "reached_epoch": state["reached_epoch"], "seconds": state["seconds"],
            "elapsed": state["elapsed"], "epochs_run": state["epochs_run"],
            "best_total": state["best_total"], "final_total": state["last_total"], "events": state["events"],
            "error": error, "peak_rss_mb": peak_rss_mb(), **common()}


class PeakSampler:
    """Reads this process's RSS every few milliseconds in a thread; take() returns the highest
    reading since the last take(). The callback's own reading lands wherever the next epoch,
    already queued, happens to be; the per-epoch peak does not depend on that timing."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            value = rss_mb()
            with self._lock:
                self.peak = max(self.peak, value)

    def take(self) -> float:
        with self._lock:
            value, self.peak = max(self.peak, rss_mb()), 0.0
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def mode_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """One default-path stage: RSS after each epoch's callback, each epoch's peak RSS, the
    process's peak, seconds per epoch."""
    w, h = spec["size"]
    epochs = int(spec["epochs"])
    content, style, source = speed_pair()
    base = Settings()
    settings = replace(base, stages=(replace(base.stages[0], width=w, height=h, epochs=epochs),))
    rss, peaks, elapsed = [], [], []
    sampler = PeakSampler()

    def callback(p) -> None:
        rss.append(rss_mb())
        peaks.append(sampler.take())
        elapsed.append(p.elapsed)

    out: dict[str, Any] = {"pair": source}
    try:
        transfer(content, style, settings, callback)
        nd.waitall()
        out["completed"] = True
    except (MemoryError, mx.base.MXNetError) as e:
        out.update(completed=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        sampler.close()
    steps = [b - a for a, b in zip([0.0] + elapsed[:-1], elapsed)]
    out.update({"rss_after_epoch_mb": rss, "epoch_peak_rss_mb": peaks,
                "seconds_per_epoch": median(steps[1:] or steps) if steps else None,
                "peak_rss_mb": peak_rss_mb(), **common()})
    return out


MODES = {
    "sgemm": mode_sgemm, "prepare": mode_prepare, "check": mode_check, "lecture": mode_lecture,
    "default": mode_default, "lecture-pair": mode_lecture_pair, "info": mode_info,
    "quality-lecture": mode_quality_lecture, "quality-train": mode_quality_train, "memory": mode_memory,
}


def main() -> int:
    if MODE not in MODES or len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    result = MODES[MODE](json.loads(sys.argv[2]))
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
