"""The controls beyond the lecture (issue 5), from Python, on tiny images.

Each test fails if its control stops doing what it promises: the same code path as the lecture
(train() is the only loop), only the targets, the starting image, the colours or the loop's
saved state change.
"""
import functools
import json

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

import neural_style
from neural_style.config import CONTENT_LAYERS, STYLE_LAYERS, LossWeights, Settings, Stage
from neural_style.controls import network_images, resize, style_targets
from neural_style.images import preprocess, save_image
from neural_style.layers import LAYER_NAMES, layer_index
from neural_style.losses import compute_loss, gram, style_loss
from neural_style.metadata import image_metadata, read_metadata, read_settings
from neural_style import transfer
from neural_style.vgg import extract_features

from conftest import StartImages, smooth_image

TINY = Stage(32, 24, "adam", 0.05, 3, 200)


def tiny(*stages, **kw):
    return Settings(stages=stages or (TINY,), report_every=1, **kw)


@pytest.fixture
def images(rng):
    """A content image and two different style images, photo-like, small."""
    content = smooth_image(rng, 24, 32)
    style_a = smooth_image(rng, 30, 30)[:, ::-1]
    y, x = np.mgrid[0:40, 0:40]
    stripes = ((np.sin(x / 2.0) + np.cos(y / 3.0)) * 60 + 128)[..., None] * np.array([1.0, 0.4, 0.8])
    style_b = np.clip(stripes, 0, 255).astype(np.uint8)
    return content, style_a, style_b


def yiq(img):
    from skimage.color import rgb2yiq

    return rgb2yiq(img)


# ---- 1. several styles with blend weights ------------------------------------------------------

def test_blend_one_zero_is_the_single_style_target(vgg_caffe, images):
    _, a, b = images
    settings = tiny()
    single = style_targets(vgg_caffe, [a], (1.0,), TINY, settings, mx.cpu())
    blended = style_targets(vgg_caffe, [a, b], (1.0, 0.0), TINY, settings, mx.cpu())
    for s, m in zip(single, blended):
        np.testing.assert_array_equal(s.asnumpy(), m.asnumpy())


def test_blend_is_the_weighted_mix_of_gram_targets(vgg_caffe, images):
    _, a, b = images
    settings = tiny(style_blend=(7, 3))  # normalised to 0.7, 0.3
    weights = neural_style.controls.blend_weights(settings, 2)
    assert weights == pytest.approx((0.7, 0.3))
    mixed = style_targets(vgg_caffe, [a, b], weights, TINY, settings, mx.cpu())
    for layer, target in zip(STYLE_LAYERS, mixed):
        grams = []
        for img in (a, b):
            _, ys = extract_features(vgg_caffe, preprocess(img, (32, 24)), CONTENT_LAYERS, STYLE_LAYERS)
            grams.append(gram(ys[STYLE_LAYERS.index(layer)]).asnumpy())
        np.testing.assert_allclose(target.asnumpy(), 0.7 * grams[0] + 0.3 * grams[1], rtol=1e-5, atol=1e-9)
        assert not np.allclose(target.asnumpy(), grams[0], rtol=1e-3)


def test_transfer_with_blend_one_zero_equals_single_style(images):
    content, a, b = images
    single = transfer(content, a, tiny())
    blended = transfer(content, [a, b], tiny(style_blend=(1.0, 0.0)))
    np.testing.assert_array_equal(single.image, blended.image)
    even = transfer(content, [a, b], tiny())
    assert not np.array_equal(single.image, even.image)


def test_blend_needs_one_weight_per_style(images):
    content, a, b = images
    with pytest.raises(ValueError, match="3 style blend weights for 2 style images"):
        transfer(content, [a, b], tiny(style_blend=(1, 1, 1)))
    with pytest.raises(ValueError, match="blend weights are all 0"):
        Settings(style_blend=(0, 0)).validate()
    with pytest.raises(ValueError, match="style blend weight must be at least 0"):
        Settings(style_blend=(1, -1)).validate()


