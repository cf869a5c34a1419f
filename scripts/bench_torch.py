"""The PyTorch side of scripts/benchmark.py: the same network, weights and losses, on the CPU.

Runs in the benchmark's own environment (.venv-bench: torch and numpy only) and never imports
neural_style: everything it needs comes in the .npz that bench_mxnet.py's prepare mode writes
(the convolution weights with the package's fold and scale, the input shift, the layer kinds,
the tapped layers, the loss weights and the preprocessed images).

Usage (benchmark.py does this): ``python scripts/bench_torch.py MODE '<json spec>'`` with MODE
``check`` (loss and image gradient at the check input) or ``time`` (seconds per iteration). The
time spec's ``channels_last`` stores the image and the weights channels-last (NHWC), and its
``autocast`` runs the network under ``torch.autocast('cpu', dtype=torch.bfloat16)``: oneDNN's
bfloat16 convolutions, AMX where the CPU has it. The taps are cast back to float32 before the
losses, so the Gram matrices and losses stay float32 as in the package's bfloat16 path.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from statistics import median
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

RESULT_PREFIX = "BENCH_JSON "


class Network:
    """VGG19 layers 0..last from the .npz: 3x3 convolutions (padding 1), ReLU, 2x2 max-pools."""

    def __init__(self, data, meta: dict[str, Any], channels_last: bool = False, autocast: bool = False) -> None:
        self.kinds = meta["layer_kinds"]
        self.content_layers = tuple(meta["content_layers"])
        self.style_layers = tuple(meta["style_layers"])
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.params = {i: (torch.from_numpy(np.ascontiguousarray(data[f"w{i}"])).to(memory_format=layout),
                           torch.from_numpy(np.ascontiguousarray(data[f"b{i}"])))
                       for i, kind in enumerate(self.kinds) if kind == "conv"}
        self.shift = torch.from_numpy(np.ascontiguousarray(data["shift"]))
        self.layout, self.autocast = layout, autocast

    def features(self, X: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Outputs at the content and at the style layers (before their ReLU), in list order, float32."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            taps = self._taps(X.contiguous(memory_format=self.layout))
        taps = {i: Y.float() for i, Y in taps.items()}
        return [taps[i] for i in self.content_layers], [taps[i] for i in self.style_layers]

    def _taps(self, X: torch.Tensor) -> dict[int, torch.Tensor]:
        taps = {}
        Y = X - self.shift
        for i, kind in enumerate(self.kinds):
            if kind == "conv":
                Y = F.conv2d(Y, *self.params[i], padding=1)
            elif kind == "relu":
                Y = F.relu(Y)
            elif kind == "pool":
                Y = F.max_pool2d(Y, kernel_size=2, stride=2)
            else:
                raise ValueError(f"unknown layer kind {kind!r} at {i}")
            taps[i] = Y
        return taps


def gram(Y: torch.Tensor) -> torch.Tensor:
    c = Y.shape[1]
    n = Y.numel() // c
    Y = Y.reshape(c, n)
    return Y @ Y.T / (c * n)


def tv(X: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((X[:, :, 1:, :] - X[:, :, :-1, :]).abs().mean() + (X[:, :, :, 1:] - X[:, :, :, :-1]).abs().mean())


def losses(X, contents_hat, styles_hat, contents_Y, styles_gram, weights) -> tuple[torch.Tensor, ...]:
    """Weighted content, style and TV losses and their total, as neural_style.losses computes them."""
    cw, sw, tw = weights
    content = sum(((Y_hat - Y) ** 2).mean() * cw for Y_hat, Y in zip(contents_hat, contents_Y))
    style = sum(((gram(Y_hat) - G) ** 2).mean() * sw for Y_hat, G in zip(styles_hat, styles_gram))
    tv_l = tv(X) * tw
    return content, style, tv_l, content + style + tv_l


def targets(net: Network, content: torch.Tensor, style: torch.Tensor):
    with torch.no_grad():
        contents_Y, _ = net.features(content)
        _, styles_Y = net.features(style)
        return contents_Y, [gram(Y) for Y in styles_Y]


def common() -> dict[str, Any]:
    return {"threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def load(path: str):
    data = np.load(path)
    return data, json.loads(str(data["meta"]))


def mode_check(spec: dict[str, Any]) -> dict[str, Any]:
    data, meta = load(spec["data"])
    net = Network(data, meta)
    w, h = meta["check_size"]
    content, style = (torch.from_numpy(data[f"{k}_{w}x{h}"]) for k in ("content", "style"))
    contents_Y, styles_gram = targets(net, content, style)
    X = torch.from_numpy(data["check_x"]).clone().requires_grad_(True)
    values = losses(X, *net.features(X), contents_Y, styles_gram, meta["weights"])
    values[-1].backward()
    np.savez(spec["out"], grad=X.grad.numpy())
    return {"losses": dict(zip(("content", "style", "tv", "total"), (float(v) for v in values))), **common()}


def mode_time(spec: dict[str, Any]) -> dict[str, Any]:
    """Forward, losses, backward to the image and an SGD step, per iteration (torch is synchronous)."""
    data, meta = load(spec["data"])
    net = Network(data, meta, bool(spec.get("channels_last")), bool(spec.get("autocast")))
    w, h = spec["size"]
    warmup, iters = int(spec["warmup"]), int(spec["iters"])
    content, style = (torch.from_numpy(data[f"{k}_{w}x{h}"]) for k in ("content", "style"))
    contents_Y, styles_gram = targets(net, content, style)
    X = content.clone().requires_grad_(True)
    lr = float(meta["lr"])
    times = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = None
    for i in range(warmup + iters):
        if i == warmup:
            r0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        t = time.perf_counter()
        values = losses(X, *net.features(X), contents_Y, styles_gram, meta["weights"])
        values[-1].backward()
        with torch.no_grad():
            X -= lr * X.grad
        X.grad = None
        times.append(time.perf_counter() - t)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - start
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    timed = times[warmup:]
    return {"seconds_per_iter": median(timed), "iteration_seconds": timed, "cpu_per_wall": cpu / wall,
            "optimizer": "sgd", **common()}


MODES = {"check": mode_check, "time": mode_time}


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in MODES or len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    # All cores, like the package's MXNet default (torch's own default is the physical cores).
    torch.set_num_threads(os.cpu_count() or 1)
    result = MODES[mode](json.loads(sys.argv[2]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
