"""Training: the loss falls, and each stage starts from the previous one's result."""
import mxnet as mx
import numpy as np
import pytest

from neural_style import transfer
from neural_style.config import RGB_MEAN, RGB_STD, Settings, Stage
from neural_style.errors import DivergedError, Interrupted, OutOfMemory
from neural_style.schedule import get_context

from conftest import RaiseAtStart, StartImages, smooth_image


def tiny_settings(*stages, **kw):
    return Settings(stages=stages or (Stage(64, 48, "sgd", 5.0, 8, 200),), report_every=1, **kw)


def demo_pair():
    from skimage import data

    return data.chelsea(), data.immunohistochemistry()


@pytest.mark.parametrize("optimizer, lr", [("sgd", 1.0), ("adam", 0.05), ("lbfgs", 1.0)])
def test_total_loss_falls(optimizer, lr):
    result = transfer(*demo_pair(), tiny_settings(Stage(64, 48, optimizer, lr, 8, 200)))
    totals = [h["total"] for h in result.history]
    assert len(totals) == 7  # epochs 1..7 are reported
    assert totals[-1] < 0.8 * totals[0]  # at least a fifth lower after 8 epochs
    assert all(np.isfinite(totals))
    assert result.image.shape == (48, 64, 3)
    assert 0 <= result.image.min() and result.image.max() <= 1


def test_stage_two_starts_from_stage_one_resized(rng):
    spy = StartImages()
    starts = spy.images
    settings = tiny_settings(Stage(32, 24, "sgd", 5.0, 3, 200), Stage(64, 48, "sgd", 1.0, 2, 100))
    result = transfer(smooth_image(rng, 48, 64), smooth_image(rng, 30, 30), settings, hooks=[spy])
    assert [s.shape for s in starts] == [(1, 3, 24, 32), (1, 3, 48, 64)]
    # by hand: stage 1's image x255, bilinear to 64x48, normalised
    stage1 = result.stage_images[0] * 255
    resized = mx.image.imresize(mx.nd.array(stage1), 64, 48, interp=1).asnumpy()
    expected = ((resized / 255 - RGB_MEAN) / RGB_STD).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(starts[1], expected, rtol=1e-4, atol=1e-4)
    assert result.stage_images[1].shape == (48, 64, 3)
    assert {h["stage"] for h in result.history} == {0, 1}


def test_learning_rate_decays_every_n_epochs():
    settings = tiny_settings(Stage(32, 24, "sgd", 0.2, 6, 2))
    result = transfer(*demo_pair(), settings)
    # the lecture decays after epochs 2 and 4 (i % n == 0 and i != 0)
    assert [h["lr"] for h in result.history] == pytest.approx([0.2, 0.2, 0.02, 0.02, 0.002])


def test_divergence_recovers_with_lower_lr_and_never_returns_nan(rng):
    events = []
    settings = tiny_settings(Stage(64, 48, "sgd", 50.0, 12, 200))
    result = transfer(*demo_pair(), settings, callback=lambda p: p.event and events.append(p))
    assert events, "lr 50 at 64x48 diverges; the run should have recovered"
    assert events[0].lr == pytest.approx(5.0)
    assert "diverged" in events[0].event
    assert np.isfinite(result.image).all()
    totals = [h["total"] for h in result.history if "total" in h]
    assert np.isfinite(totals[-1]) and totals[-1] < totals[0]


def test_divergence_gives_up_with_clear_error():
    settings = tiny_settings(Stage(64, 48, "sgd", 1e6, 30, 200), max_recoveries=1)
    with pytest.raises(DivergedError, match="lower --lr"):
        transfer(*demo_pair(), settings)


def test_same_seed_same_image(rng):
    content, style = smooth_image(rng, 24, 32), smooth_image(rng, 24, 32)
    settings = tiny_settings(Stage(32, 24, "adam", 0.05, 3, 200), seed=3)
    a, b = transfer(content, style, settings), transfer(content, style, settings)
    np.testing.assert_array_equal(a.image, b.image)


def test_devices():
    assert get_context("cpu") == mx.cpu()
    with pytest.raises(ValueError, match="unknown device"):
        get_context("tpu")
    if not mx.runtime.Features().is_enabled("CUDA"):
        with pytest.raises(RuntimeError, match="GPU not usable|not usable"):
            get_context("gpu:0")


# --- faults: interrupts, NaN, running out of memory -----------------------------------------------

