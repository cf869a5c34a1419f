"""The peers' quality options (issue 11), each against values computed by hand, by numpy or by
SciPy; their flags, checks and round trips."""
import json

import mxnet as mx
import numpy as np
import pytest
import scipy.linalg
from mxnet import autograd, nd

from neural_style import Settings, Stage, transfer
from neural_style.config import POOLINGS, STYLE_LOSSES, LossWeights
from neural_style.controls import style_targets
from neural_style.cpu import cpu_info, has_fast_bfloat16
from neural_style.images import postprocess, preprocess
from neural_style.layers import POOL_INDICES, after_relu, layer_index, min_side
from neural_style.losses import (GRAM, STATISTICS, WASSERSTEIN, compute_loss, gram, mix, normalised_style_layers,
                                 style_statistic)
from neural_style.options import settings_to_argv
from neural_style.schedule import feature_net
from neural_style.train import Hook, Objective
from neural_style.vgg import AVG_POOL_SCALES, BorderPadded, ScaledAvgPool, load_vgg

from conftest import StartImages, smooth_image
from test_cli import run_cli
from test_cli_controls import parse, pixels
from test_controls import Interrupted, interrupt_after


K = 115.0  # the calibrated activation scale of the Caffe weights


def pair(rng):
    return smooth_image(rng, 24, 32), smooth_image(rng, 30, 30)[:, ::-1]


def tiny(*stages, **kw):
    return Settings(stages=stages or (Stage(32, 24, "adam", 0.05, 3, 200),), report_every=1, **kw)


# ---- style taps after the ReLU -------------------------------------------------------------------

def test_relu_taps_move_each_convolution_past_its_relu():
    assert after_relu((0, 5, 10, 19, 28)) == tuple(layer_index(f"relu{b}_1") for b in range(1, 6))
    assert after_relu((layer_index("relu4_2"), layer_index("pool3"), 0)) == (
        layer_index("relu4_2"), layer_index("pool3"), layer_index("relu1_1"))
    assert Settings(style_taps="relu").tapped_style_layers == (1, 6, 11, 20, 29)
    assert Settings().tapped_style_layers == Settings().style_layers


def test_a_run_with_relu_taps_records_the_relu_layers(rng):
    result = transfer(*pair(rng), tiny(style_taps="relu"))
    assert result.settings.style_layers == (1, 6, 11, 20, 29) and result.settings.style_taps == "relu"
    # the effective settings run again as they are: the relu layers stay where they are
    assert result.settings.tapped_style_layers == result.settings.style_layers


def test_a_relu_tap_is_its_convolution_through_relu_forward_and_backward(rng):
    """The hybridized, statically allocated network (as transfer runs it) must not let the ReLU
    overwrite the convolution it taps, nor lose the ReLU's mask in the gradient."""
    X = rng.normal(size=(1, 3, 24, 32)).astype(np.float32)
    w = nd.array(rng.normal(size=(1, 128, 12, 16)))
    net = load_vgg((5, 6), "caffe", K)  # conv2_1 and relu2_1
    net.hybridize(static_alloc=True, static_shape=True)

    def gradient(of):
        x = nd.array(X)
        x.attach_grad()
        with autograd.record():
            conv, relu = net(x)
            loss = (of(conv, relu) * w).sum()
        loss.backward()
        return conv.asnumpy(), relu.asnumpy(), x.grad.asnumpy()

    conv, relu, through_tap = gradient(lambda conv, relu: relu)
    _, _, by_hand = gradient(lambda conv, relu: nd.relu(conv))
    np.testing.assert_array_equal(relu, np.maximum(conv, 0))
    assert (conv < 0).mean() > 0.2  # the ReLU has something to cut
    np.testing.assert_allclose(through_tap, by_hand, rtol=1e-5, atol=1e-6 * np.abs(by_hand).max())


# ---- normalised style layers ---------------------------------------------------------------------

def test_normalised_layers_divide_by_the_blank_loss_times_its_mean(rng):
    targets = [gram(nd.array(rng.normal(size=(1, c, 5, 6)) * s)) for c, s in ((4, 0.1), (8, 1.0), (16, 30.0))]
    blank = np.array([(t.asnumpy().astype(np.float64) ** 2).mean() for t in targets])
    weights = normalised_style_layers(LossWeights(style=7.0, style_layers=(1.0, 2.0, 0.5)), targets, GRAM)
    np.testing.assert_allclose(weights.style_layers, np.array([1.0, 2.0, 0.5]) * blank.mean() / blank, rtol=1e-5)
    assert weights.style == 7.0 and weights.content == LossWeights().content


