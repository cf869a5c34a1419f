"""`neural-style doctor` on this machine, and the pieces of its report."""
import json
import subprocess
import sys

import pytest

from neural_style import doctor, gpu
from neural_style.weights import CAFFE_SHA256

no_driver = pytest.mark.skipif(gpu.probe_driver().found, reason="this machine has an NVIDIA driver")


@no_driver
def test_doctor_without_a_driver_says_so_and_exits_cleanly():
    out = subprocess.run([sys.executable, "-m", "neural_style.doctor"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("neural-style ")
    assert f"Python: {sys.version.split()[0]} ({sys.executable})" in lines
    assert any(line.startswith("MXNet: mxnet 1.9.1: CUDA no, cuDNN no, oneDNN ") for line in lines)
    assert any(line.startswith("CPU: ") and "avx2 " in line and "amx " in line for line in lines)
    assert any(line.startswith("Threads: ") and "OMP_NUM_THREADS=" in line for line in lines)
    assert any(line.startswith("Weights: ") and line.endswith(f"sha256 {CAFFE_SHA256} ok") for line in lines)
    assert "NVIDIA driver: not found (libcuda.so.1)" in lines
    assert "GPU not usable: no NVIDIA driver (libcuda.so.1 not found), so no GPU can be used; " \
           "use the CPU (--device cpu)" in lines
    assert "Traceback" not in out.stderr


@no_driver
def test_doctor_json_holds_the_same_report(capsys):
    assert doctor.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["python"]["executable"] == sys.executable
    assert report["mxnet"]["features"]["CUDA"] is False
    assert report["weights"]["ok"] is True and report["weights"]["sha256"] == CAFFE_SHA256
    assert report["gpu"]["driver"]["found"] is False and report["gpu"]["gpus"] == []
    assert [v["usable"] for v in report["gpu"]["verdicts"]] == [False]
    assert report["gpu"]["cuda_libraries"] == {"loaded": [], "failed": {}}  # a CPU build preloads nothing


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx avx2 avx512f avx512bw\n\n"
                       "processor\t: 1\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx avx2 avx512f avx512bw\n")
    assert doctor.cpu_info(cpuinfo) == {"model": "Some CPU", "features": {
        "avx2": True, "avx512": True, "avx512_bf16": False, "amx": False}}
    assert doctor.cpu_info(tmp_path / "missing") == {"model": None, "features": {}}


def test_a_corrupt_weights_file_is_reported_with_the_fix(tmp_path, monkeypatch):
    bad = tmp_path / "vgg19.bin"
    bad.write_bytes(b"not the weights")
    monkeypatch.setattr(doctor, "caffe_weights_path", lambda: bad)
    info = doctor.weights_info()
    assert info["ok"] is False and "corrupt" in info["problem"] and "--force-reinstall" in info["problem"]
    bad.unlink()
    assert "missing" in doctor.weights_info()["problem"]


def test_help_describes_the_doctor(capsys):
    with pytest.raises(SystemExit) as exit_:
        doctor.main(["--help"])
    assert exit_.value.code == 0
    assert "--json" in capsys.readouterr().out