# ---- 2. style scale ----------------------------------------------------------------------------

def test_style_scale_resizes_the_style_before_its_grams(vgg_caffe, images):
    _, a, _ = images
    stage = Stage(64, 48)
    half = style_targets(vgg_caffe, [a], (1.0,), stage, tiny(style_scale=0.5), mx.cpu())
    _, ys = extract_features(vgg_caffe, preprocess(a, (32, 24)), CONTENT_LAYERS, STYLE_LAYERS)
    for target, y in zip(half, ys):
        np.testing.assert_array_equal(target.asnumpy(), gram(y).asnumpy())
    full = style_targets(vgg_caffe, [a], (1.0,), stage, tiny(), mx.cpu())
    assert not np.allclose(full[0].asnumpy(), half[0].asnumpy(), rtol=1e-2)


def test_style_scale_too_small_for_the_deepest_layer_is_a_clear_error(images):
    content, a, _ = images
    with pytest.raises(ValueError, match="style images would be 8x6 at style scale 0.25, too small: .* conv5_1"):
        transfer(content, a, tiny(style_scale=0.25))
    tiny(style_scale=0.25, style_layers=("conv1_1", "conv2_1")).validate()  # shallow layers need fewer pixels


# ---- 3. keep the content's colours -------------------------------------------------------------

def test_luminance_mode_keeps_the_content_chroma(images):
    content, a, _ = images
    result = transfer(content, a, tiny(preserve_colors="luminance"))
    expected = yiq(resize(content, (32, 24)) / 255.0)
    got = yiq(result.image)
    np.testing.assert_allclose(got[..., 1:], expected[..., 1:], atol=1e-5)
    # ...while the luminance was stylised
    assert np.abs(got[..., 0] - expected[..., 0]).mean() > 5e-3
    plain = transfer(content, a, tiny())
    assert np.abs(yiq(plain.image)[..., 1:] - expected[..., 1:]).max() > 1e-2


def test_luminance_mode_feeds_the_network_grey_images_with_matched_luminance(images):
    content, a, b = images
    c, styles = network_images(content, [a, b], "luminance")
    for img in (c, *styles):
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
    y_c = c[..., 0] / 255
    for s in styles:
        y_s = s[..., 0] / 255
        assert y_s.mean() == pytest.approx(y_c.mean(), abs=2e-3)
        assert y_s.std() == pytest.approx(y_c.std(), rel=2e-2)


def test_histogram_mode_matches_the_style_colours_to_the_content(images):
    from skimage.exposure import match_histograms

    content, _, b = images
    c, (matched,) = network_images(content, [b], "histogram")
    assert c is content
    for ch in range(3):
        assert matched[..., ch].mean() == pytest.approx(content[..., ch].mean(), abs=2.0)
        assert np.median(matched[..., ch]) == pytest.approx(np.median(content[..., ch]), abs=2.0)
    assert abs(b[..., 1].mean() - content[..., 1].mean()) > 10  # there was something to match
    # the transfer uses exactly the matched style
    by_mode = transfer(content, b, tiny(preserve_colors="histogram"))
    by_hand = transfer(content, match_histograms(b, content, channel_axis=-1), tiny())
    np.testing.assert_array_equal(by_mode.image, by_hand.image)


# ---- 4. initialisation and seeds ---------------------------------------------------------------

def test_random_init_same_seed_same_image_bit_for_bit(images):
    content, a, _ = images
    spy = StartImages()
    starts = spy.images
    one = transfer(content, a, tiny(init="random", seed=7), hooks=[spy])
    two = transfer(content, a, tiny(init="random", seed=7), hooks=[spy])
    other = transfer(content, a, tiny(init="random", seed=8), hooks=[spy])
    np.testing.assert_array_equal(one.image, two.image)
    np.testing.assert_array_equal(starts[0], starts[1])
    assert not np.array_equal(starts[0], starts[2])
    assert not np.array_equal(one.image, other.image)
    content_X = preprocess(content, (32, 24)).asnumpy()
    assert np.abs(starts[0] - content_X).mean() > 0.5  # noise, not the content
    assert one.settings.seed == 7


