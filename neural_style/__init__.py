"""Neural style transfer (Gatys et al.) in MXNet/Gluon, following the d2l.ai / STAT 157 lecture."""
import importlib

from . import gpu as _gpu, runtime as _runtime

# All before MXNet is first imported: it sizes its thread pool then, starts its threads, and
# (a CUDA build) looks for its CUDA libraries.
_runtime.set_threads()
_runtime.one_scratch_space()
_runtime.keep_freed_memory()
_gpu.preload_for_mxnet()  # a CUDA build's libraries from pip's nvidia-* wheels, without LD_LIBRARY_PATH

from .version import __version__  # noqa: E402

# The public names, each imported from its module on first use, so that `neural-style --help`
# and `neural-style doctor` run without MXNet (which a CUDA build cannot import without a driver).
_PUBLIC = {"LECTURE_STAGES": "config", "PRESETS": "config", "Settings": "config", "Stage": "config",
           "settings_for": "config", "Progress": "hooks",
           "Result": "schedule", "transfer": "schedule", "stylize": "api", "batch": "jobs",
           "read_metadata": "metadata", "read_settings": "metadata"}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'neural_style' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
