"""Process-wide settings that make MXNet fast on a CPU, applied when the package is imported."""
from __future__ import annotations

import ctypes
import os

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


def set_threads() -> None:
    """Use every core: MXNet sizes its OpenMP pool from OMP_NUM_THREADS when it is first
    imported, and without it uses half the cores (see WEIGHTS.md)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


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
