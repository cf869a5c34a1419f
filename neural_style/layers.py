"""Names of the layers of gluon's vgg19().features, and turning names or indices into indices.

The feature sequence is conv, relu, conv, relu, ..., with a max-pool closing each of the five
blocks. ``conv4_4`` is the layer index the lecture taps for content (before its ReLU);
``relu4_4`` is the index right after it, ``pool4`` the pool that ends block 4.
"""
from __future__ import annotations

from typing import Sequence, Union

# Convolutions per block in VGG19.
BLOCKS = (2, 2, 4, 4, 4)


def _layout() -> tuple[str, ...]:
    names = []
    for b, n in enumerate(BLOCKS, start=1):
        for k in range(1, n + 1):
            names += [f"conv{b}_{k}", f"relu{b}_{k}"]
        names.append(f"pool{b}")
    return tuple(names)


# LAYER_NAMES[i] is the name of features[i]; 37 layers, indices 0..36.
LAYER_NAMES = _layout()
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
# Positions and names of the 16 convolutions.
CONV_INDICES = tuple(i for i, name in enumerate(LAYER_NAMES) if name.startswith("conv"))
CONV_NAMES = tuple(LAYER_NAMES[i] for i in CONV_INDICES)
# Positions of the five max-pools.
POOL_INDICES = tuple(i for i, name in enumerate(LAYER_NAMES) if name.startswith("pool"))

LayerSpec = Union[int, str]


def layer_index(spec: LayerSpec) -> int:
    """An index of vgg19().features from an index (int or digits) or a name such as 'relu4_2'."""
    if isinstance(spec, bool):
        raise ValueError(f"unknown VGG19 layer {spec!r}")
    if isinstance(spec, int):
        index = spec
    else:
        text = str(spec).strip().lower()
        if text.isdigit():
            index = int(text)
        elif text in LAYER_INDEX:
            return LAYER_INDEX[text]
        else:
            raise ValueError(
                f"unknown VGG19 layer {spec!r}; use an index 0..{len(LAYER_NAMES) - 1} or one of: "
                + ", ".join(LAYER_NAMES))
    if not 0 <= index < len(LAYER_NAMES):
        raise ValueError(f"VGG19 layer index {index} is out of range 0..{len(LAYER_NAMES) - 1}")
    return index


def min_side(taps: Sequence[int], map_side: int = 1) -> int:
    """The fewest pixels per side for which every layer up to the deepest tap is at least
    map_side x map_side (reflect padding needs 2: a 1-pixel map has nothing to mirror).

    Each max-pool before the tap halves the size, rounding down, so n pools need 2**n pixels:
    16 for the lecture's conv5_1 (layer 28, after four pools). Never less than 2, which the
    total-variation loss needs.
    """
    pools = sum(1 for p in POOL_INDICES if p < max(taps))
    return max(2, map_side * 2 ** pools)


def layer_name(index: int) -> str:
    return LAYER_NAMES[index]


def after_relu(layers: Sequence[int]) -> tuple[int, ...]:
    """Each convolution among layers replaced by the ReLU after it (conv1_1 -> relu1_1), the
    other layers kept: the lecture's taps moved past their ReLU, where the peers tap."""
    return tuple(i + 1 if i in CONV_INDICES else i for i in layers)
