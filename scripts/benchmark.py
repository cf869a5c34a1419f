"""Speed and memory of neural-style beside the lecture's loop and PyTorch, on this machine.

One run measures, at each size (default 300x200, 450x300, 900x600), the seconds per iteration
(forward through VGG19 layers 0..28, the losses, the gradient to the image, one optimizer step;
the median of --iters iterations after --warmup) of

  lecture  the lecture's literal loop with MXNet's defaults: VGG parameters with
           grad_req='write', MXNet's default OpenMP threads (half the cores), not hybridized,
           nd.waitall() every iteration;
  default  the project's default path, timed through neural_style.transfer();
  torch    the same network, weights and losses in PyTorch CPU (torch==2.13.0 in a separate
           environment, .venv-bench, that this script sets up; never a dependency of the package),

with the achieved GFLOP/s against numpy's sgemm rate measured in the same run, and the peak
resident memory of each. Before timing it checks that PyTorch and MXNet compute the same loss.
--quality adds the time each optimizer needs to reach the loss of the lecture's 500-epoch SGD
schedule; --memory adds peak memory at 1200x800, memory flatness over epochs and the largest
size one stage can optimise. --write docs/BENCHMARKS.md puts the tables there.

Every measurement runs in a fresh process (thread counts are fixed when MXNet and torch start,
and peak memory is per process); the workers are scripts/bench_mxnet.py and bench_torch.py.
Run it on a quiet machine: anything else running skews the timings.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
MXNET_WORKER = SCRIPTS / "bench_mxnet.py"
TORCH_WORKER = SCRIPTS / "bench_torch.py"
BENCH_VENV = ROOT / ".venv-bench"
BENCH_REQUIREMENTS = SCRIPTS / "requirements-bench.txt"
RESULT_PREFIX = "BENCH_JSON "

DEFAULT_SIZES = ((300, 200), (450, 300), (900, 600))
QUICK_SIZES = ((64, 48),)
# Total losses of PyTorch and MXNet on the same input must agree to this (relative).
LOSS_TOLERANCE = 1e-4
# ... and so must their gradients to the image (relative L2 norm of the difference).
GRAD_TOLERANCE = 1e-3
# Thread settings a user may have exported; every worker starts without them so that each
# path runs with its own defaults (the workers set what they need themselves).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def report_marks(script: str) -> tuple[str, str]:
    """The comments that fence the part of a report that script writes."""
    return (f"<!-- {script}: begin (generated; edits between these marks are overwritten) -->",
            f"<!-- {script}: end -->")


MARK_BEGIN, MARK_END = report_marks("benchmark.py")

# VGG19's features 0..28 (gluon.model_zoo.vision.vgg19().features): 3x3 convolutions with
# padding 1 as (index, in channels, out channels), 2x2 max-pools with stride 2 (floor), and a
# ReLU after every convolution.
VGG19_CONVS = (
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256), (16, 256, 256),
    (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512),
    (28, 512, 512),
)
VGG19_POOLS = (4, 9, 18, 27)
LAST_LAYER = 28


def vgg19_layer_kinds(last: int = LAST_LAYER) -> list[str]:
    """'conv', 'relu' or 'pool' for each of VGG19's feature layers 0..last."""
    convs = {i for i, _, _ in VGG19_CONVS}
    return ["conv" if i in convs else "pool" if i in VGG19_POOLS else "relu" for i in range(last + 1)]


def conv_flops(width: int, height: int, last: int = LAST_LAYER) -> list[dict[str, int]]:
    """Each convolution of layers 0..last at an input of width x height: its position, channels,
    the spatial size it runs at and its forward FLOPs, 2 * Cin * Cout * 9 * H * W (a
    multiply-add counts two)."""
    out = []
    channels = dict((i, (cin, cout)) for i, cin, cout in VGG19_CONVS)
    h, w = height, width
    for i, kind in enumerate(vgg19_layer_kinds(last)):
        if kind == "conv":
            cin, cout = channels[i]
            out.append({"index": i, "cin": cin, "cout": cout, "height": h, "width": w,
                        "flops": 2 * cin * cout * 9 * h * w})
        elif kind == "pool":
            h, w = h // 2, w // 2
    return out


def iteration_flops(width: int, height: int, last: int = LAST_LAYER) -> int:
    """Convolution FLOPs of one iteration: the forward pass plus the gradient with respect to
    each convolution's input (the same count again). Gradients of the VGG weights, which the
    lecture's loop also computes and nobody uses, are not counted: this is the useful work."""
    return 2 * sum(c["flops"] for c in conv_flops(width, height, last))


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 300x200, not {text!r}")
    return int(m.group(1)), int(m.group(2))


