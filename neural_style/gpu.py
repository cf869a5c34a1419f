"""Whether a GPU can run neural-style here, and the CUDA libraries `make gpu` installs.

Everything here uses only the standard library and never imports MXNet: the driver is asked
through ``libcuda.so.1`` with ctypes (no CUDA toolkit needed), so the verdict is available where
MXNet cannot even be imported (a CUDA build of MXNet links the driver and fails to import
without one). ``python3 neural_style/gpu.py`` prints it with Python 3.8 or newer.

What MXNet 1.9.1's CUDA wheels can run on comes from inspecting ``mxnet-cu117==1.9.1``: its
kernels are compiled for sm_50, 60, 70, 80 and 86 with no PTX, so they run on compute
capability 5.0 to 8.9 and on nothing from 9.0 on. This project has not run it on a GPU.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

DRIVER_LIBRARY = "libcuda.so.1"

#: Compute capabilities with kernels in MXNet 1.9.1's CUDA wheels: a cubin runs on the later
#: minor versions of its major, so sm_50 .. sm_86 cover 5.0 to 8.9; without PTX, 9.0 gets none.
FIRST_CAPABILITY = (5, 0)
FIRST_CAPABILITY_WITHOUT_KERNELS = (9, 0)
#: cuDriverGetVersion of a driver for CUDA 11.0, the oldest the CUDA 11 libraries accept.
MIN_DRIVER_VERSION = 11000

# CUdevice_attribute values (cuda.h).
_CAPABILITY_MAJOR = 75
_CAPABILITY_MINOR = 76

#: The folders (nvidia/NAME/lib) of the nvidia-*-cu11 wheels in requirements-gpu.txt, each after
#: the ones its libraries need: cuSOLVER needs cuBLAS and cuSPARSE, cuDNN needs cuBLAS and NVRTC.
NVIDIA_PACKAGES = ("cuda_runtime", "cuda_nvrtc", "nvtx", "cublas", "cufft", "curand", "cusparse",
                   "cusolver", "cudnn", "nccl")
#: Not preloaded: loaded globally, NVBLAS would take over the BLAS calls of MXNet's own OpenBLAS.
NOT_PRELOADED = ("libnvblas.",)

#: Where a CPU-only MXNet gets its CUDA build from.
GPU_SETUP = "run `make gpu` (mxnet-cu117 1.9.1 and the CUDA 11 libraries from pip, in .venv-gpu)"
USE_CPU = "use the CPU (--device cpu)"


@dataclass(frozen=True)
class GPU:
    """One device as the driver reports it."""

    index: int
    name: str
    capability: tuple[int, int]

    def __str__(self) -> str:
        return f"GPU {self.index} ({self.name}, compute capability {self.capability[0]}.{self.capability[1]})"


@dataclass(frozen=True)
class Driver:
    """What ``libcuda.so.1`` says: whether it loads, its CUDA version and its GPUs."""

    found: bool
    version: Optional[int] = None  # 1000 * major + 10 * minor, as cuDriverGetVersion gives it
    gpus: tuple[GPU, ...] = ()
    error: Optional[str] = None  # why there are no GPUs, e.g. "cuInit: CUDA_ERROR_NO_DEVICE"

    def version_text(self) -> str:
        """'12.4' for 12040."""
        return "unknown" if self.version is None else f"{self.version // 1000}.{self.version % 1000 // 10}"


@dataclass(frozen=True)
class Verdict:
    """Whether a GPU can run neural-style, and why (or why not) in one sentence."""

    usable: bool
    subject: str  # "GPU 0 (Tesla T4, compute capability 7.5)", or "GPU" where there is none to name
    reason: str

    def __str__(self) -> str:
        return f"{self.subject} {'usable' if self.usable else 'not usable'}: {self.reason}"


def _error_name(cuda: ctypes.CDLL, code: int) -> str:
    name = ctypes.c_char_p()
    if cuda.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
        return name.value.decode()
    return f"error {code}"


def probe_driver(library: str = DRIVER_LIBRARY) -> Driver:
    """Ask the NVIDIA driver library for its CUDA version and every GPU's name and capability."""
    try:
        cuda = ctypes.CDLL(library)
    except OSError:
        return Driver(found=False)
    version = ctypes.c_int()
    driver_version = version.value if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 else None

    def call(function: str, *args: object) -> Optional[str]:
        code = getattr(cuda, function)(*args)
        return None if code == 0 else f"{function}: {_error_name(cuda, code)}"

    count = ctypes.c_int()
    error = call("cuInit", 0) or call("cuDeviceGetCount", ctypes.byref(count))
    if error:
        return Driver(True, driver_version, (), error)
    gpus = []
    for index in range(count.value):
        device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name = ctypes.create_string_buffer(256)
        error = (call("cuDeviceGet", ctypes.byref(device), index)
                 or call("cuDeviceGetName", name, len(name), device)
                 or call("cuDeviceGetAttribute", ctypes.byref(major), _CAPABILITY_MAJOR, device)
                 or call("cuDeviceGetAttribute", ctypes.byref(minor), _CAPABILITY_MINOR, device))
        if error:
            return Driver(True, driver_version, tuple(gpus), error)
        gpus.append(GPU(index, name.value.decode(errors="replace"), (major.value, minor.value)))
    return Driver(True, driver_version, tuple(gpus), None if gpus else "the driver counts 0 GPUs")


