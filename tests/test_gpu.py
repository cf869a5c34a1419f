"""GPU verdicts, the driver probe against a fake libcuda.so.1, and the preloading of pip's CUDA
libraries against a fake nvidia folder (shared libraries built here with the C compiler)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from neural_style import gpu
from neural_style.gpu import GPU, Driver, verdict

GPU_PY = Path(gpu.__file__)
CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None or not sys.platform.startswith("linux"),
                              reason="builds fake shared libraries with a C compiler (Linux)")

T4, V100, A100, RTX4090, H200, K80 = (GPU(0, "Tesla T4", (7, 5)), GPU(0, "Tesla V100-SXM2-16GB", (7, 0)),
                                       GPU(0, "NVIDIA A100-SXM4-40GB", (8, 0)), GPU(0, "NVIDIA GeForce RTX 4090", (8, 9)),
                                       GPU(0, "NVIDIA H200", (9, 0)), GPU(0, "Tesla K80", (3, 7)))


def driver(*gpus: GPU, version: int = 12040, error=None) -> Driver:
    return Driver(True, version, tuple(GPU(i, g.name, g.capability) for i, g in enumerate(gpus)), error)


@pytest.mark.parametrize("drv, cuda_build, index, usable, words", [
    (Driver(False), True, 0, False, "no NVIDIA driver"),
    (Driver(False), False, 0, False, "no NVIDIA driver"),  # the driver first: `make gpu` would not help
    (driver(error="cuInit: CUDA_ERROR_NO_DEVICE"), True, 0, False, "shows no GPU (cuInit: CUDA_ERROR_NO_DEVICE)"),
    (driver(T4, version=10020), True, 0, False, "CUDA 10.2"),
    (driver(T4), True, 0, True, "GPU 0 (Tesla T4, compute capability 7.5) usable"),
    (driver(V100), True, 0, True, "compute capability 7.0) usable"),
    (driver(A100), True, 0, True, "compute capability 8.0) usable"),
    (driver(RTX4090), True, 0, True, "compute capability 8.9) usable"),
    (driver(T4), False, 0, False, "CPU-only build (the GPU itself would do): run `make gpu`"),
    (driver(H200), True, 0, False, "none for 9.0 or newer"),
    (driver(H200), False, 0, False, "none for 9.0 or newer"),  # no build of MXNet 1.9.1 would help
    (driver(GPU(0, "NVIDIA B200", (10, 0))), True, 0, False, "none for 9.0 or newer"),
    (driver(K80), True, 0, False, "5.0 to 8.9 only"),
    (driver(H200, T4), True, 1, True, "GPU 1 (Tesla T4"),
    (driver(H200, T4), True, 0, False, "GPU 0 (NVIDIA H200, compute capability 9.0) not usable"),
    (driver(T4), True, 2, False, "GPU 2 not usable: it does not exist: the driver shows 1 (0 to 0)"),
])
def test_verdict_for_gpus_and_builds(drv, cuda_build, index, usable, words):
    result = verdict(drv, cuda_build, index)
    assert result.usable is usable
    assert words in str(result)
    if not usable:
        assert "not usable" in str(result)


@pytest.mark.parametrize("name, cuda", [("mxnet", False), ("mxnet-mkl", False), ("mxnet-native", False),
                                        ("mxnet-cu117", True), ("mxnet_cu112", True), ("MXNet-CU102mkl", True)])
def test_cuda_builds_are_told_by_their_distribution_name(name, cuda):
    assert gpu.is_cuda_distribution(name) is cuda


def test_describe_gives_the_driver_then_a_verdict_per_gpu():
    lines = gpu.describe(driver(H200, T4), cuda_build=True).splitlines()
    assert lines[0] == "NVIDIA driver: found, for CUDA 12.4"
    assert lines[1].startswith("GPU 0 (NVIDIA H200, compute capability 9.0) not usable: ")
    assert lines[2].startswith("GPU 1 (Tesla T4, compute capability 7.5) usable: ")
    assert len(lines) == 3


def test_require_gpu_raises_the_verdict_or_returns_the_gpu(monkeypatch):
    monkeypatch.setattr(gpu, "probe_driver", lambda: driver(H200, T4))
    with pytest.raises(RuntimeError, match="NVIDIA H200.*none for 9.0 or newer"):
        gpu.require_gpu(0, cuda_build=True)
    with pytest.raises(RuntimeError, match="CPU-only build"):
        gpu.require_gpu(1, cuda_build=False)
    assert gpu.require_gpu(1, cuda_build=True).name == "Tesla T4"


def test_this_mxnet_is_found_without_importing_it():
    name, version = gpu.mxnet_distribution()
    assert name.lower().startswith("mxnet") and version == "1.9.1"


def compile_library(directory: Path, soname: str, source: str, needs: tuple[Path, ...] = ()) -> Path:
    """A shared library named and DT_NEEDED-linked by soname only (no RPATH), like pip's CUDA ones."""
    directory.mkdir(parents=True, exist_ok=True)
    c = directory / f"{soname}.c"
    c.write_text(source)
    out = directory / soname
    links = [arg for lib in needs for arg in (f"-L{lib.parent}", f"-l:{lib.name}")]
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(out), str(c), f"-Wl,-soname,{soname}", *links], check=True)
    c.unlink()
    return out


