"""What the CPU offers: its instruction sets (from /proc/cpuinfo), and the precision that follows.

Imported before MXNet (runtime.py asks the kernel for AMX by these flags), so nothing here
imports MXNet.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .config import Settings

#: The CPU flags reported, each as the /proc/cpuinfo flags that make it count.
CPU_FEATURES = {"avx2": ("avx2",), "avx512": ("avx512f",), "avx512_bf16": ("avx512_bf16",),
                "amx": ("amx_tile", "amx_bf16")}

#: The instruction sets of which any one makes oneDNN's bfloat16 convolutions fast.
BFLOAT16_FEATURES = ("avx512_bf16", "amx")


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model name and which of CPU_FEATURES it has (Linux; empty elsewhere)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {"model": None, "features": {}}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name"),
            "features": {name: all(f in flags for f in needed) for name, needed in CPU_FEATURES.items()}}


def has_fast_bfloat16(features: Mapping[str, bool]) -> bool:
    """Whether a CPU with these features (cpu_info()'s) runs bfloat16 convolutions natively."""
    return any(features.get(name, False) for name in BFLOAT16_FEATURES)


def resolve_precision(precision: str, device: str, features: Mapping[str, bool]) -> str:
    """The precision a run uses: 'auto' becomes 'bfloat16' on a CPU with AVX512_BF16 or AMX,
    'float32' elsewhere (other CPUs and GPUs); 'float32' and 'bfloat16' stay as they are."""
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and has_fast_bfloat16(features) else "float32"


def run_precision(settings: "Settings") -> str:
    """settings.precision with 'auto' decided for this machine's CPU (/proc/cpuinfo is read only
    for 'auto': the memory model asks once per tile size it tries)."""
    if settings.precision != "auto":
        return settings.precision
    return resolve_precision(settings.precision, settings.device, cpu_info()["features"])