def test_normalised_layers_weigh_alike_and_keep_the_total(rng):
    """With every layer's Gram matrix 10% off its target, each normalised layer costs the same,
    and the style loss's total is the lecture's."""
    maps = [rng.normal(size=(1, c, 6, 6)).astype(np.float32) * s for c, s in ((4, 0.1), (8, 1.0), (16, 30.0))]
    targets = [gram(nd.array(m)) for m in maps]
    near = [nd.array(m * np.sqrt(1.1)) for m in maps]  # Gram matrices 1.1 times the target's
    X, content = nd.zeros((1, 3, 4, 4)), [nd.zeros((1, 2, 2, 2))]
    lecture = LossWeights(style=1.0)
    normalised = normalised_style_layers(lecture, targets, GRAM)
    plain = [compute_loss(X, content, [y], content, [t], lecture)["style"].asscalar() for y, t in zip(near, targets)]
    assert max(plain) / min(plain) > 1e4  # the lecture's layers differ by orders of magnitude
    weighted = [p * w for p, w in zip(plain, normalised.style_layers)]
    assert max(weighted) / min(weighted) == pytest.approx(1.0, rel=1e-4)
    assert compute_loss(X, content, near, content, targets, normalised)["style"].asscalar() == pytest.approx(
        sum(plain), rel=1e-4)


def test_the_objective_normalises_only_when_asked(vgg_caffe, rng):
    _, style = pair(rng)
    for norm in (False, True):
        settings = Settings(style_layer_norm=norm)
        targets = style_targets(vgg_caffe, [style], (1.0,), Stage(32, 24), settings, mx.cpu())
        objective = Objective(vgg_caffe, [], targets, settings)
        if norm:
            blank = np.array([(t.asnumpy().astype(np.float64) ** 2).mean() for t in targets])
            np.testing.assert_allclose(objective.weights.style_layers, blank.mean() / blank, rtol=1e-5)
        else:
            assert objective.weights == settings.loss_weights


# ---- the 2-Wasserstein style loss ----------------------------------------------------------------

def gaussian(Y):
    f = Y.reshape(Y.shape[1], -1).astype(np.float64)
    mu = f.mean(axis=1)
    return mu, (f - mu[:, None]) @ (f - mu[:, None]).T / f.shape[1]


def w2_scipy(Y, T):
    """|mu - mu'|² + tr(C) + tr(C') - 2 tr((C'^½ C C'^½)^½) with scipy's matrix square root."""
    (m, C), (mt, Ct) = gaussian(Y), gaussian(T)
    root = scipy.linalg.sqrtm(Ct).real
    return ((m - mt) ** 2).sum() + np.trace(C) + np.trace(Ct) - 2 * np.trace(scipy.linalg.sqrtm(root @ C @ root).real)


def w2_and_gradient(Y, T):
    target = WASSERSTEIN.target(WASSERSTEIN.moments(nd.array(T)))
    x = nd.array(Y)
    x.attach_grad()
    with autograd.record():
        loss = WASSERSTEIN.loss(WASSERSTEIN.moments(x), target)
    loss.backward()
    return loss.asscalar(), x.grad.asnumpy()


def test_wasserstein_value_is_scipys(rng):
    for c, (h, w) in ((3, (4, 5)), (6, (5, 7)), (10, (6, 6))):
        Y = (rng.normal(size=(1, c, h, w)) + 0.5).astype(np.float32)
        T = (rng.normal(size=(1, c, w, h)) * 2 - 1).astype(np.float32)
        value, _ = w2_and_gradient(Y, T)
        assert value == pytest.approx(w2_scipy(Y, T), rel=1e-4, abs=1e-5)
        assert w2_and_gradient(T, T)[0] == pytest.approx(0, abs=1e-4 * np.trace(gaussian(T)[1]))