def size_name(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


# ---------------------------------------------------------------------------------------------
# Running workers


class WorkerError(RuntimeError):
    """A worker exited without a result."""


@dataclass
class WorkerRun:
    result: Optional[dict[str, Any]]
    returncode: int
    seconds: float
    sampled_peak_mb: float
    killed_for_memory: bool
    stderr_tail: str


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def rss_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MB; 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_worker(python: str, script: Path, mode: str, spec: dict[str, Any], *, timeout: Optional[float] = None,
               rss_limit_mb: Optional[float] = None, check: bool = True) -> WorkerRun:
    """Run one measurement in a fresh process; its last 'BENCH_JSON {...}' line is the result.

    With rss_limit_mb the child is killed once its resident memory passes the limit (so that a
    size that does not fit never drives this machine into swap or the OOM killer)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([python, str(script), mode, json.dumps(spec)], cwd=ROOT, env=worker_env(),
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak, killed = 0.0, False
        try:
            while proc.poll() is None:
                rss = rss_mb(proc.pid)
                peak = max(peak, rss)
                if rss_limit_mb is not None and rss > rss_limit_mb:
                    killed = True
                    proc.kill()
                    proc.wait()
                    break
                if timeout is not None and time.perf_counter() - start > timeout:
                    proc.kill()
                    proc.wait()
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    tail = "\n".join((stderr.strip().splitlines() or [""])[-15:])
    run = WorkerRun(result, proc.returncode, seconds, peak, killed, tail)
    if check and (result is None or proc.returncode != 0):
        why = "killed: over the memory limit" if killed else f"exit status {proc.returncode}"
        raise WorkerError(f"{script.name} {mode} failed ({why}):\n{tail}")
    return run


def mxnet_python(explicit: Optional[str]) -> str:
    """The interpreter with the package's dependencies: --python, this one, or .venv's."""
    if explicit:
        return explicit
    if importlib.util.find_spec("mxnet") is not None:
        return sys.executable
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.is_file():
        return str(venv)
    sys.exit("no Python with mxnet found: run `make venv` first (the README's set-up), "
             "then `.venv/bin/python scripts/benchmark.py`")


# ---------------------------------------------------------------------------------------------
# The PyTorch environment


def bench_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def torch_ready(venv: Path) -> bool:
    python = bench_python(venv)
    if not python.is_file():
        return False
    probe = subprocess.run([str(python), "-c", "import torch, numpy; print(torch.__version__)"],
                           capture_output=True, text=True)
    return probe.returncode == 0


def setup_torch(venv: Path, base_python: str) -> None:
    """Create the benchmark's own environment with PyTorch CPU (scripts/requirements-bench.txt).

    The requirement names the local version torch==2.13.0+cpu, so pip can only take the CPU
    wheel (on this project's machines it is in pip's find-links); it never falls back to PyPI's
    plain torch 2.13.0, a CUDA build of several GB."""
    if not bench_python(venv).is_file():
        print(f"creating {venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv} ...", flush=True)
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    print(f"installing {BENCH_REQUIREMENTS.relative_to(ROOT)} into it (torch CPU, about 200 MB) ...", flush=True)
    done = subprocess.run([str(bench_python(venv)), "-m", "pip", "install", "--quiet", "-r", str(BENCH_REQUIREMENTS)])
    if done.returncode != 0:
        raise WorkerError(
            "could not install PyTorch for the benchmark. It needs the CPU wheel "
            "torch-2.13.0+cpu (cp311, manylinux_2_28_x86_64) where pip finds it, e.g. "
            "`pip download --no-deps torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu -d DIR` "
            "on a machine that can reach it and `PIP_FIND_LINKS=DIR`; or run with --no-torch")


# ---------------------------------------------------------------------------------------------
# The machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def memory_available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True)
        return rev.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt(value: Optional[float], digits: int = 2, suffix: str = "") -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}{suffix}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


PATH_NOTES = {
    "lecture": "the lecture's loop: VGG grad_req='write', MXNet's default threads, not hybridized, waitall every iteration",
    "default": "neural_style.transfer() with the package's default settings (its precision in brackets)",
    "default --precision": "the same with the other precision (only on a CPU with AVX512_BF16 or AMX)",
    "torch": "PyTorch CPU, the same layers, weights and losses",
    "torch channels_last": "the same, image and weights stored channels-last (NHWC)",
    "torch bf16": "the network under torch.autocast('cpu', dtype=torch.bfloat16), its taps cast to float32 for the "
                  "float32 losses (only on a CPU with AVX512_BF16 or AMX)",
    "torch bf16 channels_last": "both",
}

# The PyTorch rows: (path, bench_torch.py's time spec, needs bfloat16 on the CPU).
TORCH_PATHS = (
    ("torch", {}, False),
    ("torch channels_last", {"channels_last": True}, False),
    ("torch bf16", {"autocast": True}, True),
    ("torch bf16 channels_last", {"autocast": True, "channels_last": True}, True),
)


def speed_rows(results: list[dict[str, Any]], sgemm_gflops: float) -> list[list[str]]:
    """One row per (size, path): seconds per iteration and what follows from it."""
    rows = []
    by_size: dict[str, dict[str, dict]] = {}
    for r in results:
        by_size.setdefault(r["size"], {})[r["path"]] = r
    for size, paths in by_size.items():
        lecture, torch = paths.get("lecture"), paths.get("torch")
        torch_best = min((r["seconds_per_iter"] for name, r in paths.items() if name.startswith("torch")), default=None)
        for name, r in paths.items():
            s = r["seconds_per_iter"]
            gflops = r["flops"] / s / 1e9
            rows.append([
                size, r["label"], str(r.get("threads", "-")), fmt(s, 3),
                fmt(lecture["seconds_per_iter"] / s if lecture else None, 2, "x"),
                fmt(torch["seconds_per_iter"] / s if torch else None, 2, "x"),
                fmt(torch_best / s if torch_best else None, 2, "x"),
                fmt(gflops, 1), fmt(100 * gflops / sgemm_gflops, 0, "%"), fmt(r["peak_rss_mb"], 0),
            ])
    return rows


SPEED_HEADER = ["size", "path", "threads", "s/iter", "x vs lecture", "x vs torch", "x vs torch best", "GFLOP/s", "% of sgemm",
                "peak RSS MB"]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


# ---------------------------------------------------------------------------------------------
# The measurements


def measure_sgemm(python: str, n: int) -> dict[str, Any]:
    return run_worker(python, MXNET_WORKER, "sgemm", {"n": n, "repeats": 7}).result


def measure_check(python: str, tpython: Optional[str], data: str, work: Path) -> dict[str, Any]:
    """Loss and image gradient of MXNet (package network and the lecture's) and PyTorch on one input."""
    mx_out = run_worker(python, MXNET_WORKER, "check", {"data": data, "out": str(work / "check_mxnet.npz")}).result
    out = {"mxnet": mx_out}
    import numpy as np

    grads = np.load(work / "check_mxnet.npz")
    out["lecture_vs_default_loss"] = rel(mx_out["lecture"]["total"], mx_out["default"]["total"])
    out["lecture_vs_default_grad"] = rel_l2(grads["lecture"], grads["default"])
    if tpython is not None:
        t_out = run_worker(tpython, TORCH_WORKER, "check", {"data": data, "out": str(work / "check_torch.npz")}).result
        tgrad = np.load(work / "check_torch.npz")["grad"]
        out["torch"] = t_out
        out["torch_vs_mxnet_loss"] = rel(t_out["losses"]["total"], mx_out["default"]["total"])
        out["torch_vs_mxnet_terms"] = {k: rel(t_out["losses"][k], mx_out["default"][k]) for k in ("content", "style", "tv")}
        out["torch_vs_mxnet_grad"] = rel_l2(tgrad, grads["default"])
    return out


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def rel_l2(a, b) -> float:
    import numpy as np

    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))


