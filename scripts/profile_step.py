"""Where an epoch's time goes: MXNet's operator profile of the default path at one size.

Runs a few epochs of neural_style.transfer() under MXNet's profiler and prints its aggregate
table (operators sorted by total time), the share of the convolutions (forward and backward)
in the operator time, and then each convolution layer's median time forward and backward with
the GFLOP/s it reached, against this machine's sgemm rate. For docs/BENCHMARKS.md: why the
GFLOP/s are what they are.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path
from statistics import median

import neural_style  # first: it sets OMP_NUM_THREADS before MXNet starts
import mxnet as mx
from skimage import data

from bench_mxnet import mode_sgemm
from benchmark import conv_flops
from neural_style import Settings, Stage, transfer
from neural_style.config import parse_size

FORWARD, BACKWARD = "Convolution", "_backward_Convolution"


def operator_spans(trace: Path, names: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    """(start, duration) in microseconds of every event of the named operators in a Chrome trace,
    in time order."""
    spans: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    begun: dict[tuple, float] = {}
    for e in json.loads(trace.read_text())["traceEvents"]:
        name = e.get("name")
        if name not in spans:
            continue
        if e.get("ph") == "X":
            spans[name].append((e["ts"], e["dur"]))
        elif e.get("ph") == "B":
            begun[(name, e.get("pid"), e.get("tid"))] = e["ts"]
        elif e.get("ph") == "E":
            start = begun.pop((name, e.get("pid"), e.get("tid")), None)
            if start is not None:
                spans[name].append((start, e["ts"] - start))
    return {n: sorted(v) for n, v in spans.items()}


def per_layer(spans: list[tuple[float, float]], layers: int, reverse: bool) -> list[float]:
    """Median seconds per layer: a pass runs the layers in order (the backward pass in reverse),
    one pass after another, so the k-th event of each pass belongs to the same layer. Counted
    from the end, since a content-target pass at the start may stop before the last layer."""
    spans = spans[len(spans) % layers:]
    passes = [spans[i:i + layers] for i in range(0, len(spans), layers)]
    medians = [median(p[k][1] for p in passes) / 1e6 for k in range(layers)]
    return medians[::-1] if reverse else medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=(450, 300), metavar="WxH")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    # Imperative (hybridize=False), so that the profile names every operator of the backward
    # pass (a hybridized network's backward shows as one block); the convolutions run the same
    # oneDNN kernels.
    settings = Settings(stages=(Stage(*args.size, "sgd", 1.0, args.epochs, 1000),))
    content, style = data.chelsea(), data.immunohistochemistry()
    transfer(content, style, Settings(stages=(Stage(*args.size, "sgd", 1.0, 1, 1000),)), hybridize=False)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "profile.json"
        mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=str(trace))
        mx.profiler.set_state("run")
        transfer(content, style, settings, hybridize=False)
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        mx.profiler.dump()
        table = mx.profiler.dumps(reset=True, format="table", sort_by="total", ascending=False)
        spans = operator_spans(trace, (FORWARD, BACKWARD))
    print(table)
    totals: dict[str, float] = {}
    for line in table.splitlines():
        m = re.match(r"\s*(\S+)\s+\d+\s+([\d.]+)\s", line)
        if m and not line.strip().startswith(("Name", "-")):
            totals[m.group(1)] = totals.get(m.group(1), 0.0) + float(m.group(2))
    ops = sum(v for k, v in totals.items() if not k.startswith(("Memory", "[")))
    conv = sum(v for k, v in totals.items() if "onvolution" in k)
    print(f"convolution forward+backward: {conv / 1000:.1f} s of {ops / 1000:.1f} s operator time "
          f"({100 * conv / max(ops, 1e-9):.0f}%) over {args.epochs} epochs at {args.size[0]}x{args.size[1]}")

    layers = conv_flops(*args.size)
    forward = per_layer(spans[FORWARD], len(layers), reverse=False)
    backward = per_layer(spans[BACKWARD], len(layers), reverse=True)
    sgemm = mode_sgemm({"n": 2048, "repeats": 7})["gflops"]
    print(f"\nEach convolution, median over the passes profiled ({len(spans[FORWARD])} forward and "
          f"{len(spans[BACKWARD])} backward events); sgemm here: {sgemm:.1f} GFLOP/s")
    print(f"{'layer':>5} {'channels':>9} {'size':>9} {'GFLOP':>6} {'fwd ms':>7} {'fwd %':>6} {'bwd ms':>7} {'bwd %':>6}")
    for c, f, b in zip(layers, forward, backward):
        g = c["flops"] / 1e9
        print(f"{c['index']:>5} {c['cin']:>4}>{c['cout']:<4} {c['width']:>4}x{c['height']:<4} {g:>6.2f} "
              f"{1000 * f:>7.1f} {100 * g / f / sgemm:>5.0f}% {1000 * b:>7.1f} {100 * g / b / sgemm:>5.0f}%")
    total_flops = 2 * sum(c["flops"] for c in layers) / 1e9
    conv_seconds = sum(forward) + sum(backward)
    print(f"all convolutions: {1000 * conv_seconds:.0f} ms per iteration, {total_flops / conv_seconds:.1f} GFLOP/s "
          f"({100 * total_flops / conv_seconds / sgemm:.0f}% of sgemm)")


if __name__ == "__main__":
    main()