@pytest.mark.parametrize("positions", [(5, 6), (2, 2)])  # (2, 2): 4 positions, 8 channels, rank-deficient
def test_wasserstein_gradient_is_the_finite_differences_of_scipys_value(rng, positions):
    Y = (rng.normal(size=(1, 8, *positions)) + 0.3).astype(np.float32)
    T = rng.normal(size=(1, 8, 5, 5)).astype(np.float32) * 1.5
    _, grad = w2_and_gradient(Y, T)
    assert np.isfinite(grad).all()
    eps = 1e-4
    for index in [(0, 0, 0, 0), (0, 3, 1, 1), (0, 7, positions[0] - 1, 0)]:
        up, down = Y.astype(np.float64), Y.astype(np.float64)
        up[index] += eps
        down[index] -= eps
        numeric = (w2_scipy(up, T) - w2_scipy(down, T)) / (2 * eps)
        assert grad[index] == pytest.approx(numeric, rel=2e-3, abs=1e-4)


def test_wasserstein_moments_of_parts_mix_into_the_whole(rng):
    Y = rng.normal(size=(1, 5, 4, 6)).astype(np.float32)
    left, right = WASSERSTEIN.moments(nd.array(Y[..., :4])), WASSERSTEIN.moments(nd.array(Y[..., 4:]))
    for part, whole in zip(mix([left, right], [4 / 6, 2 / 6]), WASSERSTEIN.moments(nd.array(Y))):
        np.testing.assert_allclose(part.asnumpy(), whole.asnumpy(), rtol=1e-5, atol=1e-6)


def test_wasserstein_blank_loss_is_the_distance_from_zero(rng):
    T = rng.normal(size=(1, 4, 5, 5)).astype(np.float32) + 1
    target = WASSERSTEIN.target(WASSERSTEIN.moments(nd.array(T)))
    assert WASSERSTEIN.blank_loss(target) == pytest.approx(w2_scipy(np.zeros_like(T), T), rel=1e-5)


def test_each_style_loss_has_its_statistic():
    assert set(STATISTICS) == set(STYLE_LOSSES)
    assert style_statistic(Settings()) is GRAM and style_statistic(Settings(style_loss="wasserstein")) is WASSERSTEIN


def test_a_wasserstein_run_lowers_its_style_loss(rng):
    result = transfer(*pair(rng), tiny(Stage(32, 24, "adam", 0.05, 5, 200), style_loss="wasserstein",
                                        style_weight=1.0))
    style = [h["style"] for h in result.history]
    assert np.isfinite(result.image).all() and style[-1] < 0.9 * style[0]


# ---- average pooling -----------------------------------------------------------------------------

def test_scaled_average_pool_by_hand(rng):
    X = rng.normal(size=(1, 2, 5, 7)).astype(np.float32)
    by_hand = X[..., :4, :6].reshape(1, 2, 2, 2, 3, 2).mean(axis=(3, 5)) * 1.5  # floors like the max-pool
    np.testing.assert_allclose(ScaledAvgPool(1.5)(nd.array(X)).asnumpy(), by_hand, rtol=1e-6)


def test_average_pooling_keeps_the_activations_scale():
    """On a photograph, each rescaled average pool's output has about the mean of the max-pool's
    (the scales were measured on seven images at 256 px)."""
    from skimage import data

    X = preprocess(data.chelsea(), (256, 170))
    by_max = load_vgg(POOL_INDICES, "caffe", K)(X)
    by_avg = load_vgg(POOL_INDICES, "caffe", K, pooling="avg")(X)
    ratios = [a.mean().asscalar() / m.mean().asscalar() for a, m in zip(by_avg, by_max)]
    assert all(0.8 < r < 1.25 for r in ratios), ratios
    assert len(AVG_POOL_SCALES) == len(POOL_INDICES) and POOLINGS == ("max", "avg")


def test_the_network_cache_tells_pooling_and_padding_apart():
    plain, avg, reflect = (feature_net(Settings(**option), mx.cpu())
                           for option in ({}, {"pooling": "avg"}, {"padding": "reflect"}))
    assert len({id(plain), id(avg), id(reflect)}) == 3
    assert isinstance(avg.layers[POOL_INDICES[0]], ScaledAvgPool)
    assert isinstance(reflect.layers[0], BorderPadded) and not isinstance(plain.layers[0], BorderPadded)


