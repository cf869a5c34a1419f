"""Where one default-path epoch's oneDNN time goes: MKLDNN_VERBOSE's lines, summed by primitive.

Runs --epochs epochs of transfer() (SGD, the default settings, --precision) at --size in a child
process with MKLDNN_VERBOSE=1 (MXNet 1.9.1's oneDNN 2.4 reads that name, not ONEDNN_VERBOSE),
keeps the last epoch's lines (from its last conv1_1 forward_training on) and prints, per
primitive and implementation, the calls and milliseconds; then one line of each convolution
kind (which kernel ran). The verbose log slows the run: the shares matter, not the sum.

    .venv/bin/python scripts/onednn_breakdown.py --size 450x300 --precision bfloat16
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys

CHILD = """
import sys
from dataclasses import replace
import numpy as np
from neural_style import Settings, transfer
w, h, epochs, precision = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
base = Settings(precision=precision)
stage = replace(base.stages[0], width=w, height=h, epochs=epochs)
content, style = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
transfer(content, style, replace(base, stages=(stage,)))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="450x300")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    args = p.parse_args()
    w, h = args.size.lower().split("x")
    out = subprocess.run([sys.executable, "-c", CHILD, w, h, str(args.epochs), args.precision],
                         env={**os.environ, "MKLDNN_VERBOSE": "1"}, capture_output=True, text=True, check=True)
    lines = [line.split(",") for line in out.stdout.splitlines() if line.startswith("dnnl_verbose,exec")]
    starts = [i for i, f in enumerate(lines) if f[3] == "convolution" and f[5] == "forward_training" and "_ic3" in f[-2]]
    epoch = lines[starts[-1]:]
    ms, calls, example = collections.Counter(), collections.Counter(), {}
    for f in epoch:
        key = (f[3], f[4], f[5] if f[3] != "reorder" else "")
        ms[key] += float(f[-1])
        calls[key] += 1
        example.setdefault(key, ",".join(f))
    print(f"{args.size} {args.precision}, the last of {args.epochs} epochs: {sum(ms.values()):.0f} ms in oneDNN")
    for key, t in ms.most_common():
        print(f"{t:8.1f} ms {calls[key]:4d} calls  {' '.join(k for k in key if k)}")
    print()
    for key in sorted(k for k in example if k[0] == "convolution"):
        print(example[key])
    return 0


if __name__ == "__main__":
    sys.exit(main())
