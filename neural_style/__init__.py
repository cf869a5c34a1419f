"""Neural style transfer (Gatys et al.) in MXNet/Gluon, following the d2l.ai / STAT 157 lecture."""
from . import gpu as _gpu, runtime as _runtime

# Both before MXNet is first imported: it sizes its thread pool then, and starts its threads.
_runtime.set_threads()
_runtime.keep_freed_memory()
_gpu.preload_for_mxnet()  # a CUDA build's libraries from pip's nvidia-* wheels, without LD_LIBRARY_PATH

from .version import __version__  # noqa: E402
from .config import LECTURE_STAGES, Settings, Stage  # noqa: E402
from .hooks import Progress  # noqa: E402
from .schedule import Result, transfer  # noqa: E402
from .api import stylize  # noqa: E402
from .metadata import read_metadata, read_settings  # noqa: E402

__all__ = ["LECTURE_STAGES", "Progress", "Result", "Settings", "Stage", "read_metadata", "read_settings",
           "stylize", "transfer", "__version__"]
