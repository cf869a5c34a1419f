"""Where the untiled peak goes: the memory a few VGG layers take for one forward pass and the
gradient to their input, in MXNet (static, dynamic and operator-by-operator graphs) and PyTorch.

Each measurement runs in a fresh process (Linux: it reads /proc): a stack of layers on
64-channel maps at one size (block 1 of VGG19 at that image size), one warm-up pass at 8x8
(threads, kernels), then three iterations of forward and backward with a head gradient of ones;
the process's peak resident memory over those three, minus its resident memory just before
them, counted in feature maps. MXNet runs with glibc's own malloc (NEURAL_STYLE_MALLOC=system), so
that memory freed is memory returned and the peak counts what is live, as PyTorch's does.

    python scripts/layer_memory.py                  # 900x600, the default stacks
    python scripts/layer_memory.py --size 450x300 --stacks c c,r,c,r

A stack is a comma-separated list of c (a 3x3 convolution, padding 1), r (ReLU) and p (2x2
max-pool). The PyTorch column needs .venv-bench (scripts/benchmark.py --setup makes it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS)]

from benchmark import parse_size, rss_mb  # noqa: E402  (the standard library only: torch's environment runs it too)

ROOT = SCRIPTS.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
CHANNELS = 64
ITERATIONS = 3
MXNET_MODES = ("static", "dynamic", "imperative")
DEFAULT_STACKS = ("c", "c,r", "c,r,c,r", "c,r,c,r,p")


def reset_peak() -> None:
    """Start the process's peak resident memory (VmHWM) afresh from its resident memory now, so
    that nothing before the measurement (imports, set-up) can stand as its peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def map_mb(width: int, height: int) -> float:
    return width * height * CHANNELS * 4 / 2**20


def measure_mxnet(mode: str, stack: list[str], width: int, height: int) -> float:
    """Peak minus the resident memory before, in MB, for an MXNet stack run as mode."""
    import neural_style  # noqa: F401  (the package's thread and scratch-space settings)
    from mxnet import autograd, nd
    from mxnet.gluon import nn

    net = nn.HybridSequential()
    for kind in stack:
        net.add({"c": lambda: nn.Conv2D(CHANNELS, 3, padding=1), "r": lambda: nn.Activation("relu"),
                 "p": lambda: nn.MaxPool2D(2, 2)}[kind]())
    net.initialize()
    net.collect_params().setattr("grad_req", "null")
    if mode == "static":
        net.hybridize(static_alloc=True, static_shape=True)
    elif mode == "dynamic":
        net.hybridize()
    warm = nd.random.uniform(shape=(1, CHANNELS, 8, 8))  # threads, kernels: what any size needs once
    warm.attach_grad()
    with autograd.record():
        y = net(warm)
    y.backward(nd.ones_like(y))
    x = nd.random.uniform(shape=(1, CHANNELS, height, width))
    nd.waitall()
    reset_peak()
    before = rss_mb(os.getpid())  # before the input's gradient, which PyTorch's count includes too
    x.attach_grad()
    for _ in range(ITERATIONS):
        with autograd.record():
            y = net(x)
        y.backward(nd.ones_like(y))
        x.grad.wait_to_read()
        del y
    return peak_mb() - before


def measure_torch(stack: list[str], width: int, height: int) -> float:
    """The same for PyTorch (its autograd, ReLUs not in place, as the benchmark's torch row)."""
    import torch
    import torch.nn.functional as F

    weights = [torch.randn(CHANNELS, CHANNELS, 3, 3) * 0.05 if kind == "c" else None for kind in stack]

    def iteration(x: torch.Tensor) -> None:
        y = x
        for kind, w in zip(stack, weights):
            y = F.conv2d(y, w, padding=1) if kind == "c" else F.relu(y) if kind == "r" else F.max_pool2d(y, 2, 2)
        torch.autograd.grad(y, x, torch.ones_like(y))

    iteration(torch.rand(1, CHANNELS, 8, 8, requires_grad=True))  # threads, kernels: what any size needs once
    x = torch.rand(1, CHANNELS, height, width, requires_grad=True)
    reset_peak()
    before = rss_mb(os.getpid())
    for _ in range(ITERATIONS):
        iteration(x)
    return peak_mb() - before


def worker(mode: str, stack: str, width: int, height: int) -> None:
    layers = stack.split(",")
    used = measure_torch(layers, width, height) if mode == "torch" else measure_mxnet(mode, layers, width, height)
    print(json.dumps({"maps": used / map_mb(width, height), "mb": used}))


def run_worker(mode: str, stack: str, width: int, height: int) -> float | None:
    """Maps used by one measurement in a fresh process; None where it could not run."""
    python = str(BENCH_PYTHON) if mode == "torch" else sys.executable
    env = {**os.environ, "NEURAL_STYLE_MALLOC": "system", "PYTHONPATH": str(ROOT)}
    cmd = [python, __file__, "--worker", mode, stack, "--size", f"{width}x{height}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"{mode} {stack}: failed ({done.stderr.strip().splitlines()[-1:] or done.returncode})", file=sys.stderr)
        return None
    return json.loads(lines[-1])["maps"]


def stack_spec(text: str) -> str:
    if any(kind not in ("c", "r", "p") for kind in text.split(",")):
        raise argparse.ArgumentTypeError(f"a stack is c, r and p separated by commas, not {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=(900, 600), metavar="WxH", help="map size (default 900x600)")
    parser.add_argument("--stacks", nargs="+", type=stack_spec, default=list(DEFAULT_STACKS), metavar="STACK",
                        help="layer stacks to measure (default: " + " ".join(DEFAULT_STACKS) + ")")
    parser.add_argument("--no-torch", action="store_true", help="leave the PyTorch column out")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "STACK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    width, height = args.size
    if args.worker:
        worker(args.worker[0], args.worker[1], width, height)
        return 0
    modes = list(MXNET_MODES)
    if not args.no_torch:
        if BENCH_PYTHON.exists():
            modes.append("torch")
        else:
            print(f"no {BENCH_PYTHON}: the PyTorch column is left out (scripts/benchmark.py --setup)", file=sys.stderr)
    print(f"Peak memory of forward + gradient to the input, in {CHANNELS}-channel maps of {width}x{height} "
          f"({map_mb(width, height):.0f} MB each), over the memory before; {ITERATIONS} iterations, "
          "a fresh process each")
    print()
    print("| stack | " + " | ".join(f"MXNet {m}" if m != "torch" else "PyTorch" for m in modes) + " |")
    print("|---|" + "---|" * len(modes))
    for stack in args.stacks:
        cells = [run_worker(mode, stack, width, height) for mode in modes]
        print(f"| {stack} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
