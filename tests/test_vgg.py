"""The feature network: the preprocessing fold, the activation scale, frozen parameters."""
import numpy as np
import pytest
from mxnet import autograd, nd

from neural_style.config import CONTENT_LAYERS, RGB_MEAN, RGB_STD, STYLE_LAYERS
from neural_style.layers import CONV_INDICES, CONV_NAMES
from neural_style.vgg import extract_features, load_vgg

from conftest import smooth_image

TAPS = CONTENT_LAYERS + STYLE_LAYERS
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def features(net, X):
    return [o.asnumpy() for o in net(nd.array(X))]


def test_lecture_layers_are_the_named_convolutions():
    names = dict(zip(CONV_INDICES, CONV_NAMES))
    assert [names[i] for i in STYLE_LAYERS] == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    assert [names[i] for i in CONTENT_LAYERS] == ["conv4_4"]


def test_fold_matches_caffe_preprocessing_including_borders(vgg_caffe, rng):
    img = smooth_image(rng, 40, 56).astype(np.float64)
    # the lecture's preprocessing, fed to the folded network
    lecture = ((img / 255 - RGB_MEAN) / RGB_STD).transpose(2, 0, 1)[None]
    # Caffe's preprocessing by hand (BGR, 0..255, mean subtracted), fed to the raw network
    caffe = (img[:, :, ::-1] - CAFFE_MEAN_BGR).transpose(2, 0, 1)[None]
    raw = load_vgg(TAPS, "caffe", activation_scale=1.0, fold=False)
    for ours, ref in zip(features(vgg_caffe, lecture), features(raw, caffe)):
        scale = np.abs(ref).max()
        assert np.abs(ours - ref).max() / scale < 1e-5
        border = np.concatenate([(ours - ref)[..., 0, :].ravel(), (ours - ref)[..., -1, :].ravel(),
                                 (ours - ref)[..., :, 0].ravel(), (ours - ref)[..., :, -1].ravel()])
        assert np.abs(border).max() / scale < 1e-5


@pytest.mark.parametrize("k", [7.0, 60.0])
def test_scale_divides_every_activation_by_k(vgg_caffe, rng, k):
    X = rng.normal(size=(1, 3, 32, 48)).astype(np.float32)
    scaled = load_vgg(TAPS, "caffe", activation_scale=k)
    for a, b in zip(features(scaled, X), features(vgg_caffe, X)):
        np.testing.assert_allclose(a * k, b, rtol=2e-4, atol=1e-5 * np.abs(b).max())


def test_vgg_parameters_get_no_gradient(vgg_caffe, rng):
    params = list(vgg_caffe.collect_params().values())
    assert params and all(p.grad_req == "null" for p in params)
    X = nd.array(rng.normal(size=(1, 3, 32, 32)))
    X.attach_grad()
    with autograd.record():
        contents, styles = extract_features(vgg_caffe, X, CONTENT_LAYERS, STYLE_LAYERS)
        loss = nd.add_n(*[y.sum() for y in contents + styles])
    loss.backward()
    assert np.abs(X.grad.asnumpy()).sum() > 0
    for p in params:
        with pytest.raises(Exception):
            p.grad()


def test_extract_features_order_and_shapes(vgg_caffe):
    contents, styles = extract_features(vgg_caffe, nd.zeros((1, 3, 48, 64)), CONTENT_LAYERS, STYLE_LAYERS)
    assert [y.shape for y in contents] == [(1, 512, 6, 8)]
    assert [y.shape for y in styles] == [(1, 64, 48, 64), (1, 128, 24, 32), (1, 256, 12, 16),
                                         (1, 512, 6, 8), (1, 512, 3, 4)]


def test_gluon_weights_missing_gives_clear_error(tmp_path, monkeypatch):
    from neural_style.weights import WeightsError

    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    # no network here and no file: the message names the file and where to put it
    monkeypatch.setattr("mxnet.gluon.model_zoo.model_store.download", _no_download)
    with pytest.raises(WeightsError, match="vgg19-ad2f660d.params"):
        load_vgg(TAPS, "gluon")


def _no_download(*args, **kwargs):
    raise OSError("no network")