def speed_plan(python: str, tpython: Optional[str], bf16: bool,
               default_precision: str) -> list[tuple[str, str, Path, str, dict[str, Any]]]:
    """The paths timed at each size: (path, interpreter, worker, mode, extra spec). The package's
    other precision and PyTorch's bfloat16 rows only where the CPU runs bfloat16 (``bf16``:
    AVX512_BF16 or AMX)."""
    plan = [("lecture", python, MXNET_WORKER, "lecture", {}), ("default", python, MXNET_WORKER, "default", {})]
    if bf16:
        other = "float32" if default_precision in ("auto", "bfloat16") else "bfloat16"
        plan.append((f"default --precision {other}", python, MXNET_WORKER, "default", {"precision": other}))
    if tpython is not None:
        plan += [(path, tpython, TORCH_WORKER, "time", spec) for path, spec, needs in TORCH_PATHS if bf16 or not needs]
    return plan


def chosen_paths(plan: list[tuple], names: Optional[Sequence[str]]) -> list[tuple]:
    """The plan's rows that --paths names (all without it); SystemExit for a name not in the plan."""
    if names is None:
        return plan
    known = [row[0] for row in plan]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"--paths: no row {', '.join(map(repr, unknown))} here (the rows: {', '.join(known)})")
    return [row for row in plan if row[0] in names]