FAKE_CUDA = textwrap.dedent("""
    #include <string.h>
    static const char *names[] = {"Tesla T4", "NVIDIA H200"};
    static const int caps[][2] = {{7, 5}, {9, 0}};
    int cuDriverGetVersion(int *v) { *v = 12040; return 0; }
    int cuInit(unsigned flags) { return INIT_RESULT; }
    int cuDeviceGetCount(int *n) { *n = 2; return 0; }
    int cuDeviceGet(int *d, int i) { *d = i; return 0; }
    int cuDeviceGetName(char *s, int len, int d) { strncpy(s, names[d], len); return 0; }
    int cuDeviceGetAttribute(int *v, int attribute, int d) {
        if (attribute != 75 && attribute != 76) return 1;
        *v = caps[d][attribute - 75]; return 0;
    }
    int cuGetErrorName(int code, const char **s) { *s = code == 100 ? "CUDA_ERROR_NO_DEVICE" : "?"; return 0; }
""")


@needs_cc
def test_driver_probe_reads_names_and_capabilities_from_the_driver_library(tmp_path):
    # Not named libcuda.so.1: once loaded, that soname would answer every later probe in this process.
    working = compile_library(tmp_path, "libfakecuda-ok.so.1", "#define INIT_RESULT 0\n" + FAKE_CUDA)
    found = gpu.probe_driver(str(working))
    assert found == Driver(True, 12040, (GPU(0, "Tesla T4", (7, 5)), GPU(1, "NVIDIA H200", (9, 0))), None)
    no_device = compile_library(tmp_path, "libfakecuda-none.so.1", "#define INIT_RESULT 100\n" + FAKE_CUDA)
    assert gpu.probe_driver(str(no_device)) == Driver(True, 12040, (), "cuInit: CUDA_ERROR_NO_DEVICE")
    assert gpu.probe_driver(str(tmp_path / "missing.so")) == Driver(False)


