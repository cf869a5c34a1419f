"""The generated image is a block whose only parameter is the image, and get_inits its Trainer."""
import mxnet as mx
import numpy as np
from mxnet import autograd, init

from neural_style.generated import GeneratedImage
from neural_style.train import get_inits


def test_only_parameter_is_the_image(rng):
    X = mx.nd.array(rng.normal(size=(1, 3, 6, 8)))
    gen = GeneratedImage(X.shape)
    gen.initialize(init.Constant(X))
    params = list(gen.collect_params().values())
    assert len(params) == 1 and params[0].shape == (1, 3, 6, 8)
    np.testing.assert_array_equal(gen().asnumpy(), X.asnumpy())


def test_get_inits_step_updates_the_image_in_place(rng):
    X0 = rng.normal(size=(1, 3, 4, 4))
    X, trainer = get_inits(mx.nd.array(X0), mx.cpu(), 0.1)
    assert trainer.learning_rate == 0.1
    np.testing.assert_array_equal(X.asnumpy(), X0.astype(np.float32))
    with autograd.record():
        loss = (X ** 2).sum()
    loss.backward()
    trainer.step(1)
    # plain SGD on sum(x^2): x - 0.1 * 2x, seen through the array the lecture's loop holds
    np.testing.assert_allclose(X.asnumpy(), X0 * 0.8, rtol=1e-6)