def measure_speed(args, python: str, tpython: Optional[str], data: str, info: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    spec_common = {"data": data, "warmup": args.warmup, "iters": args.iters}
    plan = chosen_paths(speed_plan(python, tpython, info["fast_bfloat16"], info["default_precision"]), args.paths)
    for size in args.sizes:
        name = size_name(size)
        flops = iteration_flops(*size)
        for path, interpreter, script, mode, extra in plan:
            print(f"  {name} {path} ...", end="", flush=True)
            r = run_worker(interpreter, script, mode, {**spec_common, **extra, "size": list(size)}).result
            label = f"{path} ({r['optimizer']}, {r['precision']})" if path.startswith("default") else path
            r.update({"size": name, "path": path, "label": label, "flops": flops})
            results.append(r)
            print(f" {r['seconds_per_iter']:.3f} s/iter, {r.get('threads', '?')} threads, "
                  f"CPU/wall {r.get('cpu_per_wall', float('nan')):.2f}, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            if r.get("note"):
                print(f"    note: {r['note']}")
    return results


def measure_quality(args, python: str, default_stage: dict[str, Any],
                    speed: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """Wall time of each optimizer to the total loss T the lecture's SGD schedule ends at.

    The default path computes the lecture's losses (the agreement check says to about 1e-6), so
    it runs the schedule and sets T; --quality-lecture-loop also runs it through the lecture's own
    loop (20 minutes at 300x200), otherwise that loop's schedule time is its measured seconds per
    iteration times the epochs."""
    spec = {"size": list(args.quality_size), "epochs": args.quality_epochs}
    name = size_name(args.quality_size)
    print(f"\nTime to quality at {name} on the lecture's pair", flush=True)
    probe = run_worker(python, MXNET_WORKER, "lecture-pair", {}).result
    if not probe["found"]:
        print(f"  skipped: {probe['reason']}")
        return {"skipped": probe["reason"]}
    schedule = {"optimizer": "sgd", "lr": args.quality_sgd_lr, "epochs": args.quality_epochs,
                "lr_decay_epoch": args.quality_decay_epoch}
    print(f"  default path, the lecture's SGD schedule (lr {args.quality_sgd_lr:g}, x0.1 every "
          f"{args.quality_decay_epoch}, {args.quality_epochs} epochs) ...", end="", flush=True)
    sgd = run_worker(python, MXNET_WORKER, "quality-train",
                     {**spec, "stage": schedule, "target": float("-inf"), "stop": False}).result
    target = sgd["final_total"]
    if target is None or not math.isfinite(target):
        raise WorkerError(f"the lecture's SGD schedule ended at a total loss of {target}: no target to reach "
                          "(at small sizes lr 5 diverges; try a lower --quality-sgd-lr)")
    sgd.update(reached=True, reached_epoch=sgd["epochs_run"] - 1, seconds=sgd["elapsed"])
    print(f" T = {target:.4f} after {sgd['elapsed']:.1f} s", flush=True)
    runs = [{"run": "default path, SGD schedule", **schedule, **sgd}]
    if args.quality_lecture_loop:
        print("  the lecture's loop, the same schedule ...", end="", flush=True)
        base = run_worker(python, MXNET_WORKER, "quality-lecture", {**spec, **schedule}).result
        print(f" total {base['final']['total']:.4f} in {base['seconds']:.1f} s", flush=True)
        runs.insert(0, {"run": "lecture loop, SGD schedule", **schedule, "reached": base["final"]["total"] <= target,
                        "reached_epoch": base["epochs"] - 1, "seconds": base["seconds"], "elapsed": base["seconds"],
                        "epochs_run": base["epochs"], "final_total": base["final"]["total"], "events": [],
                        "error": None})
        lecture_seconds, lecture_how = base["seconds"], "run to the end"
    else:
        per_iter = next((r["seconds_per_iter"] for r in speed if r["path"] == "lecture" and r["size"] == name), None)
        lecture_seconds = per_iter * args.quality_epochs if per_iter is not None else None
        lecture_how = (f"{args.quality_epochs} x its median {per_iter:.3f} s/iter from the speed table"
                       if per_iter is not None else "not measured (no speed row at this size)")
    plans = [("default path, Adam", {"optimizer": "adam", "lr": args.adam_lr, "epochs": args.quality_epochs,
                                     "lr_decay_epoch": args.quality_epochs + 1}),
             ("default path, L-BFGS", {"optimizer": "lbfgs", "lr": args.lbfgs_lr, "epochs": args.quality_epochs,
                                       "lr_decay_epoch": args.quality_epochs + 1})]
    if not default_stage["is_lecture_schedule"]:
        plans.append(("default path, the default stage", {
            "optimizer": default_stage["optimizer"], "lr": default_stage["lr"], "epochs": args.quality_epochs,
            "lr_decay_epoch": default_stage["lr_decay_epoch"], "lr_decay": default_stage["lr_decay"]}))
    for run_name, stage in plans:
        print(f"  {run_name} ({stage['optimizer']} lr {stage['lr']:g}) ...", end="", flush=True)
        r = run_worker(python, MXNET_WORKER, "quality-train",
                       {**spec, "stage": stage, "target": target, "stop": True}).result
        runs.append({"run": run_name, **stage, **r})
        if r["reached"]:
            print(f" reached {target:.4f} at epoch {r['reached_epoch']} after {r['seconds']:.1f} s", flush=True)
        else:
            print(f" did not reach {target:.4f} in {r['epochs_run']} epochs (best {r['best_total']:.4f}, "
                  f"{r['elapsed']:.1f} s)", flush=True)
        for note in r["events"] + ([r["error"]] if r["error"] else []):
            print(f"    {note}")
    return {"target": target, "sgd_seconds": sgd["elapsed"], "lecture_seconds": lecture_seconds,
            "lecture_how": lecture_how, "runs": runs, "size": name}


def quality_rows(q: dict[str, Any]) -> list[list[str]]:
    """Per run: epochs and seconds to T, and those seconds as a share of the SGD schedule's full
    time in the lecture's loop and in the default path."""
    rows = []
    for r in q["runs"]:
        seconds = r["seconds"] if r["reached"] else None
        notes = [f"{len(r['events'])} recoveries"] if r.get("events") else []
        notes += [r["error"]] if r.get("error") else []
        rows.append([
            r["run"], r["optimizer"], f"{r['lr']:g}",
            str(r["reached_epoch"] + 1) if r["reached"] else f"not in {r['epochs_run']}",
            fmt(seconds, 1),
            fmt(seconds / q["lecture_seconds"] if seconds is not None and q["lecture_seconds"] else None, 3),
            fmt(seconds / q["sgd_seconds"] if seconds is not None else None, 3),
            fmt(r["final_total"], 4), "; ".join(notes) or "-",
        ])
    return rows


QUALITY_HEADER = ["run", "optimizer", "lr", "epochs to T", "seconds to T", "/ lecture loop's schedule",
                  "/ default path's SGD schedule", "last total", "notes"]


def measure_memory(args, python: str) -> dict[str, Any]:
    print(f"\nMemory: one default-path stage at {size_name(args.memory_size)}, {args.memory_epochs} epochs", flush=True)
    limit = args.memory_limit_mb
    main = run_worker(python, MXNET_WORKER, "memory", {"size": list(args.memory_size), "epochs": args.memory_epochs},
                      rss_limit_mb=limit, check=False)
    out: dict[str, Any] = {"limit_mb": limit, "main": memory_record(args.memory_size, args.memory_epochs, main)}
    m = out["main"]
    print(f"  {'completed' if m['completed'] else 'FAILED: ' + m['why']}; peak RSS {fmt(m['peak_rss_mb'], 0)} MB; "
          f"each epoch's peak: {epoch_series(m['epoch_peak_rss_mb'])} MB; RSS after each epoch's callback: "
          f"{epoch_series(m['rss_after_epoch_mb'])} MB", flush=True)
    print(f"\nLargest size one stage can optimise ({args.memory_search_epochs} epochs each, killed above "
          f"{limit:.0f} MB RSS)", flush=True)
    search = []
    for size in args.memory_search:
        print(f"  {size_name(size)} ...", end="", flush=True)
        if tuple(size) == tuple(args.memory_size) and m["completed"] and args.memory_epochs >= args.memory_search_epochs:
            rec = m  # measured above, with more epochs
            print(" (as above)", end="")
        else:
            run = run_worker(python, MXNET_WORKER, "memory", {"size": list(size), "epochs": args.memory_search_epochs},
                             rss_limit_mb=limit, check=False)
            rec = memory_record(size, args.memory_search_epochs, run)
            search.append(rec)
        print(f" {'fits' if rec['completed'] else 'does not fit (' + rec['why'] + ')'}, peak RSS "
              f"{fmt(rec['peak_rss_mb'], 0)} MB, {fmt(rec['seconds_per_epoch'], 1)} s/epoch", flush=True)
        if not rec["completed"]:
            break
    out["search"] = search
    out["largest"] = largest_fit([m] + search)
    return out


def epoch_series(values: Sequence[float]) -> str:
    return " ".join(f"{v:.0f}" for v in values) or "-"


def largest_fit(records: list[dict[str, Any]]) -> Optional[str]:
    """The largest (by pixels) size that completed."""
    fits = [r for r in records if r["completed"]]
    return max(fits, key=lambda r: math.prod(parse_size(r["size"])))["size"] if fits else None


def memory_record(size: Sequence[int], epochs: int, run: WorkerRun) -> dict[str, Any]:
    r = run.result or {}
    completed = run.result is not None and run.returncode == 0 and r.get("completed", False)
    if run.killed_for_memory:
        why = "over the memory limit"
    elif run.returncode < 0:
        why = f"killed by signal {-run.returncode}"
    elif r.get("error"):
        why = r["error"]
    else:
        why = f"exit status {run.returncode}" if run.returncode else ""
    peaks = r.get("epoch_peak_rss_mb") or []
    return {"size": size_name(size), "epochs": epochs, "completed": completed, "why": why,
            "peak_rss_mb": r.get("peak_rss_mb", run.sampled_peak_mb or None),
            "peak_epoch2_mb": peaks[1] if len(peaks) > 1 else None, "peak_last_mb": peaks[-1] if peaks else None,
            "epoch_peak_rss_mb": peaks, "rss_after_epoch_mb": r.get("rss_after_epoch_mb") or [],
            "seconds_per_epoch": r.get("seconds_per_epoch"),
            "stderr_tail": "" if completed else run.stderr_tail}


def memory_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        # Growth of the per-epoch peak from epoch 2 to the last: only meaningful with at least 3.
        first, last = r["peak_epoch2_mb"], r["peak_last_mb"]
        growth = last - first if r["epochs"] > 2 and first and last else None
        rows.append([r["size"], str(r["epochs"]), "yes" if r["completed"] else f"no ({r['why']})",
                     fmt(r["peak_rss_mb"], 0), fmt(first, 0), fmt(last, 0), fmt(growth, 0),
                     fmt(r["seconds_per_epoch"], 2)])
    return rows


MEMORY_HEADER = ["size", "epochs", "completed", "peak RSS MB", "epoch 2 peak MB", "last epoch peak MB",
                 "growth MB", "s/epoch"]


# ---------------------------------------------------------------------------------------------
# The report


def report_markdown(info: dict[str, Any], check: Optional[dict], speed: list[dict], quality: Optional[dict],
                    memory: Optional[dict], command: str) -> str:
    lines = [f"Measured {info['date']} with `{command}` (commit {info['commit']}).", ""]
    if info.get("quick"):
        lines += ["**A --quick smoke test: tiny sizes and few iterations, not a measurement.**", ""]
    lines += [f"- CPU: {info['cpu']}, {info['cores']} cores, {info['memory_gb']:.1f} GiB memory; "
              f"load average {info['load']:.2f} when the run started",
              f"- sgemm: {info['sgemm']['gflops']:.1f} GFLOP/s (numpy {info['sgemm']['numpy']} float32 "
              f"{info['sgemm']['n']}x{info['sgemm']['n']} matmul, best of {info['sgemm']['repeats']})",
              f"- Python {info['python']}, MXNet {info.get('mxnet', '?')} (oneDNN {'on' if info.get('mkldnn') else 'off'}), "
              f"numpy {info.get('numpy', '?')}, PyTorch {info.get('torch', 'not run')}",
              f"- CPU instruction sets: {cpu_features_text(info.get('cpu_features', {}))}; oneDNN's "
              f"DNNL_MAX_CPU_ISA {info.get('onednn_max_isa') or 'not set (its default: no AMX)'}",
              f"- input: {info.get('pair', '?')}", ""]
    if check:
        lines += ["### Same work", "", check_text(check), ""]
    if speed:
        lines += ["### Seconds per iteration", "",
                  f"Median of {info['iters']} iterations after {info['warmup']} warm-up, each in a fresh process. "
                  "An iteration: forward through VGG19 layers 0..28, the losses, the gradient to the image, one "
                  "optimizer step. `x vs lecture`, `x vs torch` and `x vs torch best` (the fastest PyTorch row at the size) "
                  "are speed-ups (their seconds / this row's). "
                  "GFLOP/s counts the convolution FLOPs of layers 0..28, forward plus the gradient to each "
                  "convolution's input (not the VGG weight gradients the lecture's loop also computes). "
                  "Peak RSS is the process's maximum resident memory (`ru_maxrss`), weights and libraries included.",
                  "", markdown_table(SPEED_HEADER, speed_rows(speed, info["sgemm"]["gflops"])), ""]
        lines += [f"- `{k}`: {v}" for k, v in PATH_NOTES.items()] + [""]
    if quality and "runs" in quality:
        lines += ["### Time to quality", "",
                  f"At {quality['size']} on the lecture's pair: T = {quality['target']:.4f}, the total loss at the "
                  f"last epoch of the lecture's SGD schedule, run by the default path in "
                  f"{quality['sgd_seconds']:.1f} s. The lecture's loop's time for the schedule: "
                  f"{fmt(quality['lecture_seconds'], 1)} s ({quality['lecture_how']}). Each other run stops at "
                  "the first epoch whose total is at most T; losses are read every epoch in every run, and "
                  "seconds count from the start of the stage's loop. The issue's target: L-BFGS or the "
                  "default reaches T in at most 0.25 of the lecture schedule's time.", "",
                  markdown_table(QUALITY_HEADER, quality_rows(quality)), ""]
    elif quality:
        lines += ["### Time to quality", "", f"Skipped: {quality['skipped']}", ""]
    if memory:
        lines += ["### Memory", "",
                  "One default-path stage. A thread reads the process's RSS every 20 ms; an epoch's peak is "
                  "the highest reading between two of the loop's callbacks. A size does not fit if its "
                  f"process fails or passes {memory['limit_mb']:.0f} MB resident (then it is stopped).", "",
                  f"At {memory['main']['size']}, each epoch's peak RSS (MB): "
                  f"{epoch_series(memory['main']['epoch_peak_rss_mb'])}; RSS at each callback, while the next "
                  f"epoch is already running: {epoch_series(memory['main']['rss_after_epoch_mb'])}.", "",
                  markdown_table(MEMORY_HEADER, memory_rows([memory["main"]] + memory["search"])), "",
                  f"Largest size that fit: {memory['largest'] or 'none'}.", ""]
    return "\n".join(lines)


def cpu_features_text(features: dict[str, bool]) -> str:
    """'avx2 yes, avx512 yes, avx512_bf16 no, amx no', as the doctor writes them."""
    return ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in features.items()) or "unknown"


def check_text(check: dict[str, Any]) -> str:
    mx = check["mxnet"]
    parts = [f"On one {mx['size']} input the lecture's network and the package's give total losses "
             f"{mx['lecture']['total']:.6g} and {mx['default']['total']:.6g} (relative difference "
             f"{check['lecture_vs_default_loss']:.1e}; image gradients {check['lecture_vs_default_grad']:.1e})."]
    if "torch" in check:
        parts.append(f"PyTorch gives {check['torch']['losses']['total']:.6g}: relative difference "
                     f"{check['torch_vs_mxnet_loss']:.1e} (at most {LOSS_TOLERANCE:g} required), "
                     f"image gradients {check['torch_vs_mxnet_grad']:.1e} (at most {GRAD_TOLERANCE:g}).")
    return " ".join(parts)


def write_report(path: Path, body: str, marks: tuple[str, str] = (MARK_BEGIN, MARK_END),
                 title: str = "# Benchmarks\n\nWritten by `scripts/benchmark.py --write docs/BENCHMARKS.md`.") -> None:
    """Replace the generated part of path (between the marks), keeping everything else; a new
    file starts with title."""
    begin, end = marks
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if path.is_file():
        text = path.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            path.write_text(head + block + tail)
            return
        path.write_text(text.rstrip() + "\n\n## Measured\n\n" + block + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(title + "\n\n## Measured\n\n" + block + "\n")


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=parse_size, nargs="+", metavar="WxH",
                   help="sizes to time (default 300x200 450x300 900x600; with --quick 64x48)")
    p.add_argument("--iters", type=int, help="timed iterations per measurement (default 5; --quick 3)")
    p.add_argument("--warmup", type=int, help="warm-up iterations before timing, at least 1 (default 3: torch's first "
                   "two at a new size are slow; --quick 1)")
    p.add_argument("--paths", nargs="+", metavar="PATH",
                   help="time only these rows, by name: lecture, default, torch, 'torch channels_last', ... (default: "
                        "all); e.g. --paths default torch for peak memory beside PyTorch's at large sizes")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: tiny sizes and few iterations everywhere (also for --quality and --memory)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out (no .venv-bench needed)")
    p.add_argument("--no-speed", action="store_true", help="skip the seconds-per-iteration table")
    p.add_argument("--quality", action="store_true", help="also measure the time each optimizer needs to reach "
                   "the lecture schedule's loss (long: the schedule alone is 500 epochs)")
    p.add_argument("--memory", action="store_true", help="also measure peak memory and the largest size that fits")
    p.add_argument("--all", action="store_true", help="speed, --quality and --memory")
    p.add_argument("--write", type=Path, metavar="FILE", help="write the tables to FILE (e.g. docs/BENCHMARKS.md), "
                   "replacing only the part between the generated marks")
    p.add_argument("--setup", action="store_true", help="only create .venv-bench with PyTorch, then exit")
    p.add_argument("--python", help="interpreter with the package's dependencies (default: this one, or .venv's)")
    p.add_argument("--bench-venv", type=Path, default=BENCH_VENV, help="the PyTorch environment (default .venv-bench)")
    p.add_argument("--sgemm-size", type=int, help="matrix size for the sgemm rate (default 2048; --quick 512)")
    p.add_argument("--check-size", type=parse_size, default=(70, 50), metavar="WxH",
                   help="size of the PyTorch/MXNet agreement check (default 70x50: odd sizes after the "
                        "second and third pools, so both round the same way)")
    q = p.add_argument_group("--quality")
    q.add_argument("--quality-size", type=parse_size, metavar="WxH", help="default 300x200 (--quick 64x48)")
    q.add_argument("--quality-epochs", type=int, help="the SGD schedule's length and every run's limit "
                   "(default 500; --quick 20)")
    q.add_argument("--quality-decay-epoch", type=int, help="SGD lr x0.1 every N epochs (default 200; --quick 10)")
    q.add_argument("--quality-sgd-lr", type=float, help="the SGD schedule's learning rate (default 5, the "
                   "lecture's; --quick 0.5, since lr 5 diverges on tiny images)")
    q.add_argument("--quality-lecture-loop", action="store_true",
                   help="also run the schedule through the lecture's own loop (adds about 20 minutes); without "
                        "it, that loop's schedule time is its seconds per iteration from the speed table x epochs")
    q.add_argument("--adam-lr", type=float, default=0.05, help="Adam's learning rate (default 0.05)")
    q.add_argument("--lbfgs-lr", type=float, default=1.0, help="L-BFGS's learning rate (default 1)")
    m = p.add_argument_group("--memory")
    m.add_argument("--memory-size", type=parse_size, metavar="WxH", help="default 1200x800 (--quick 64x48)")
    m.add_argument("--memory-epochs", type=int, help="epochs there, for the flatness check (default 6; --quick 4)")
    m.add_argument("--memory-search", type=parse_size, nargs="+", metavar="WxH",
                   help="sizes to try in order, stopping at the first that does not fit "
                        "(default 1200x800 1800x1200 2400x1600 3000x2000 3600x2400; --quick 64x48 96x64)")
    m.add_argument("--memory-search-epochs", type=int, help="epochs per tried size (default 2)")
    m.add_argument("--memory-limit-mb", type=float,
                   help="stop a tried size once its process passes this RSS (default 90%% of the memory "
                        "available when the run starts)")
    return p


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick

    def pick(name, normal, small):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else normal)

    pick("sizes", list(DEFAULT_SIZES), list(QUICK_SIZES))
    pick("iters", 5, 3)
    pick("warmup", 3, 1)
    pick("sgemm_size", 2048, 512)
    pick("quality_size", (300, 200), (64, 48))
    pick("quality_epochs", 500, 20)
    pick("quality_decay_epoch", 200, 10)
    pick("quality_sgd_lr", 5.0, 0.5)
    pick("memory_size", (1200, 800), (64, 48))
    pick("memory_epochs", 6, 4)
    pick("memory_search", [(1200, 800), (1800, 1200), (2400, 1600), (3000, 2000), (3600, 2400)],
         [(64, 48), (96, 64)])
    pick("memory_search_epochs", 2, 2)
    if args.memory_limit_mb is None:
        args.memory_limit_mb = 0.9 * memory_available_mb()
    if args.all:
        args.quality = args.memory = True
    if args.warmup < 1 or args.iters < 1:
        raise SystemExit("--warmup and --iters must be at least 1")
    if args.memory_epochs < 2:
        raise SystemExit("--memory-epochs must be at least 2 (RSS after epoch 2 is the reference)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = apply_defaults(build_parser().parse_args(argv))
    python = mxnet_python(args.python)
    venv = args.bench_venv.resolve()
    tpython = None
    if args.setup or not (args.no_torch or args.no_speed):
        if not torch_ready(venv):
            setup_torch(venv, python)
        if args.setup:
            print(f"ready: {bench_python(venv)}")
            return 0
        tpython = str(bench_python(venv))

    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    print(f"neural-style benchmark: {cpu_model()}, {cores} cores, {memory_total_mb() / 1024:.1f} GiB; "
          f"load average {load:.2f}", flush=True)
    if load > 0.25 * cores:
        print(f"warning: the machine is busy (load {load:.2f} on {cores} cores): timings will be slower and noisier "
              "than on a quiet machine", flush=True)

    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "commit": git_commit(),
        "cpu": cpu_model(), "cores": cores, "memory_gb": memory_total_mb() / 1024, "load": load,
        "python": platform.python_version(), "iters": args.iters, "warmup": args.warmup, "quick": args.quick,
    }
    work = Path(tempfile.mkdtemp(prefix="neural-style-bench-"))
    check = None
    speed: list[dict] = []
    quality = memory = None
    try:
        info.update(run_worker(python, MXNET_WORKER, "info", {}).result)
        if Path(info["package"]) != ROOT / "neural_style":
            raise WorkerError(f"the workers import neural_style from {info['package']}, not from {ROOT}")
        print(f"MXNet {info['mxnet']} (oneDNN {'on' if info['mkldnn'] else 'off'}), numpy {info['numpy']}, "
              f"package {info['package']}", flush=True)
        print(f"CPU instruction sets: {cpu_features_text(info['cpu_features'])}; DNNL_MAX_CPU_ISA "
              f"{info['onednn_max_isa'] or 'not set'}", flush=True)
        info["sgemm"] = measure_sgemm(python, args.sgemm_size)
        print(f"sgemm: {info['sgemm']['gflops']:.1f} GFLOP/s (numpy {info['sgemm']['numpy']}, float32 "
              f"{args.sgemm_size}x{args.sgemm_size}, best of {info['sgemm']['repeats']})", flush=True)
        if not args.no_speed:
            data = str(work / "inputs.npz")
            prep = run_worker(python, MXNET_WORKER, "prepare", {
                "out": data, "sizes": [list(s) for s in args.sizes], "check_size": list(args.check_size)}).result
            info["pair"] = prep["pair"]
            if prep["layer_kinds"] != vgg19_layer_kinds():
                raise WorkerError(f"the package's VGG19 layers 0..28 are not the ones counted here: {prep['layer_kinds']}")
            check = measure_check(python, tpython, data, work)
            print(check_text(check), flush=True)
            if tpython is not None:
                info["torch"] = check["torch"]["torch"]
            for what, loss, grad in (("PyTorch and MXNet", "torch_vs_mxnet_loss", "torch_vs_mxnet_grad"),
                                     ("The lecture's network and the package's", "lecture_vs_default_loss",
                                      "lecture_vs_default_grad")):
                if loss in check and (check[loss] > LOSS_TOLERANCE or check[grad] > GRAD_TOLERANCE):
                    raise WorkerError(f"{what} do not compute the same thing: losses differ by {check[loss]:.2e} "
                                      f"(at most {LOSS_TOLERANCE:g}), image gradients by {check[grad]:.2e} "
                                      f"(at most {GRAD_TOLERANCE:g})")
            print(f"\nSeconds per iteration: median of {args.iters} after {args.warmup} warm-up", flush=True)
            speed = measure_speed(args, python, tpython, data, info)
            print_table("s/iter; x = speed-up (their s / this row's s); GFLOP/s = conv FLOPs of layers 0..28, "
                        "forward + input gradient", SPEED_HEADER, speed_rows(speed, info["sgemm"]["gflops"]))
        if args.quality:
            quality = measure_quality(args, python, info["default_stage"], speed)
            if quality and "runs" in quality:
                print_table(f"Time to T = {quality['target']:.4f}", QUALITY_HEADER, quality_rows(quality))
        if args.memory:
            memory = measure_memory(args, python)
            print_table("Memory (one default-path stage)", MEMORY_HEADER,
                        memory_rows([memory["main"]] + memory["search"]))
            print(f"largest size that fit: {memory['largest'] or 'none'}")
    except WorkerError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.write:
        command = "python scripts/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])
        target = args.write if args.write.is_absolute() else Path.cwd() / args.write
        write_report(target, report_markdown(info, check, speed, quality, memory, command.strip()))
        print(f"\nwrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