def verdict(driver: Driver, cuda_build: bool, index: int = 0) -> Verdict:
    """Whether GPU ``index`` can run MXNet 1.9.1, from the driver's answer and whether the
    installed MXNet is a CUDA build. Reasons that no MXNet could fix come first."""
    if not driver.found:
        return Verdict(False, "GPU", f"no NVIDIA driver ({DRIVER_LIBRARY} not found), so no GPU can be used; {USE_CPU}")
    if driver.version is not None and driver.version < MIN_DRIVER_VERSION:
        return Verdict(False, "GPU", f"the NVIDIA driver is for CUDA {driver.version_text()}, and MXNet 1.9.1's "
                                     f"CUDA 11 libraries need one for CUDA 11.0 or newer: update the driver, or {USE_CPU}")
    if not driver.gpus:
        return Verdict(False, "GPU", f"the NVIDIA driver shows no GPU ({driver.error}); {USE_CPU}")
    if index >= len(driver.gpus):
        return Verdict(False, f"GPU {index}", f"it does not exist: the driver shows {len(driver.gpus)} "
                                              f"(0 to {len(driver.gpus) - 1})")
    gpu = driver.gpus[index]
    if gpu.capability >= FIRST_CAPABILITY_WITHOUT_KERNELS:
        return Verdict(False, str(gpu), "MXNet 1.9.1's CUDA wheels have kernels for compute capability 5.0 to 8.9 "
                                        "only, none for 9.0 or newer (\"no kernel image is available for execution on "
                                        "the device\"); use a 5.0 to 8.9 GPU (T4, V100, A100, RTX 30 or 40 series, L4) "
                                        "or the CPU (--device cpu)")
    if gpu.capability < FIRST_CAPABILITY:
        return Verdict(False, str(gpu), f"MXNet 1.9.1's CUDA wheels have kernels for compute capability 5.0 to 8.9 "
                                        f"only; {USE_CPU}")
    if not cuda_build:
        return Verdict(False, str(gpu), f"this MXNet is a CPU-only build (the GPU itself would do): {GPU_SETUP}")
    return Verdict(True, str(gpu), "MXNet is a CUDA build, and its kernels cover compute capability 5.0 to 8.9 "
                                   "(not tried on a GPU by this project)")


def mxnet_distribution() -> Optional[tuple[str, str]]:
    """Name and version of the installed distribution that provides ``mxnet`` (``mxnet``,
    ``mxnet-cu117``, ...), found beside the package without importing it."""
    spec = importlib.util.find_spec("mxnet")
    if spec is None or spec.origin is None:
        return None
    for info in sorted(Path(spec.origin).parent.parent.glob("mxnet*.dist-info")):
        metadata = importlib.metadata.PathDistribution(info).metadata
        if metadata["Name"]:
            return metadata["Name"], metadata["Version"]
    return None


