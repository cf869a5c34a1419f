"""bfloat16 against float32 on the lecture's first stage: final losses, time, image difference.

Runs the lecture's stage 1 (300x200, SGD lr 5, x0.1 every 200 epochs, 500 epochs; --epochs and
--size change it) on the lecture's pair once per precision, each in a fresh process (the network
cache and oneDNN's state start empty), and prints a Markdown table: each run's final losses and
seconds, and its relative difference from float32's. Needs the lecture's images in
shared/lecture (lecture_data.SHARED_LECTURE) and a CPU with AVX512_BF16 or AMX.

    .venv/bin/python scripts/precision_quality.py [--epochs 500] [--size 300x200]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PRECISIONS = ("float32", "bfloat16")


def run_one(precision: str, size: tuple[int, int], epochs: int, out: Path) -> dict:
    """One stage in this process; the image goes to out (.npy), the rest is returned."""
    import numpy as np

    from dataclasses import replace

    from neural_style import LECTURE_STAGES, Settings, transfer
    from neural_style.lecture_data import LECTURE_IMAGES, SHARED_LECTURE

    stage = replace(LECTURE_STAGES[0], width=size[0], height=size[1], epochs=epochs)
    content, style = (SHARED_LECTURE / LECTURE_IMAGES[key][0] for key in ("content", "style"))
    result = transfer(content, style, Settings(stages=(stage,), precision=precision, report_every=epochs))
    np.save(out, result.image)
    return {"precision": result.settings.precision, "seconds": result.stage_seconds[0], **result.history[-1]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--size", default="300x200", help="WIDTHxHEIGHT (default 300x200)")
    p.add_argument("--one", choices=PRECISIONS, help=argparse.SUPPRESS)  # the worker: one run, JSON out
    p.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.one:
        print(json.dumps(run_one(args.one, size, args.epochs, args.image)))
        return 0
    import numpy as np

    runs, images = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for precision in PRECISIONS:
            image = Path(work) / f"{precision}.npy"
            done = subprocess.run([sys.executable, __file__, "--one", precision, "--epochs", str(args.epochs),
                                   "--size", args.size, "--image", str(image)], capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"the {precision} run failed:\n{done.stderr[-2000:]}")
            runs[precision] = json.loads(done.stdout.strip().splitlines()[-1])
            images[precision] = np.load(image)
    base = runs["float32"]
    print(f"Stage 1 of the lecture at {args.size}, {args.epochs} epochs (SGD lr 5, x0.1 every 200), the lecture's pair.\n")
    print("| precision | content | style | tv | total | total vs float32 | seconds | mean abs pixel difference |")
    print("|---|---|---|---|---|---|---|---|")
    for precision, r in runs.items():
        diff = float(np.abs(images[precision] - images["float32"]).mean())
        print(f"| {r['precision']} | {r['content']:.4f} | {r['style']:.4f} | {r['tv']:.4f} | {r['total']:.4f} | "
              f"{(r['total'] - base['total']) / base['total']:+.2%} | {r['seconds']:.1f} | {diff:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
