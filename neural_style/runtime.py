"""Process-wide settings that make MXNet fast on a CPU, applied when the package is imported."""
from __future__ import annotations

import ctypes
import os
import platform
from typing import Mapping, Optional

from .cpu import cpu_info

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
DEFAULT_MMAP_MAX = 65536

#: Above this many pixels a stage lets glibc return memory again. Measured before the Gram
#: matrix became an inner product: 1200x800 peaked near 6 GB either way, and 2400x1600 passed the
#: benchmark's 20.9 GB limit only with freed memory kept.
KEEP_MEMORY_MAX_PIXELS = 1_500_000

#: Set to "system" to leave malloc as it is.
MALLOC_VARIABLE = "NEURAL_STYLE_MALLOC"

# Linux's arch_prctl (x86_64 system call 158) asking for the AMX tile data state
# (arch/x86/include/uapi/asm/prctl.h: ARCH_REQ_XCOMP_PERM; XFEATURE_XTILEDATA is state component 18).
SYS_ARCH_PRCTL = 158
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18

#: oneDNN's cap on the instruction sets it dispatches to; MXNet 1.9.1's oneDNN 2.4 leaves AMX
#: out unless it is named here.
ONEDNN_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
ONEDNN_AMX_ISA = "AVX512_CORE_AMX"


def set_threads() -> None:
    """Use every core: MXNet sizes its OpenMP pool from OMP_NUM_THREADS when it is first
    imported, and without it uses half the cores (see WEIGHTS.md)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


#: MXNet's variable for the copies of the CPU's scratch space ("temp space").
TEMP_COPY_VARIABLE = "MXNET_CPU_TEMP_COPY"


def one_scratch_space() -> None:
    """Give MXNet's CPU operators one copy of scratch space instead of four. Operators take the
    copies in turn and each copy grows to the largest request any operator has made (two block-1
    feature maps: 66 MB at 450x300), so MXNet's default of 4 ended up holding four such buffers:
    the peak of allocated memory was 0.8 GB higher at 900x600 (docs/BENCHMARKS.md). The copies
    let operators run at once on several engine threads; MXNet runs CPU operators on one
    (MXNET_CPU_WORKER_NTHREADS, default 1), so one copy costs no time. A value the user set is
    kept. MXNet reads it when it first needs scratch space: this comes before any MXNet work."""
    os.environ.setdefault(TEMP_COPY_VARIABLE, "1")


def keep_freed_memory(keep: bool = True) -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel.

    MXNet 1.x has no CPU memory pool: operators' outputs are malloc'ed and freed every epoch,
    and glibc returns large blocks to the kernel (munmap, or dropping a thread's whole heap), so
    every epoch faults its feature maps in again, zero-filled page by page: a fifth to a third
    of the CPU time in the kernel (docs/BENCHMARKS.md). Without mmap, with one arena and a high
    trim threshold, the next epoch reuses the same memory. The price is fragmentation: the
    largest images need more memory (2400x1600 passed 20.9 GB with it, 16.9 GB without), so
    train() turns this off above KEEP_MEMORY_MAX_PIXELS (``keep=False``: mmap again for large
    blocks, and what the heap holds free goes back to the kernel). The first call must come before MXNet starts its
    threads. Returns whether the settings took (glibc only).
    """
    if os.environ.get(MALLOC_VARIABLE, "keep") == "system":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        if not keep:
            return libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX) == 1 and libc.malloc_trim(0) in (0, 1)
        return all(libc.mallopt(option, value) == 1 for option, value in (
            (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_ARENA_MAX, 1)))
    except (OSError, AttributeError):  # not glibc
        return False


def allow_amx(features: Optional[Mapping[str, bool]] = None) -> bool:
    """Let oneDNN's bfloat16 convolutions use AMX, where the CPU and the kernel allow it.

    Linux hands a process the (large) AMX register state only once it asks for it; oneDNN 2.4
    does not ask, so an AMX kernel dies of SIGILL. This asks (arch_prctl), and only when the
    kernel agrees lifts oneDNN's cap to AMX (DNNL_MAX_CPU_ISA), which oneDNN reads when it first
    picks a kernel. Called only for a bfloat16 network (schedule.feature_net): a process that
    holds AMX's state ran float32 epochs up to twice as slowly, and erratically, here. Elsewhere (no AMX in ``features``, cpu_info()'s by default; another OS; a kernel before
    5.16) nothing changes and bfloat16 runs on AVX512_BF16. A cap the user set is kept (the
    permission is still asked for, so that a cap of AMX works). Returns whether the kernel agreed.
    """
    features = cpu_info()["features"] if features is None else features
    if not features.get("amx") or platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if not any(name in os.environ for name in ONEDNN_ISA_VARIABLES):
        os.environ["DNNL_MAX_CPU_ISA"] = ONEDNN_AMX_ISA
    return True
