"""Neural style transfer (Gatys et al.) in MXNet/Gluon, following the d2l.ai / STAT 157 lecture."""
from . import runtime as _runtime

# Both before MXNet is first imported: it sizes its thread pool then, and starts its threads.
_runtime.set_threads()
_runtime.keep_freed_memory()

__version__ = "0.1.0"

from .config import LECTURE_STAGES, Settings, Stage  # noqa: E402
from .train import Progress, Result, transfer  # noqa: E402
from .api import stylize  # noqa: E402
from .metadata import read_metadata, read_settings  # noqa: E402
from .batch import batch  # noqa: E402

__all__ = ["LECTURE_STAGES", "batch", "Progress", "Result", "Settings", "Stage", "read_metadata", "read_settings",
           "stylize", "transfer", "__version__"]
