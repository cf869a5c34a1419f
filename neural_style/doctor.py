"""``neural-style doctor``: what this machine offers neural-style, and whether its GPUs can work.

Python, MXNet's build, the CPU's instruction sets, threads, the VGG19 weights file, the NVIDIA
driver and each GPU's verdict (see gpu.py). It changes nothing and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from . import __version__, gpu
from .cpu import cpu_info
from .weights import CAFFE_INSTALL, CAFFE_SHA256, WeightsError, caffe_weights_path, sha256

#: MXNet's names (mx.runtime.Features) of the build features reported.
MXNET_FEATURES = {"CUDA": "CUDA", "cuDNN": "CUDNN", "oneDNN": "MKLDNN"}


def mxnet_info() -> dict[str, Any]:
    """The installed MXNet distribution and its build features."""
    import mxnet as mx

    installed = gpu.mxnet_distribution()
    features = mx.runtime.Features()
    return {"distribution": installed[0] if installed else None, "version": mx.__version__,
            "features": {name: features.is_enabled(key) for name, key in MXNET_FEATURES.items()}}


def weights_info() -> dict[str, Any]:
    """Where the default (Caffe) VGG19 weights file is, and whether its checksum is right."""
    try:
        path = caffe_weights_path()
    except WeightsError as e:
        return {"path": None, "ok": False, "problem": str(e)}
    if not path.is_file():
        return {"path": str(path), "ok": False, "problem": f"missing; run `{CAFFE_INSTALL} --force-reinstall`"}
    digest = sha256(path)
    return {"path": str(path), "sha256": digest, "ok": digest == CAFFE_SHA256,
            "problem": None if digest == CAFFE_SHA256 else
            f"sha256 is not {CAFFE_SHA256}: corrupt; run `{CAFFE_INSTALL} --force-reinstall`"}


def gpu_info(cuda_build: bool) -> dict[str, Any]:
    """The driver's answer, each GPU's verdict, and the CUDA libraries preloaded from pip."""
    driver = gpu.probe_driver()
    verdicts = [gpu.verdict(driver, cuda_build, i) for i in range(max(1, len(driver.gpus)))]
    loaded, failed = gpu.preload_for_mxnet()
    return {
        "driver": {"found": driver.found, "cuda_version": driver.version_text() if driver.found else None,
                   "error": driver.error},
        "gpus": [{"index": g.index, "name": g.name, "capability": "%d.%d" % g.capability} for g in driver.gpus],
        "verdicts": [{"usable": v.usable, "text": str(v)} for v in verdicts],
        "describe": gpu.describe(driver, cuda_build),
        "cuda_libraries": {"loaded": [str(p) for p in loaded], "failed": {str(p): e for p, e in failed.items()}},
    }


def collect() -> dict[str, Any]:
    """Everything the doctor reports, as plain data (what ``--json`` prints)."""
    mxnet = mxnet_info()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "neural_style": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "mxnet": mxnet,
        "cpu": cpu_info(),
        "threads": {"cores": os.cpu_count(), "usable_cores": affinity,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "weights": weights_info(),
        "gpu": gpu_info(bool(mxnet["features"]["CUDA"])),
    }


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def format_report(report: dict[str, Any]) -> str:
    """The report as the lines ``neural-style doctor`` prints."""
    py, mx, cpu, threads, weights, gpus = (report[k] for k in ("python", "mxnet", "cpu", "threads", "weights", "gpu"))
    lines = [
        f"neural-style {report['neural_style']}",
        f"Python: {py['version']} ({py['executable']})",
        f"MXNet: {mx['distribution'] or 'mxnet'} {mx['version']}: "
        + ", ".join(f"{name} {_yes(on)}" for name, on in mx["features"].items()),
        f"CPU: {cpu['model'] or 'unknown'}: " + (", ".join(f"{name} {_yes(on)}" for name, on in cpu["features"].items())
                                                 or "instruction sets unknown"),
        f"Threads: {threads['usable_cores']} of {threads['cores']} cores usable, "
        f"OMP_NUM_THREADS={threads['OMP_NUM_THREADS']}",
        f"Weights: {weights['path'] or 'not found'}"
        + (f", sha256 {weights['sha256']} ok" if weights["ok"] else f": {weights['problem']}"),
        *gpus["describe"].splitlines(),
    ]
    libraries = gpus["cuda_libraries"]
    if libraries["loaded"] or libraries["failed"]:
        lines.append(f"CUDA libraries from pip: {len(libraries['loaded'])} loaded")
        lines += [f"  not loaded: {path}: {error}" for path, error in libraries["failed"].items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``neural-style doctor [--json]``: print the report; always exits 0."""
    parser = argparse.ArgumentParser(
        prog="neural-style doctor",
        description="What this machine offers neural-style: Python, MXNet's build, CPU, threads, the "
                    "VGG19 weights, the NVIDIA driver and whether each GPU can work (and why not).")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = collect()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
