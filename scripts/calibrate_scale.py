"""Choose the activation scale k: run the lecture's stage 1 for a grid of k and compare losses.

For each k it runs 300x200, SGD lr 5, x0.1 at 200 and 400, 500 epochs, weights 1 / 1e3 / 10 on
the lecture's images, and prints the weighted content / style / TV losses at epochs 50..450
beside the lecture's, with the RMS log-ratio over all of them (0 would be a perfect match).
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import sys

from neural_style import LECTURE_STAGES, Settings, transfer
from neural_style.lecture_data import LECTURE_IMAGES, LECTURE_LOSSES, SHARED_LECTURE

CONTENT, STYLE = (SHARED_LECTURE / name for name, _, _ in LECTURE_IMAGES.values())


def run(k: float, epochs: int) -> tuple[dict[int, tuple[float, float, float]], float]:
    settings = Settings(stages=(replace(LECTURE_STAGES[0], epochs=epochs),), activation_scale=k, seed=0)
    start = time.perf_counter()
    result = transfer(CONTENT, STYLE, settings)
    seconds = time.perf_counter() - start
    if any("event" in h for h in result.history):
        raise FloatingPointError("; ".join(h["event"] for h in result.history if "event" in h))
    return {h["epoch"]: (h["content"], h["style"], h["tv"]) for h in result.history}, seconds


def rms_log_ratio(losses: dict[int, tuple[float, float, float]]) -> float:
    terms = [math.log(ours / theirs)
             for epoch, lecture in LECTURE_LOSSES[0].items() if epoch in losses
             for ours, theirs in zip(losses[epoch], lecture)]
    if not terms or any(math.isnan(t) for t in terms):
        return float("nan")
    return math.sqrt(sum(t * t for t in terms) / len(terms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[60, 80, 100, 120, 150, 200])
    parser.add_argument("--epochs", type=int, default=500, help="epochs of stage 1 (the lecture: 500)")
    args = parser.parse_args()
    if not (CONTENT.is_file() and STYLE.is_file()):
        sys.exit(f"the lecture's images are not in {SHARED_LECTURE}; put rainier.jpg and autumn_oak.jpg there")
    print("| k | epoch | content (lecture) | style (lecture) | TV (lecture) |")
    print("|---|---|---|---|---|")
    scores = {}
    for k in args.scales:
        try:
            losses, seconds = run(k, args.epochs)
        except FloatingPointError as e:
            print(f"| {k:g} | diverged: {e} | | | |", flush=True)
            continue
        for epoch, lecture in LECTURE_LOSSES[0].items():
            if epoch in losses:
                cells = " | ".join(f"{o:.2f} ({t:.2f})" for o, t in zip(losses[epoch], lecture))
                print(f"| {k:g} | {epoch} | {cells} |")
        scores[k] = rms_log_ratio(losses)
        print(f"| {k:g} | RMS log-ratio {scores[k]:.3f} | {seconds / args.epochs:.2f} s/epoch | | |", flush=True)
    finite = {k: s for k, s in scores.items() if not math.isnan(s)}
    if finite:
        best = min(finite, key=finite.get)
        print(f"\nclosest to the lecture: k = {best:g} (RMS log-ratio {finite[best]:.3f})")


if __name__ == "__main__":
    main()
