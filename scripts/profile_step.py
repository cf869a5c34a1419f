"""Where an epoch's time goes: MXNet's operator profile of the default path at one size.

Runs a few epochs of neural_style.transfer() under MXNet's profiler and prints its aggregate
table (operators sorted by total time), then the share of the convolutions (forward and
backward) in the operator time. For docs/BENCHMARKS.md: why the GFLOP/s are what they are.
"""
from __future__ import annotations

import argparse
import re
import tempfile

import neural_style  # first: it sets OMP_NUM_THREADS before MXNet starts
import mxnet as mx
from skimage import data

from neural_style import Settings, Stage, transfer
from neural_style.cli import parse_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=(450, 300), metavar="WxH")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    settings = Settings(stages=(Stage(*args.size, "sgd", 1.0, args.epochs, 1000),))
    content, style = data.chelsea(), data.immunohistochemistry()
    transfer(content, style, Settings(stages=(Stage(*args.size, "sgd", 1.0, 1, 1000),)))  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=f"{tmp}/profile.json")
        mx.profiler.set_state("run")
        transfer(content, style, settings)
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        table = mx.profiler.dumps(reset=True, format="table", sort_by="total", ascending=False)
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


if __name__ == "__main__":
    main()