# ---- border padding ------------------------------------------------------------------------------

@pytest.mark.parametrize("padding, numpy_mode", [("reflect", "reflect"), ("replicate", "edge")])
def test_border_padding_is_the_zero_padded_network_on_a_padded_image(rng, padding, numpy_mode):
    """conv1_1 with reflect (replicate) padding is conv1_1 with zero padding applied to the
    image padded by numpy, its outer ring cut off; deeper convolutions pad their own inputs."""
    X = rng.normal(size=(1, 3, 20, 24)).astype(np.float32)
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)), mode=numpy_mode)
    zeros = load_vgg((0,), "caffe", K)
    ours = load_vgg((0, 2), "caffe", K, padding=padding)
    conv1_1, conv1_2 = ours(nd.array(X))
    np.testing.assert_allclose(conv1_1.asnumpy(), zeros(nd.array(padded))[0].asnumpy()[..., 1:-1, 1:-1],
                               rtol=1e-5, atol=1e-5)
    # conv1_2 sees relu1_1 padded the same way: at a corner, mirrored or repeated neighbours
    relu = np.maximum(conv1_1.asnumpy(), 0)
    w, b = (p.data().asnumpy() for p in (ours.layers[2].conv.weight, ours.layers[2].conv.bias))
    patch = np.pad(relu, ((0, 0), (0, 0), (1, 1), (1, 1)), mode=numpy_mode)[0, :, :3, :3]
    assert conv1_2.asnumpy()[0, :, 0, 0] == pytest.approx((w * patch).sum(axis=(1, 2, 3)) + b, rel=1e-4, abs=1e-4)


def test_reflect_padding_needs_two_pixels_in_every_map():
    assert min_side((28,), 2) == 32 and min_side((28,)) == 16
    Settings(stages=(Stage(16, 16),), style_scale=2.0).validate()
    with pytest.raises(ValueError, match=r"max-pools \(and reflect padding, 2 px in every map\) need at least 32 px"):
        Settings(stages=(Stage(16, 16),), style_scale=2.0, padding="reflect").validate()
    Settings(stages=(Stage(16, 16),), style_scale=2.0, padding="replicate").validate()


@pytest.mark.skipif(not has_fast_bfloat16(cpu_info()["features"]), reason="bfloat16 does not run on this CPU")
def test_the_network_options_convert_to_bfloat16(rng):
    """AMP converts the average-pool and the padded networks (the graph is built on maps of 2 px,
    which reflect padding needs); their features stay within 2% of float32's."""
    X = nd.array(rng.normal(size=(1, 3, 32, 48)))
    for option in ({"pooling": "avg"}, {"padding": "reflect"}, {"padding": "replicate"}):
        reference = [y.asnumpy() for y in feature_net(Settings(**option), mx.cpu())(X)]
        for y, r in zip(feature_net(Settings(precision="bfloat16", **option), mx.cpu())(X), reference):
            assert np.linalg.norm(y.asnumpy() - r) < 0.02 * np.linalg.norm(r), option


# ---- the moving average of the image -------------------------------------------------------------

class Iterates(Hook):
    """Keeps the image the optimizer stepped (loop.X) after every epoch."""

    def __init__(self):
        self.images = []

    def after_epoch(self, loop):
        self.images.append(loop.X.asnumpy())


def test_the_average_is_shown_and_is_the_result_while_the_optimizer_steps_the_image(rng):
    content, style = pair(rng)
    stage = Stage(32, 24, "adam", 0.05, 3, 200)
    plain, averaged, shown = Iterates(), Iterates(), []
    transfer(content, style, tiny(stage), hooks=[plain])
    result = transfer(content, style, tiny(stage, ema=0.6), callback=lambda p: shown.append(p.X.asnumpy()),
                      hooks=[averaged])
    # the optimizer's images are those of a run without the average
    for a, b in zip(plain.images, averaged.images):
        np.testing.assert_array_equal(a, b)
    average = preprocess(content, (32, 24)).asnumpy().astype(np.float64)
    for image, seen in zip(averaged.images, shown):
        average = 0.6 * average + 0.4 * image
        np.testing.assert_allclose(seen, average, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.image, postprocess(nd.array(average)).asnumpy(), atol=1e-5)


