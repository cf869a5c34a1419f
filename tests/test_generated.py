"""The generated image is a block whose only parameter is the image."""
import mxnet as mx
import numpy as np
from mxnet import autograd

from neural_style.generated import GeneratedImage, generated_image


def test_only_parameter_is_the_image(rng):
    X = mx.nd.array(rng.normal(size=(1, 3, 6, 8)))
    gen = generated_image(X, mx.cpu())
    params = list(gen.collect_params().values())
    assert len(params) == 1
    assert params[0].shape == (1, 3, 6, 8)
    np.testing.assert_array_equal(gen().asnumpy(), X.asnumpy())
    assert isinstance(gen, GeneratedImage)


def test_gradient_reaches_the_image(rng):
    gen = generated_image(mx.nd.array(rng.normal(size=(1, 3, 4, 4))), mx.cpu())
    with autograd.record():
        loss = (gen() ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(gen.weight.grad().asnumpy(), 2 * gen().asnumpy(), rtol=1e-6)
