"""The command line, end to end on tiny images."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neural_style", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def pair(tmp_path, rng):
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    Image.fromarray(smooth_image(rng, 90, 120)).save(content)
    Image.fromarray(smooth_image(rng, 50, 50)[:, ::-1]).save(style)
    return content, style


def test_end_to_end_writes_image_plot_and_log(tmp_path, pair):
    out = tmp_path / "new" / "result.png"
    proc = run_cli(*pair, "-o", out, "--size", "32x24", "64x48", "--epochs", "3", "2",
                   "--optimizer", "adam", "--lr", "0.05", "--report-every", "1", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (64, 48) and im.mode == "RGB"
    with Image.open(tmp_path / "new" / "result_loss.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    log = json.loads((tmp_path / "new" / "result.json").read_text())
    assert log["settings"]["stages"][1]["width"] == 64 and log["settings"]["seed"] == 1
    assert log["settings"]["activation_scale"] > 0
    assert [(h["stage"], h["epoch"]) for h in log["history"]] == [(0, 1), (0, 2), (1, 1)]
    assert all(np.isfinite(h["total"]) for h in log["history"])
    assert "stage 2/2 64x48" in proc.stderr  # the progress bar
    assert str(out) in proc.stdout


def test_jpeg_output_with_lbfgs(tmp_path, pair):
    """L-BFGS is the package's own optimizer: the command line knows it before training starts."""
    out = tmp_path / "r.jpg"
    proc = run_cli(*pair, "-o", out, "--size", "32x24", "--epochs", "2", "--optimizer", "lbfgs", "--lr", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (32, 24)


def test_help_documents_every_knob():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for flag in ("--size", "--epochs", "--lr", "--lr-decay-epoch", "--optimizer", "--content-weight",
                 "--style-weight", "--tv-weight", "--weights", "--scale", "--device", "--seed",
                 "--overwrite", "--max-pixels", "--precision", "--tile-size", "--max-memory"):
        assert flag in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--size", "0x10"], "must be positive"),
    (["--size", "300x"], "WIDTHxHEIGHT"),  # "300" alone is a long side (issue 5)
    (["--epochs", "-3"], "greater than 0"),
    (["--size", "32x24", "64x48", "--epochs", "1", "2", "3"], "3 values for 2 stages"),
])
def test_bad_options_exit_2(pair, args, message):
    proc = run_cli(*pair, *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_one_image_is_an_error(pair):
    proc = run_cli(pair[0])
    assert proc.returncode == 2 and "CONTENT and a STYLE" in proc.stderr


def test_gpu_without_cuda_gives_the_doctors_verdict_before_any_work(tmp_path, pair):
    import mxnet as mx

    from neural_style import gpu

    if mx.runtime.Features().is_enabled("CUDA"):
        pytest.skip("this MXNet has CUDA")
    proc = run_cli(*pair, "-o", tmp_path / "x.png", "--size", "32x24", "--epochs", "1", "--device", "gpu")
    verdict = gpu.verdict(gpu.probe_driver(), cuda_build=False)
    assert not verdict.usable
    assert proc.returncode == 2 and proc.stderr == f"neural-style: error: {verdict}\n"
    doctor = run_cli("doctor")
    assert doctor.returncode == 0 and str(verdict) in doctor.stdout


def test_help_and_the_doctor_run_without_loading_mxnet():
    """A CUDA build of MXNet cannot be imported without a driver: the help and the doctor's
    report must not need it, nor `import neural_style` itself."""
    probe = ("import sys, neural_style; from neural_style.cli import build_parser; build_parser().format_help(); "
             "import neural_style.doctor; print('mxnet' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