def test_random_init_without_a_seed_records_the_one_it_drew(images):
    content, a, _ = images
    first = transfer(content, a, tiny(init="random"))
    assert isinstance(first.settings.seed, int)
    again = transfer(content, a, tiny(init="random", seed=first.settings.seed))
    np.testing.assert_array_equal(first.image, again.image)
    assert transfer(content, a, tiny()).settings.seed is None  # the lecture's start needs none


def test_init_from_a_path_starts_there(images, tmp_path):
    content, a, b = images
    path = tmp_path / "start.png"
    Image.fromarray(b).save(path)
    spy = StartImages()
    transfer(content, a, tiny(init=str(path)), hooks=[spy])
    np.testing.assert_array_equal(spy.images[0], preprocess(b, (32, 24)).asnumpy())
    with pytest.raises(ValueError, match="initial image .*missing.png does not exist"):
        transfer(content, a, tiny(init=str(tmp_path / "missing.png")))


# ---- 5. layers and per-layer weights -----------------------------------------------------------

@pytest.mark.parametrize("spec, index", [
    ("conv1_1", 0), ("relu1_1", 1), ("pool1", 4), ("conv4_2", 21), ("relu4_2", 22), ("conv4_4", 25),
    ("CONV5_1", 28), ("pool5", 36), ("19", 19), (10, 10),
])
def test_layer_by_name_or_index(spec, index):
    assert layer_index(spec) == index


def test_unknown_layer_is_rejected_listing_valid_names():
    with pytest.raises(ValueError, match="style layer: unknown VGG19 layer 'conv6_1'") as e:
        Settings(style_layers=("conv1_1", "conv6_1")).validate()
    assert "relu4_2" in str(e.value) and "conv5_4" in str(e.value)
    with pytest.raises(ValueError, match="out of range"):
        layer_index(37)
    assert len(LAYER_NAMES) == 37


def test_settings_keep_layers_as_indices():
    s = Settings(content_layers=("relu4_2",), style_layers=("conv1_1", "relu2_1", 10))
    assert s.content_layers == (22,) and s.style_layers == (0, 6, 10)


def test_a_relu_layer_is_the_conv_output_after_its_relu(rng):
    from neural_style.vgg import load_vgg

    net = load_vgg((25, 26), "caffe", activation_scale=1.0)
    (conv, relu), _ = extract_features(net, preprocess(smooth_image(rng, 24, 32), (32, 24)), (25, 26), ())
    assert (conv.asnumpy() < 0).any()
    np.testing.assert_array_equal(relu.asnumpy(), np.maximum(conv.asnumpy(), 0))


def test_per_layer_style_weights_weight_each_layer(rng):
    ys = [mx.nd.array(rng.normal(size=(1, 4, 5, 6))) for _ in range(3)]
    targets = [mx.nd.array(rng.normal(size=(4, 4))) for _ in range(3)]
    X = mx.nd.array(rng.normal(size=(1, 3, 5, 6)))
    style_l = compute_loss(X, [ys[0]], ys, [ys[0]], targets, LossWeights(1.0, 10.0, 0.0, (1.0, 0.0, 3.0)))["style"]
    expected = 10 * style_loss(ys[0], targets[0]).asscalar() + 30 * style_loss(ys[2], targets[2]).asscalar()
    assert style_l.asscalar() == pytest.approx(expected, rel=1e-5)


