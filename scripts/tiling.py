"""Peak memory and seconds per epoch of one stage against its size, untiled and in tiles (issue 13).

Each row is one transfer() run in a fresh process (peak memory is per process): one SGD stage of
the default layers and losses at --sizes, for each --tiles value (0: untiled; N: --tile-size N),
--epochs epochs. It prints, per row, the peak resident memory (``ru_maxrss``), the seconds per
epoch (the median over the epochs after the second: an untiled stage's first epoch is only
queued when its callback runs, so the first interval holds two epochs' work; a two-epoch row
times its second epoch), the seconds before the first epoch (the targets, which a tiled stage
also computes in tiles), and the tiles per epoch; then, for each size measured both ways, the
tiling's overhead (seconds per epoch tiled over untiled).

--fit fits the memory model tiles.py decides with (a line for untiled stages against their
pixels, one for tiled stages against the image's pixels and the largest tile's) to the rows, and
prints its fields (a tiles.MemoryModel: one per --precision) and the largest stage per GB either
way. --progress FILE appends a line for every epoch and every tile, with the seconds so far and
the resident memory, to FILE as it happens (`tail -f FILE` follows a long run). --include adds
the rows an earlier --json run wrote.

    python scripts/tiling.py --sizes 900x600 --tiles 0 448 --epochs 3
    python scripts/tiling.py --rows 900x600:0 1800x1200:0 1800x1200:448 2700x1800:448 --fit
    python scripts/tiling.py --sizes 7680x4320 --tiles 0 --max-memory 14G --epochs 2 --progress 8k.log --json 8k.json
    python scripts/tiling.py --rows 900x600:0 1800x1200:0 1800x1200:448 --fit --include 8k.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any, Optional, Sequence

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

from neural_style.config import byte_count  # noqa: E402  (no MXNet: the driver stays light)
from benchmark import (RESULT_PREFIX, WorkerError, markdown_table, memory_total_mb, mxnet_python,  # noqa: E402
                       parse_size, rss_mb, run_worker, size_name)

GB = 2**30
HEADER = ["size", "MP", "tile", "tiles/epoch", "largest tile (px)", "peak RSS (GB)", "s/epoch", "s before epoch 1",
          "completed"]


# ---- the worker: one stage in this process ------------------------------------------------------

def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One SGD stage at spec's size with --tile-size spec['tile'] (0: untiled, whatever the memory)."""
    import resource

    from mxnet import nd
    from skimage import data

    from neural_style import transfer
    from neural_style.config import Settings, Stage
    from neural_style.hooks import OnTile
    from neural_style.schedule import feature_net, get_context
    from neural_style.tiles import Tiling, tile_size_for

    (w, h), tile, epochs = spec["size"], int(spec["tile"]), int(spec["epochs"])
    settings = Settings(stages=(Stage(w, h, "sgd", 1.0, epochs, 10**6),), report_every=1, tile_size=tile,
                        max_memory=spec.get("max_memory") or 2**60, precision=spec.get("precision", "float32"))
    marks, tiles = [], [0]
    start = time.perf_counter()

    def progress(what: str) -> None:
        if spec.get("progress"):
            with open(spec["progress"], "a") as log:
                print(f"{what} at {time.perf_counter() - start:.1f} s, RSS {rss_mb(os.getpid()):.0f} MB", file=log)

    def callback(p) -> None:
        marks.append((time.perf_counter(), p.elapsed))
        progress(f"epoch {p.epoch} done")

    def on_tile(done: int, total: int) -> None:
        tiles[0] = total // 2
        progress(f"  tile {done}/{total}")

    out: dict[str, Any] = {"size": [w, h], "tile": tile, "epochs": epochs, "max_memory": spec.get("max_memory"),
                           "precision": settings.precision}
    try:
        transfer(data.chelsea(), data.immunohistochemistry(), settings, callback, hooks=[OnTile(on_tile)])
        nd.waitall()
        out["completed"] = True
    except Exception as e:  # out of memory, MXNet's size limit: the row says so
        out.update(completed=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    net = feature_net(settings, get_context(settings.device))
    side = out["tile"] = tile_size_for(net, settings.stages[0], settings)
    if side:
        grid = Tiling.of(net, side).grid(nd.zeros((1, 3, h, w)))
        out["largest_tile_pixels"] = max((b - t) * (r - l) for t, b, l, r in (g.bounds for g in grid))
    else:
        out["largest_tile_pixels"] = w * h
    # an untiled stage's first epoch is only queued when its callback runs (MXNet computes
    # asynchronously), so the first interval holds two epochs' work and the one-off allocations
    steps = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    steps = steps[1:] or steps
    out.update(tiles=tiles[0], peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               seconds_per_epoch=median(steps) if steps else None,
               setup_seconds=marks[0][0] - marks[0][1] - start if marks else None)
    return out


# ---- the driver ---------------------------------------------------------------------------------

def measure(python: str, size: Sequence[int], tile: int, epochs: int, progress: Optional[str], timeout: Optional[float],
            rss_limit_mb: float, max_memory: Optional[int] = None, precision: str = "float32") -> dict[str, Any]:
    spec = {"size": list(size), "tile": tile, "epochs": epochs, "progress": progress, "max_memory": max_memory,
            "precision": precision}
    print(f"{size_name(size)} tile {tile or ('auto' if max_memory else 'off')}, {precision}: {epochs} epochs ...",
          flush=True)
    try:
        run = run_worker(python, Path(__file__), "worker", spec, timeout=timeout, rss_limit_mb=rss_limit_mb,
                         check=False)
    except WorkerError as e:
        return {**spec, "completed": False, "error": str(e)}
    if run.result is None:
        why = "over the memory limit" if run.killed_for_memory else f"exit status {run.returncode}"
        return {**spec, "completed": False, "error": why, "peak_rss_mb": run.sampled_peak_mb}
    return run.result


def row(r: dict[str, Any]) -> list[str]:
    w, h = r["size"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    auto = f"auto under {r['max_memory'] / GB:g} GB: " if r.get("max_memory") and r["tile"] else ""
    return [size_name(r["size"]), f"{w * h / 1e6:.2f}", auto + str(r["tile"] or "off"), str(r.get("tiles") or "-"),
            str(r.get("largest_tile_pixels", "-")), fmt(r.get("peak_rss_mb", 0) * 2**20 / GB, ".2f"),
            fmt(r.get("seconds_per_epoch"), ".1f"), fmt(r.get("setup_seconds"), ".1f"),
            "yes" if r.get("completed") else f"no ({r.get('error', '?')})"]


def overheads(rows: list[dict[str, Any]]) -> list[str]:
    """Seconds per epoch tiled over untiled, for each size measured both ways."""
    lines = []
    for r in rows:
        base = next((u for u in rows if u["size"] == r["size"] and not u["tile"] and u.get("seconds_per_epoch")),
                    None)
        if r["tile"] and base and r.get("seconds_per_epoch"):
            lines.append(f"{size_name(r['size'])} in tiles of {r['tile']}: {r['seconds_per_epoch']:.1f} s/epoch "
                         f"against {base['seconds_per_epoch']:.1f} untiled, "
                         f"{r['seconds_per_epoch'] / base['seconds_per_epoch']:.2f}x")
    return lines


def fit(rows: list[dict[str, Any]]) -> list[str]:
    """Least-squares lines of the memory model (tiles.py) through the completed rows: untiled
    peaks against the pixels; tiled peaks against the image's pixels and the largest tile's."""
    import numpy as np

    done = [r for r in rows if r.get("completed")]
    precisions = sorted({r.get("precision", "float32") for r in done})
    if len(precisions) > 1:
        return [f"--fit needs the rows of one precision, not {' and '.join(precisions)}: a model is per precision"]
    untiled = [(r["size"][0] * r["size"][1], r["peak_rss_mb"] * 2**20) for r in done if not r["tile"]]
    tiled = [(1.0, r["size"][0] * r["size"][1], r["largest_tile_pixels"], r["peak_rss_mb"] * 2**20) for r in done
             if r["tile"]]
    if len(untiled) < 2:
        return ["--fit needs at least two untiled sizes"]
    per_pixel, base = np.polyfit(*zip(*untiled), 1)
    lines = [f"base = {base:.3g}", f"untiled = {per_pixel:.4g}",
             f"untiled: {GB / per_pixel / 1e6:.3f} MP per GB above the base"]
    if len(tiled) < 3:
        return lines + ["--fit needs at least three tiled rows for the tiled line"]
    a = np.array([row[:3] for row in tiled], float)
    (tiled_base, image, tile), *_ = np.linalg.lstsq(a, np.array([row[3] for row in tiled]), rcond=None)
    return lines + [f"tiled_base = {tiled_base:.3g}", f"tiled_image = {image:.4g}", f"tile = {tile:.4g}",
                    f"tiled: {GB / image / 1e6:.3f} MP per GB of the image above the base and the tile"]


def size_and_tile(text: str) -> tuple[tuple[int, int], int]:
    """'1800x1200:448' -> ((1800, 1200), 448)."""
    size, _, tile = text.partition(":")
    if not tile.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT:TILE, e.g. 1800x1200:448")
    return parse_size(size), int(tile)


def main(argv: Optional[Sequence[str]] = None) -> int:
    if argv is None and sys.argv[1:2] == ["worker"]:
        print(RESULT_PREFIX + json.dumps(worker(json.loads(sys.argv[2]))), flush=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[(900, 600)], metavar="WxH")
    p.add_argument("--tiles", type=int, nargs="+", default=[0, 448], metavar="N", help="0: untiled")
    p.add_argument("--rows", type=size_and_tile, nargs="*", metavar="WxH:N",
                   help="measure these (size, tile) pairs instead of every --sizes with every --tiles (none: "
                   "only the --include rows)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-memory", type=byte_count, metavar="BYTES",
                   help="rows of tile 0 are tiled as --max-memory decides (default: untiled whatever the memory)")
    p.add_argument("--progress", metavar="FILE", help="append every epoch and tile, with the seconds and the resident "
                   "memory, to FILE as it happens")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="the network's (--precision); fit one precision's rows at a time (default: float32)")
    p.add_argument("--fit", action="store_true", help="fit the memory model to the rows")
    p.add_argument("--timeout", type=float, help="seconds a row may take")
    p.add_argument("--rss-limit-mb", type=float, default=0.9 * memory_total_mb(),
                   help="stop a row whose resident memory passes this (default: 90%% of the machine's)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--include", type=Path, nargs="+", default=[], metavar="FILE",
                   help="rows an earlier run wrote with --json, added to this run's table and fit (a long row, "
                   "such as 7680x4320, measured on its own)")
    p.add_argument("--python", help="the interpreter with the package's dependencies")
    args = p.parse_args(argv)
    python = mxnet_python(args.python)
    pairs = args.rows if args.rows is not None else [(size, tile) for size in args.sizes for tile in args.tiles]
    progress = str(Path(args.progress).resolve()) if args.progress else None
    rows = [measure(python, size, tile, args.epochs, progress, args.timeout, args.rss_limit_mb, args.max_memory,
                    args.precision) for size, tile in pairs]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    rows += [r for path in args.include for r in json.loads(path.read_text())]
    print()
    print(markdown_table(HEADER, [row(r) for r in rows]))
    for line in overheads(rows) + (fit(rows) if args.fit else []):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
