"""The exceptions that end a run early; each carries the work done so far."""
from __future__ import annotations

import contextlib
import re
import traceback
from pathlib import Path
from typing import Any, Optional

from mxnet import base, nd

from . import runtime

# How MXNet (CPU and GPU), oneDNN (a memory it could not allocate) and numpy word a failed
# allocation, and MXNet's limit on a tensor's size.
OUT_OF_MEMORY = re.compile(r"out of memory|bad_alloc|failed to allocate|cannot allocate memory|"
                           r"could not create a memory object|larger than 2\^31 elements", re.IGNORECASE)


class PartialWork(BaseException):
    """Mixed into the exceptions that end a run early; they carry the work done so far.

    ``image`` is the stage's last image whose loss was finite (NCHW, preprocessed), where the
    stage had one; transfer() turns it and the finished stages into ``result`` (None when no
    image exists yet), ready to be saved.
    """

    stage: int = 0
    epoch: int = 0
    image: Optional[nd.NDArray] = None
    result: Optional[Any] = None  # a schedule.Result
    checkpoint: Optional[Path] = None  # Interrupted under transfer(save_to=...): where it was written

    def at(self, stage: int, epoch: int, image: Optional[nd.NDArray] = None) -> "PartialWork":
        """This error, saying where the run stopped and the last good image."""
        self.stage, self.epoch, self.image = stage, epoch, image
        return self


class DivergedError(PartialWork, RuntimeError):
    """The loss stayed non-finite although the learning rate was lowered several times."""


class Interrupted(PartialWork, KeyboardInterrupt):
    """Training stopped because ``stop`` was set (the command line sets it on SIGINT/SIGTERM)."""


class OutOfMemory(PartialWork, RuntimeError):
    """A stage did not fit in memory; the message says its size and what to try."""


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or bool(OUT_OF_MEMORY.search(str(error)))


def drain_engine() -> None:
    """Wait for the work MXNet's engine holds and drop the errors it stored: after an allocation
    failed, the work queued behind it fails too, and the engine raises that again when Python
    exits (MXNotifyShutdown), C++ traceback and all, unless someone has waited for it."""
    with contextlib.suppress(base.MXNetError):
        nd.waitall()


def free_failed_work(error: BaseException) -> None:
    """Free what a failed allocation's work still holds, so that saving the last good image finds
    memory: the arrays in the locals of the frames it unwound (its traceback keeps them), and the
    freed memory that glibc keeps for the next epoch (runtime.keep_freed_memory), handed back."""
    traceback.clear_frames(error.__traceback__)
    runtime.keep_freed_memory(False)
