"""Neural style transfer (Gatys et al.) in MXNet/Gluon, following the d2l.ai / STAT 157 lecture."""
import os as _os

# MXNet sizes its OpenMP pool from this variable when it is first imported, and by default
# uses only half the cores; all of them is measurably faster (see WEIGHTS.md).
_os.environ.setdefault("OMP_NUM_THREADS", str(_os.cpu_count() or 1))

__version__ = "0.1.0"

from .config import LECTURE_STAGES, Settings, Stage  # noqa: E402
from .train import Progress, Result, transfer  # noqa: E402
from .api import stylize  # noqa: E402
from .metadata import read_metadata, read_settings  # noqa: E402

__all__ = ["LECTURE_STAGES", "Progress", "Result", "Settings", "Stage", "read_metadata", "read_settings",
           "stylize", "transfer", "__version__"]