def test_stop_flag_ends_the_run_with_the_latest_good_image(rng):
    import threading

    stop = threading.Event()
    seen = []

    def callback(p):
        seen.append((p.stage, p.epoch))
        if p.stage == 1 and p.epoch == 2:
            stop.set()

    settings = tiny_settings(Stage(32, 24, "adam", 0.05, 3, 200), Stage(64, 48, "adam", 0.05, 50, 200))
    with pytest.raises(Interrupted) as info:
        transfer(smooth_image(rng, 48, 64), smooth_image(rng, 30, 30), settings, callback, stop=stop)
    e = info.value
    assert isinstance(e, KeyboardInterrupt)  # code that catches Ctrl-C still catches it
    assert (e.stage, e.epoch) == (1, 2) and seen[-1] == (1, 2)  # stopped after that very epoch
    assert e.result.image.shape == (48, 64, 3) and np.isfinite(e.result.image).all()
    assert [im.shape for im in e.result.stage_images] == [(24, 32, 3), (48, 64, 3)]
    assert {h["stage"] for h in e.result.history} == {0, 1}
    # the saved image is the last one whose loss was checked: trained, so not the resized stage 1
    assert not np.allclose(e.result.image, e.result.stage_images[0].mean())


class NaNImageAfter(StartImages):
    """A hook that turns the image into NaN after one epoch, so the next epoch's loss is NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def after_epoch(self, loop):
        if loop.epoch == self.epoch:
            loop.X[:] = float("nan")


def test_nan_loss_restores_the_last_finite_image_and_lowers_lr():
    """Force a NaN loss at one epoch: the run says so, goes on at lr x0.1 and ends finite."""
    events = []
    result = transfer(*demo_pair(), tiny_settings(Stage(32, 24, "adam", 0.05, 8, 200)),
                      callback=lambda p: p.event and events.append(p), hooks=[NaNImageAfter(3)])
    assert len(events) == 1 and "diverged (nan) at epoch 4" in events[0].event
    assert events[0].lr == pytest.approx(0.005)
    assert np.isfinite(result.image).all()
    # epoch 4 reports the NaN it computed; after the recovery every loss is finite again
    assert [h["epoch"] for h in result.history if "total" in h and not np.isfinite(h["total"])] == [4]
    assert all(np.isfinite(h["total"]) for h in result.history if "total" in h and h["epoch"] > 4)


def test_giving_up_on_divergence_keeps_the_last_good_image():
    settings = tiny_settings(Stage(32, 24, "sgd", 1.0, 3, 200), Stage(64, 48, "sgd", 1e6, 30, 200), max_recoveries=1)
    with pytest.raises(DivergedError) as info:
        transfer(*demo_pair(), settings)
    result = info.value.result
    assert info.value.stage == 1 and result.image.shape == (48, 64, 3)
    assert np.isfinite(result.image).all() and len(result.stage_images) == 2


@pytest.mark.parametrize("text", [
    "Check failed: e == cudaSuccess: out of memory",
    "std::bad_alloc",
    "Failed to allocate CPU Memory",
    "could not create a memory object",  # oneDNN's words
])
def test_out_of_memory_names_the_stage_size_and_what_to_try(text, rng):
    oom_at_stage_two = RaiseAtStart(64, mx.base.MXNetError(
        f"Traceback (most recent call last):\n  File \"x.cc\", line 1\nMXNetError: {text}"))
    settings = tiny_settings(Stage(32, 24, "adam", 0.05, 2, 200), Stage(64, 48, "adam", 0.05, 2, 200))
    with pytest.raises(OutOfMemory, match=r"out of memory at stage 2/2 \(64x48\) on cpu\(0\); try a smaller --size") as info:
        transfer(smooth_image(rng, 48, 64), smooth_image(rng, 30, 30), settings, hooks=[oom_at_stage_two])
    # the work of stage 1 is kept
    assert info.value.result.image.shape == (24, 32, 3)


def test_other_mxnet_errors_are_not_called_out_of_memory(rng):
    broken = RaiseAtStart(32, mx.base.MXNetError("shape mismatch"))
    with pytest.raises(mx.base.MXNetError, match="shape mismatch"):
        transfer(smooth_image(rng, 48, 64), smooth_image(rng, 30, 30), tiny_settings(Stage(32, 24, "adam", 0.05, 2, 200)),
                 hooks=[broken])
