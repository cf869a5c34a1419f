"""The generated image as a Gluon block whose only parameter is the image itself."""
from __future__ import annotations

import mxnet as mx
from mxnet import init, nd
from mxnet.gluon import nn


class GeneratedImage(nn.Block):
    """Holds the image being optimised; forward() returns it."""

    def __init__(self, img_shape: tuple[int, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.weight = self.params.get("weight", shape=img_shape)

    def forward(self) -> nd.NDArray:
        return self.weight.data()


def generated_image(X: nd.NDArray, ctx: mx.Context) -> GeneratedImage:
    """A GeneratedImage initialised from X (the content image, or the previous stage's result)."""
    gen_img = GeneratedImage(X.shape)
    gen_img.initialize(init.Constant(X), ctx=ctx)
    return gen_img