def test_transfer_uses_per_layer_style_weights(images):
    content, a, _ = images
    doubled = transfer(content, a, tiny(style_layer_weights=(2.0,) * 5))
    by_weight = transfer(content, a, tiny(style_weight=2e3))
    np.testing.assert_array_equal(doubled.image, by_weight.image)
    with pytest.raises(ValueError, match="2 style layer weights for 5 style layers"):
        tiny(style_layer_weights=(1, 2)).validate()


# ---- 6. sizes: long side, original -------------------------------------------------------------

def test_stage_sizes_by_long_side_or_original():
    assert Stage(long_side=64).resolved(120, 90).image_shape == (64, 48)
    assert Stage(long_side=64).resolved(90, 120).image_shape == (48, 64)
    assert Stage(original=True).resolved(123, 45).image_shape == (123, 45)
    assert Stage(300, 200).resolved(120, 90).image_shape == (300, 200)  # the lecture's: stretched
    with pytest.raises(ValueError, match="long side 64"):
        Stage(long_side=64).image_shape


def test_transfer_by_long_side_then_original_size(rng):
    content, style = smooth_image(rng, 30, 40), smooth_image(rng, 30, 30)
    settings = tiny(Stage(long_side=32, optimizer="adam", lr=0.05, epochs=2),
                    Stage(original=True, optimizer="adam", lr=0.05, epochs=1))
    result = transfer(content, style, settings)
    assert [im.shape for im in result.stage_images] == [(24, 32, 3), (30, 40, 3)]
    assert [(s.width, s.height) for s in result.settings.stages] == [(32, 24), (40, 30)]


# ---- 7. snapshots and resume -------------------------------------------------------------------

class Interrupted(Exception):
    pass


def interrupt_after(stage, epoch, path=None):
    """A callback that stops the run after that epoch, writing a checkpoint first when given a path."""
    def callback(p):
        if (p.stage, p.epoch) == (stage, epoch):
            if path is not None:
                p.checkpoint(path)
            raise Interrupted
    return callback


RESUME_CASES = {
    # Adam's moments and update counts are in the optimizer state; two stages.
    "adam, stage 1": ((Stage(32, 24, "adam", 0.05, 4, 2), Stage(40, 30, "adam", 0.05, 3, 200)), (0, 1)),
    "adam, stage 2": ((Stage(32, 24, "adam", 0.05, 4, 2), Stage(40, 30, "adam", 0.05, 3, 200)), (1, 0)),
    "adam, end of stage 1": ((Stage(32, 24, "adam", 0.05, 4, 2), Stage(40, 30, "adam", 0.05, 3, 200)), (0, 3)),
    # L-BFGS keeps its curvature pairs in the optimizer state.
    "lbfgs": ((Stage(32, 24, "lbfgs", 1.0, 5, 200),), (0, 2)),
    # lr 5 diverges at epochs 3 and 6 here: the recovery state must survive the interruption.
    "sgd diverging, before a recovery": ((Stage(32, 24, "sgd", 5.0, 9, 4),), (0, 2)),
    "sgd diverging, at a recovery": ((Stage(32, 24, "sgd", 5.0, 9, 4),), (0, 3)),
    "sgd diverging, after a recovery": ((Stage(32, 24, "sgd", 5.0, 9, 4),), (0, 4)),
}


@functools.lru_cache(maxsize=None)
def uninterrupted(stages):
    from skimage import data

    return transfer(data.chelsea(), data.immunohistochemistry(), tiny(*stages))


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_equals_uninterrupted(case, tmp_path):
    from skimage import data

    stages, (stage, epoch) = RESUME_CASES[case]
    content, style = data.chelsea(), data.immunohistochemistry()
    settings = tiny(*stages)
    whole = uninterrupted(stages)
    if case.startswith("sgd"):
        assert any("event" in h for h in whole.history), "the case should include a recovery"
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        transfer(content, style, settings, interrupt_after(stage, epoch, ckpt))
    resumed = transfer(content, style, settings, resume=ckpt)
    np.testing.assert_array_equal(whole.image, resumed.image)
    assert len(whole.stage_images) == len(resumed.stage_images)
    for a, b in zip(whole.stage_images, resumed.stage_images):
        np.testing.assert_array_equal(a, b)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == strip