# Loads gpu.py by path (it needs nothing of the package), preloads for the MXNet found first on
# sys.path, then loads the fake libmxnet.so, which finds its CUDA libraries only if they were preloaded.
PRELOAD_PROBE = textwrap.dedent("""
    import ctypes, importlib.util, json, os, sys
    gpu_py, site, libmxnet = sys.argv[1:]
    sys.path.insert(0, site)
    spec = importlib.util.spec_from_file_location("gpu_alone", gpu_py)
    gpu = importlib.util.module_from_spec(spec)
    sys.modules["gpu_alone"] = gpu
    spec.loader.exec_module(gpu)
    loaded, failed = gpu.preload_for_mxnet()
    try:
        ctypes.CDLL(libmxnet).mxnet_uses_cuda()
        error = None
    except OSError as e:
        error = str(e)
    print(json.dumps({"loaded": [os.path.basename(p) for p in loaded], "failed": len(failed), "libmxnet_error": error,
                      "cudnn_check": os.environ.get("MXNET_CUDNN_LIB_CHECKING")}))
""")


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory):
    """A site-packages with an mxnet package and nvidia/*/lib of fake CUDA libraries that need
    each other across and within folders, and a fake libmxnet.so (outside it) that needs them."""
    if CC is None or not sys.platform.startswith("linux"):
        pytest.skip("builds fake shared libraries with a C compiler (Linux)")
    root = tmp_path_factory.mktemp("site")
    nvidia = root / "nvidia"
    cudart = compile_library(nvidia / "cuda_runtime" / "lib", "libcudart.so.11.0", "int cudart(void) { return 1; }")
    # Alphabetically before the library it needs, in the same folder: loaded on the second pass.
    lt = compile_library(nvidia / "cublas" / "lib", "libcublasLt.so.11", "int lt(void) { return 2; }")
    cublas = compile_library(nvidia / "cublas" / "lib", "libcublas.so.11",
                             "int lt(void); int cublas(void) { return lt(); }", (lt,))
    compile_library(nvidia / "cublas" / "lib", "libnvblas.so.11", "int sgemm_(void) { return 0; }")
    # A folder named before cublas that needs it: NVIDIA_PACKAGES puts it after.
    cusolver = compile_library(nvidia / "cusolver" / "lib", "libcusolver.so.11",
                               "int cublas(void); int cusolver(void) { return cublas(); }", (cublas,))
    libmxnet = compile_library(root.parent / (root.name + "-mxnet"), "libmxnet.so",
                               "int cudart(void); int cusolver(void);"
                               "int mxnet_uses_cuda(void) { return cudart() + cusolver(); }", (cudart, cusolver))
    (root / "mxnet").mkdir()
    (root / "mxnet" / "__init__.py").write_text("")
    return root, libmxnet


def install_fake_distribution(site: Path, distribution: str) -> None:
    """Make ``distribution`` the one that provides the fake site's mxnet."""
    for info in site.glob("mxnet*.dist-info"):
        shutil.rmtree(info)
    info = site / f"{distribution.replace('-', '_')}-1.9.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.9.1\n")


def run_preload_probe(site: Path, libmxnet: Path, distribution: str) -> dict:
    install_fake_distribution(site, distribution)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "MXNET_CUDNN_LIB_CHECKING")}
    out = subprocess.run([sys.executable, "-c", PRELOAD_PROBE, str(GPU_PY), str(site), str(libmxnet)],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_a_cuda_build_gets_its_libraries_preloaded_in_dependency_order(fake_site):
    site, libmxnet = fake_site
    result = run_preload_probe(site, libmxnet, "mxnet-cu117")
    assert result["libmxnet_error"] is None  # found every library without LD_LIBRARY_PATH
    assert result["failed"] == 0
    loaded = result["loaded"]
    assert sorted(loaded) == ["libcublas.so.11", "libcublasLt.so.11", "libcudart.so.11.0", "libcusolver.so.11"]
    assert loaded.index("libcublasLt.so.11") < loaded.index("libcublas.so.11") < loaded.index("libcusolver.so.11")
    assert result["cudnn_check"] == "0"


def test_a_cpu_build_preloads_nothing(fake_site):
    site, libmxnet = fake_site
    result = run_preload_probe(site, libmxnet, "mxnet")
    assert result["loaded"] == [] and result["cudnn_check"] is None
    assert "libcudart.so.11.0" in result["libmxnet_error"]  # the control: without preloading it cannot load


def test_importing_neural_style_preloads_before_mxnet_is_imported(fake_site):
    site, _ = fake_site
    install_fake_distribution(site, "mxnet-cu117")
    # This mxnet reports what is loaded at the moment neural_style first imports it, and exits.
    (site / "mxnet" / "__init__.py").write_text(
        "maps = open('/proc/self/maps').read()\n"
        "print(all(name in maps for name in ('libcudart.so.11.0', 'libcublas.so.11', 'libcusolver.so.11')))\n"
        "raise SystemExit(0)\n")
    try:
        out = subprocess.run([sys.executable, "-c", "import neural_style.schedule"], cwd=GPU_PY.parent.parent,
                             env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60)
    finally:
        (site / "mxnet" / "__init__.py").write_text("")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
