"""The generated image as a Gluon block whose only parameter is the image itself."""
from __future__ import annotations

from mxnet import nd
from mxnet.gluon import nn


class GeneratedImage(nn.Block):
    """Holds the image being optimised; forward() returns it."""

    def __init__(self, img_shape: tuple[int, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.weight = self.params.get("weight", shape=img_shape)

    def forward(self) -> nd.NDArray:
        return self.weight.data()