def test_resume_keeps_the_count_of_recoveries(tmp_path):
    """With one recovery allowed, the run gives up at its second divergence, resumed or not."""
    from skimage import data

    from neural_style.errors import DivergedError

    content, style = data.chelsea(), data.immunohistochemistry()
    # k = 100 pinned: with it this schedule diverges twice at 32x24 (a larger k tames it).
    settings = tiny(Stage(32, 24, "sgd", 5.0, 9, 4), max_recoveries=1, activation_scale=100.0)
    with pytest.raises(DivergedError) as whole:
        transfer(content, style, settings)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        transfer(content, style, settings, interrupt_after(0, 4, ckpt))  # after the first recovery
    with pytest.raises(DivergedError) as resumed:
        transfer(content, style, settings, resume=ckpt)
    assert (resumed.value.stage, resumed.value.epoch) == (whole.value.stage, whole.value.epoch)
    np.testing.assert_array_equal(resumed.value.result.image, whole.value.result.image)


def test_a_stopped_run_writes_a_checkpoint_that_resumes_to_the_same_image(tmp_path):
    """What Ctrl-C does on the command line: the stop flag ends the run after an epoch and, with
    save_to, the checkpoint is written there."""
    import threading

    from skimage import data

    from neural_style.errors import Interrupted as Stopped

    stages = RESUME_CASES["adam, stage 2"][0]
    stop = threading.Event()

    def press_ctrl_c(p):
        if (p.stage, p.epoch) == (1, 1):
            stop.set()

    out = tmp_path / "out.png"
    with pytest.raises(Stopped) as e:
        transfer(data.chelsea(), data.immunohistochemistry(), tiny(*stages), press_ctrl_c, stop, save_to=out)
    assert e.value.checkpoint == tmp_path / "out.ckpt" and e.value.checkpoint.is_file()
    resumed = transfer(data.chelsea(), data.immunohistochemistry(), tiny(*stages), resume=e.value.checkpoint)
    np.testing.assert_array_equal(resumed.image, uninterrupted(stages).image)


def test_save_every_writes_snapshots_and_a_checkpoint_to_resume_from(tmp_path, images):
    content, a, _ = images
    out = tmp_path / "out.png"
    settings = tiny(Stage(32, 24, "adam", 0.05, 5, 2), init="random", seed=4, save_every=2)
    whole = transfer(content, a, settings, save_to=tmp_path / "whole.png")
    assert sorted(p.name for p in tmp_path.glob("whole_*")) == ["whole_s1_e0002.png", "whole_s1_e0004.png"]
    with pytest.raises(Interrupted):  # stopped in epoch 4 (0-based 3), after the snapshot of epoch 2
        transfer(content, a, settings, interrupt_after(0, 3), save_to=out)
    meta = read_metadata(tmp_path / "out_s1_e0002.png")
    assert meta["neural-style:epoch"] == "2" and read_settings(tmp_path / "out_s1_e0002.png").seed == 4
    with Image.open(tmp_path / "out_s1_e0002.png") as im:
        assert im.size == (32, 24)
    resumed = transfer(content, a, settings, resume=tmp_path / "out.ckpt", save_to=out)
    np.testing.assert_array_equal(whole.image, resumed.image)


def test_resume_refuses_other_settings_or_images(tmp_path, images):
    content, a, b = images
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        transfer(content, a, tiny(), interrupt_after(0, 1, ckpt))
    with pytest.raises(ValueError, match=r"other settings \(style_weight\)"):
        transfer(content, a, tiny(style_weight=5.0), resume=ckpt)
    with pytest.raises(ValueError, match="other content or style images"):
        transfer(content, b, tiny(), resume=ckpt)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a neural-style checkpoint"):
        transfer(content, a, tiny(), resume=tmp_path / "junk.ckpt")


