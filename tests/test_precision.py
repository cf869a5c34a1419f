"""--precision: the setting, 'auto' by the CPU's flags, AMX's permission, bfloat16 against float32."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

from neural_style import Settings, Stage, runtime, transfer
from neural_style.config import check_bfloat16
from neural_style.cpu import cpu_info, has_fast_bfloat16, resolve_precision
from neural_style.options import add_settings_arguments, settings_from_args

from conftest import smooth_image

PLAIN = {"avx2": True, "avx512": True, "avx512_bf16": False, "amx": False}
BF16 = {**PLAIN, "avx512_bf16": True}
AMX = {**BF16, "amx": True}
FEATURES = cpu_info()["features"]
needs_bfloat16 = pytest.mark.skipif(not has_fast_bfloat16(FEATURES),
                                    reason="this CPU has neither AVX512_BF16 nor AMX: bfloat16 does not run here")


def test_auto_is_bfloat16_only_on_a_cpu_that_has_it():
    assert resolve_precision("auto", "cpu", BF16) == "bfloat16"
    assert resolve_precision("auto", "cpu", {**PLAIN, "amx": True}) == "bfloat16"
    assert resolve_precision("auto", "cpu", PLAIN) == "float32"
    assert resolve_precision("auto", "cpu", {}) == "float32"  # not Linux: flags unknown
    assert resolve_precision("auto", "gpu:0", AMX) == "float32"
    assert resolve_precision("float32", "cpu", AMX) == "float32"
    assert resolve_precision("bfloat16", "cpu", PLAIN) == "bfloat16"  # explicit: validate() says why not


def test_the_setting_is_checked_and_read_from_the_command_line():
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        Settings(precision="float16").validate()
    with pytest.raises(ValueError, match="CPU only, not on gpu"):
        check_bfloat16("gpu", AMX)
    with pytest.raises(ValueError, match="AVX512_BF16 or AMX"):
        check_bfloat16("cpu", PLAIN)
    check_bfloat16("cpu", BF16)
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    assert settings_from_args(parser.parse_args(["--precision", "auto"])).precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "half"])


def test_no_amx_permission_is_asked_for_without_amx(monkeypatch):
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert runtime.allow_amx(BF16) is False
    assert "DNNL_MAX_CPU_ISA" not in os.environ


@pytest.mark.skipif(not FEATURES.get("amx"), reason="this CPU has no AMX")
def test_on_an_amx_cpu_the_package_asks_for_amx_before_mxnet_loads():
    env = {k: v for k, v in os.environ.items() if k not in runtime.ONEDNN_ISA_VARIABLES}
    probe = "import os, neural_style; print(os.environ.get('DNNL_MAX_CPU_ISA'))"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    # AVX512_CORE_AMX where the kernel granted the tile state (Linux 5.16 on), None where it did not.
    assert out.stdout.split()[-1] in (runtime.ONEDNN_AMX_ISA, "None")
    keep = subprocess.run([sys.executable, "-c", probe], env={**env, "DNNL_MAX_CPU_ISA": "AVX512_CORE"},
                          capture_output=True, text=True, timeout=120)
    assert keep.stdout.split()[-1] == "AVX512_CORE"  # the user's cap stays


@needs_bfloat16
def test_bfloat16_follows_float32_on_a_tiny_image(rng):
    # bfloat16 keeps 8 significant bits (a relative rounding of at most 2**-9 per value); each
    # tapped feature map comes out within about 0.6% of float32's (relative L2), and the total
    # loss, a mean of many squared differences, averages that further: 1% of the total is twice
    # the features' error, and far below what a wrong conversion (a cast lost, the input shift
    # dropped) gives. Each term is held to 1% of the total too, not of itself: the content loss
    # starts at 0 (the image is the content), so early on its own size is mostly rounding.
    # Measured here: the totals 0.3% apart at every epoch. lr 0.1: at lr 0.5 this tiny image's
    # loss first rises, and the two runs' paths part by rounding (1.3% at epoch 4).
    content, style = smooth_image(rng, 48, 64), smooth_image(rng, 48, 64)[::-1].copy()
    runs = {}
    for precision in ("float32", "auto"):
        settings = Settings(stages=(Stage(64, 48, "sgd", 0.1, 12, 6),), precision=precision, report_every=1)
        runs[precision] = transfer(content, style, settings)
    bf16 = runs["auto"]
    assert bf16.settings.precision == "bfloat16"  # what ran is recorded
    for a, b in zip(runs["float32"].history, bf16.history):
        for name in ("content", "style", "tv", "total"):
            assert abs(b[name] - a[name]) <= 0.01 * a["total"], (a["epoch"], name, a[name], b[name])
    assert bf16.history[-1]["total"] < bf16.history[0]["total"]  # the gradient reaches the image
    assert np.abs(bf16.image - runs["float32"].image).max() < 0.02


@needs_bfloat16
def test_the_bfloat16_network_is_a_frozen_copy_with_float32_ends():
    import mxnet as mx
    from mxnet import autograd, nd

    from neural_style.schedule import feature_net
    from neural_style.vgg import FLOAT32_CONVOLUTIONS

    settings = Settings(precision="bfloat16")
    net = feature_net(settings, mx.cpu())
    X = nd.ones((1, 3, 32, 32))
    X.attach_grad()
    with autograd.record():
        outputs = net(X)
        total = nd.add_n(*[o.sum() for o in outputs])
    assert len(outputs) == len(net.taps) and {o.dtype for o in outputs} == {np.float32}
    total.backward()
    assert X.grad.dtype == np.float32 and float(X.grad.abs().sum().asscalar()) > 0
    params = net.for_width(32).collect_params().values()
    assert {p.grad_req for p in params} == {"null"}
    weights = [p for p in params if p.name.endswith("weight")]
    # conv1_1 stays float32, the others are stored in bfloat16
    assert [p.dtype == np.float32 for p in weights] == [i < FLOAT32_CONVOLUTIONS for i in range(len(weights))]
    assert feature_net(Settings(precision="float32"), mx.cpu()) is not net  # precision is part of the cache's key


def test_convolutions_on_maps_wider_than_amx_builds_stay_float32():
    """By hand for the lecture's layers: a zero-padded convolution on a map wider than
    AMX_MAX_WIDTH (736) stays float32; each max-pool halves the width (rounding down); conv1_1
    always stays float32; a network that pads its border itself has no such limit."""
    from neural_style.vgg import AMX_MAX_WIDTH, float32_convolutions, load_vgg

    net = load_vgg(Settings().content_layers + Settings().style_layers)
    assert AMX_MAX_WIDTH == 736
    # block 1 sees the image's width, block 2 half, block 3 a quarter, block 4 an eighth, conv5_1 a 16th
    for width, float32 in [(32, 1), (736, 1), (737, 2), (1473, 2), (1474, 4), (2947, 4), (2948, 8), (5895, 8),
                           (5896, 12), (11791, 12), (11792, 13)]:
        assert float32_convolutions(net, width) == float32, width
    padded = load_vgg(Settings().content_layers + Settings().style_layers, padding="reflect")
    assert float32_convolutions(padded, 5000) == 1


@needs_bfloat16
def test_an_image_wider_than_amx_builds_runs_in_bfloat16():
    """A 740-px-wide stage in bfloat16 (conv1_2 on a map wider than AMX_MAX_WIDTH) finishes and
    its loss falls; before, oneDNN stalled building conv1_2's backward pass on AMX. In a child
    process with a time limit, so that a stall fails the test instead of hanging it."""
    child = ("import numpy as np\n"
             "from neural_style import Settings, Stage, transfer\n"
             "rng = np.random.default_rng(0)\n"
             "content, style = (rng.integers(0, 256, (80, 740, 3), dtype=np.uint8) for _ in range(2))\n"
             "r = transfer(content, style, Settings(stages=(Stage(740, 80, 'sgd', 0.1, 3, 1),), precision='bfloat16',"
             " report_every=1))\n"
             "print(r.history[0]['total'], r.history[-1]['total'])\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    first, last = map(float, out.stdout.split()[-2:])
    assert last < first