def test_the_next_stage_starts_from_the_average(rng):
    content, style = pair(rng)
    starts = StartImages()
    settings = tiny(Stage(32, 24, "adam", 0.05, 3, 200), Stage(40, 30, "adam", 0.05, 1, 200), ema=0.5)
    result = transfer(content, style, settings, hooks=[starts])
    expected = preprocess(result.stage_images[0] * 255, (40, 30)).asnumpy()
    np.testing.assert_allclose(starts.images[1], expected, atol=1e-4)


@pytest.mark.parametrize("stage, epoch", [(0, 1), (1, 0)])
def test_resume_with_the_average_equals_uninterrupted(tmp_path, stage, epoch):
    from skimage import data

    content, style = data.chelsea(), data.immunohistochemistry()
    settings = tiny(Stage(32, 24, "adam", 0.05, 4, 2), Stage(40, 30, "lbfgs", 1.0, 3, 200), ema=0.7)
    whole = transfer(content, style, settings)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        transfer(content, style, settings, interrupt_after(stage, epoch, ckpt))
    resumed = transfer(content, style, settings, resume=ckpt)
    for a, b in zip(whole.stage_images, resumed.stage_images):
        np.testing.assert_array_equal(a, b)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == strip


# ---- declarations: flags, checks, round trips ----------------------------------------------------

PEERS = dict(style_taps="relu", style_layer_norm=True, style_loss="wasserstein", pooling="avg", padding="reflect",
             ema=0.9)


def test_the_flags_give_the_settings_and_back():
    s = parse(["c", "s", "--style-taps", "relu", "--style-layer-norm", "--style-loss", "wasserstein",
               "--pooling", "avg", "--padding", "reflect", "--ema", "0.9"])
    assert s == Settings(**PEERS)
    assert parse(["c", "s", *settings_to_argv(s)]) == s
    assert parse(["c", "s", "--style-layer-norm", "--no-style-layer-norm"]) == Settings()
    assert Settings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_a_checkpoint_from_before_these_options_resumes(tmp_path, rng):
    """A checkpoint whose settings lack the options (written before they existed) resumes: they
    count as their defaults, the lecture's, which is how that run ran."""
    from neural_style.checkpoint import load_checkpoint

    content, style = pair(rng)
    settings = tiny(Stage(32, 24, "adam", 0.05, 3, 200))
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        transfer(content, style, settings, interrupt_after(0, 0, ckpt))
    old = load_checkpoint(ckpt)
    for name in PEERS:
        del old.settings[name]
    np.testing.assert_array_equal(transfer(content, style, settings, resume=old).image,
                                  transfer(content, style, settings).image)
    old.settings["pooling"] = "avg"
    with pytest.raises(ValueError, match=r"other settings \(pooling\)"):
        transfer(content, style, settings, resume=old)


@pytest.mark.parametrize("change, message", [
    ({"style_taps": "pool"}, "unknown style taps 'pool'"),
    ({"style_layer_norm": "yes"}, "unknown style layer norm 'yes'"),
    ({"style_loss": "mmd"}, "unknown style loss 'mmd'"),
    ({"pooling": "min"}, "unknown pooling 'min'"),
    ({"padding": "circular"}, "unknown padding 'circular'"),
    ({"ema": 1.0}, "ema must be below 1"),
    ({"ema": -0.5}, "ema must be at least 0"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        Settings(**change).validate()


def test_the_command_line_runs_every_option(tmp_path, rng):
    from PIL import Image

    content, style, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.png"
    Image.fromarray(smooth_image(rng, 36, 48)).save(content)
    Image.fromarray(smooth_image(rng, 40, 40)[::-1]).save(style)
    proc = run_cli(content, style, "-o", out, "--size", "48x36", "--epochs", "3", "--optimizer", "adam", "--lr",
                   "0.05", "--style-taps", "relu", "--style-layer-norm", "--style-loss", "wasserstein", "--pooling",
                   "avg", "--padding", "reflect", "--ema", "0.5", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert pixels(out).shape == (36, 48, 3)
    info = run_cli("info", out)
    assert info.returncode == 0, info.stderr
    for words in ("--style-taps relu", "--style-layer-norm", "--style-loss wasserstein", "--pooling avg",
                  "--padding reflect", "--ema 0.5"):
        assert words in info.stdout, words