# ---- 8. settings in the output -----------------------------------------------------------------

def rich_settings():
    return Settings(stages=(Stage(long_side=64, optimizer="adam", lr=0.05, epochs=7), Stage(original=True, lr=1.0)),
                    style_weight=1234.5, content_layers=("relu4_2",), style_layers=("conv1_1", "relu3_1"),
                    style_layer_weights=(1.0, 0.25), style_blend=(0.7, 0.3), style_scale=0.5,
                    preserve_colors="luminance", init="random", seed=11, save_every=3)


def test_settings_round_trip_through_a_dict_and_json():
    s = rich_settings()
    assert Settings.from_dict(s.to_dict()) == s
    assert Settings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert Settings.from_dict(Settings().to_dict()) == Settings()


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_output_carries_settings_and_version(tmp_path, suffix, rng):
    path = tmp_path / f"out{suffix}"
    save_image(smooth_image(rng, 24, 32), path, metadata=image_metadata(rich_settings(), "c.jpg", ["a.jpg", "b.jpg"]))
    meta = read_metadata(path)
    assert meta["neural-style:version"] == neural_style.__version__
    assert meta["neural-style:content"] == "c.jpg" and json.loads(meta["neural-style:style"]) == ["a.jpg", "b.jpg"]
    assert read_settings(path) == rich_settings()
    if suffix == ".png":
        with Image.open(path) as im:  # real PNG text chunks, readable by any tool
            assert im.text["Software"] == f"neural-style {neural_style.__version__}"


def test_image_without_settings_is_a_clear_error(tmp_path, rng):
    path = tmp_path / "plain.png"
    save_image(smooth_image(rng, 8, 8), path)
    assert read_metadata(path) == {}
    with pytest.raises(ValueError, match="carries no neural-style settings"):
        read_settings(path)


# ---- 9. the Python API -------------------------------------------------------------------------

def test_stylize_takes_paths_pil_images_and_arrays(tmp_path, images):
    content, a, _ = images
    Image.fromarray(content).save(tmp_path / "c.png")
    Image.fromarray(a).save(tmp_path / "a.png")
    seen = []
    from_arrays = neural_style.stylize(content, a, stages=(TINY,), callback=seen.append)
    from_paths = neural_style.stylize(tmp_path / "c.png", str(tmp_path / "a.png"), stages=(TINY,))
    from_pil = neural_style.stylize(Image.fromarray(content), Image.fromarray(a), settings=Settings(stages=(TINY,)))
    assert isinstance(from_arrays, Image.Image) and from_arrays.mode == "RGB" and from_arrays.size == (32, 24)
    np.testing.assert_array_equal(np.asarray(from_arrays), np.asarray(from_paths))
    np.testing.assert_array_equal(np.asarray(from_arrays), np.asarray(from_pil))
    assert [p.epoch for p in seen] == [0, 1, 2] and seen[-1].losses is not None
    assert seen[-1].image().shape == (24, 32, 3)
    assert json.loads(from_arrays.info["neural-style:settings"])["stages"][0]["width"] == 32
    # the same as transfer, rounded to 8 bits
    np.testing.assert_array_equal(np.asarray(from_arrays),
                                  neural_style.images.to_uint8(transfer(content, a, tiny()).image))


def test_stylize_writes_the_output_with_its_settings(tmp_path, images):
    content, a, b = images
    out = tmp_path / "x.png"
    img = neural_style.stylize(content, [a, b], style_blend=(0.7, 0.3), stages=(TINY,), output=out)
    with Image.open(out) as saved:
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(img))
    assert read_settings(out).style_blend == (0.7, 0.3)


def test_stylize_rejects_unknown_settings(images):
    with pytest.raises(TypeError, match="unknown settings colour"):
        neural_style.stylize(images[0], images[1], colour="blue")