def is_cuda_distribution(name: str) -> bool:
    """Whether a distribution name is one of MXNet's CUDA builds (mxnet-cu117, mxnet_cu112, ...)."""
    return re.fullmatch(r"mxnet[-_.]cu\d+\w*", name, re.IGNORECASE) is not None


def installed_cuda_build() -> bool:
    """Whether the installed MXNet distribution is a CUDA build, without importing it."""
    installed = mxnet_distribution()
    return installed is not None and is_cuda_distribution(installed[0])


def describe(driver: Optional[Driver] = None, cuda_build: Optional[bool] = None) -> str:
    """The driver, then each GPU's verdict (or the one verdict where there is no GPU), a line
    each: what ``neural-style doctor`` and the notebook print. Probes what is not given."""
    driver = probe_driver() if driver is None else driver
    cuda_build = installed_cuda_build() if cuda_build is None else cuda_build
    if not driver.found:
        lines = [f"NVIDIA driver: not found ({DRIVER_LIBRARY})"]
    else:
        lines = [f"NVIDIA driver: found, for CUDA {driver.version_text()}"
                 + (f" ({driver.error})" if driver.error else "")]
    lines += [str(verdict(driver, cuda_build, i)) for i in range(max(1, len(driver.gpus)))]
    return "\n".join(lines)


def require_gpu(index: int = 0, cuda_build: Optional[bool] = None) -> GPU:
    """GPU ``index`` if it can run MXNet 1.9.1, else ``RuntimeError`` with the verdict.
    ``cuda_build`` defaults to whether the installed MXNet distribution is a CUDA one."""
    driver = probe_driver()
    result = verdict(driver, installed_cuda_build() if cuda_build is None else cuda_build, index)
    if not result.usable:
        raise RuntimeError(str(result))
    return driver.gpus[index]


def nvidia_roots() -> list[Path]:
    """The ``nvidia`` folders of site-packages that pip's nvidia-* wheels install into."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def preload_nvidia_libraries(roots: Iterable[Path]) -> tuple[list[Path], dict[Path, str]]:
    """Load ``ROOT/PACKAGE/lib/*.so*`` globally (RTLD_GLOBAL), dependencies first, so that
    ``libmxnet.so``, which asks for them by name, gets them without LD_LIBRARY_PATH.

    Packages go in NVIDIA_PACKAGES's order (others after); a library whose own dependencies are
    not loaded yet is tried again after the rest. Returns the libraries loaded, in order, and
    the dlopen error of each one that could not be."""
    rank = {name: i for i, name in enumerate(NVIDIA_PACKAGES)}
    folders = sorted((folder for root in roots for folder in Path(root).glob("*/lib")),
                     key=lambda folder: (rank.get(folder.parent.name, len(rank)), str(folder)))
    pending = [path for folder in folders for path in sorted(folder.glob("*.so*"))
               if not path.name.startswith(NOT_PRELOADED)]
    loaded: list[Path] = []
    errors: dict[Path, str] = {}
    while pending:
        errors = {}
        for path in pending:
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                loaded.append(path)
            except OSError as e:
                errors[path] = str(e)
        if len(errors) == len(pending):
            break
        pending = list(errors)
    return loaded, errors


def preload_for_mxnet() -> tuple[list[Path], dict[Path, str]]:
    """Before MXNet is first imported: if it is a CUDA build, preload pip's CUDA libraries (see
    preload_nvidia_libraries) and silence cuDNN's version warning (MXNet 1.9.1 was built with
    cuDNN 8.5, `make gpu` installs 8.9) unless MXNET_CUDNN_LIB_CHECKING is set. A CPU build: nothing."""
    if not installed_cuda_build():
        return [], {}
    os.environ.setdefault("MXNET_CUDNN_LIB_CHECKING", "0")
    return preload_nvidia_libraries(nvidia_roots())


if __name__ == "__main__":
    print(describe())
