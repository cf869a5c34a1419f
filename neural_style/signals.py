"""SIGINT and SIGTERM handled for the length of a run (the command line's and the batch's)."""
from __future__ import annotations

import signal
import threading
from typing import Any


class SignalHandlers:
    """A context that routes SIGINT and SIGTERM to ``handle`` while it is open (only where
    signals can be handled: the main thread), and puts the previous handlers back after."""

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def handle(self, signum: int, frame) -> None:
        raise NotImplementedError
