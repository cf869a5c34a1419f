"""What the controls beyond the lecture change: the images the network sees, the style targets,
the first stage's starting image, and the colours of the result.

The training loop (train.train) is the lecture's; everything here only builds its inputs or
post-processes its output. With the default Settings every function returns what the lecture
would use.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Optional, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import nd

from .config import Settings, Stage, style_size
from .images import ImageLike, preprocess, read_image
from .losses import GRAM, StyleStatistic, mix
from .vgg import VGGFeatures, extract_features

StyleLike = Union[ImageLike, Sequence[ImageLike]]


def style_list(style: StyleLike) -> list:
    """One style image or several (a list or tuple of them) as a list."""
    if isinstance(style, (list, tuple)):
        if not style:
            raise ValueError("give at least one style image")
        return list(style)
    return [style]


def blend_weights(settings: Settings, n: int) -> tuple[float, ...]:
    """The weight of each of n style images, summing to 1 (equal when settings.style_blend is None)."""
    if settings.style_blend is None:
        return (1.0,) if n == 1 else tuple(1.0 / n for _ in range(n))
    if len(settings.style_blend) != n:
        raise ValueError(f"{len(settings.style_blend)} style blend weights for {n} style images")
    total = sum(settings.style_blend)
    return tuple(w / total for w in settings.style_blend)


def fingerprint(img: np.ndarray) -> str:
    """A short hash of an image's pixels, to tell on resume that the inputs are the same."""
    h = hashlib.sha256(str(img.shape).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()[:16]


# ---- colours ---------------------------------------------------------------------------------

def luminance(img: np.ndarray) -> np.ndarray:
    """The Y (luma) channel of an 8-bit or [0, 1] RGB image, floats in [0, 1]."""
    from skimage.color import rgb2yiq

    return rgb2yiq(img)[..., 0]


def grey(y: np.ndarray) -> np.ndarray:
    """A luminance image in [0, 1] as a grey RGB image on the 0..255 scale (what preprocess reads)."""
    return np.repeat(np.clip(y, 0, 1)[..., None] * 255.0, 3, axis=-1)


def network_images(content: np.ndarray, styles: Sequence[np.ndarray], mode: Optional[str]) -> tuple:
    """The content and style images as the network sees them under settings.preserve_colors.

    None: unchanged. "histogram": each style's colour histogram matched to the content's
    (scikit-image). "luminance": both as grey images of their luminance, each style's luminance
    shifted and scaled to the content's mean and standard deviation (Gatys et al. 2016, sec. 2).
    """
    if mode is None:
        return content, list(styles)
    if mode == "histogram":
        from skimage.exposure import match_histograms

        return content, [match_histograms(s, content, channel_axis=-1) for s in styles]
    if mode == "luminance":
        y_c = luminance(content)
        matched = []
        for s in styles:
            y_s = luminance(s)
            matched.append(grey((y_s - y_s.mean()) / max(y_s.std(), 1e-8) * y_c.std() + y_c.mean()))
        return grey(y_c), matched
    raise ValueError(f"unknown preserve_colors mode {mode!r}")


def resize(img: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """img resized to (width, height) the way preprocess does it (bilinear), as float32 HWC."""
    return mx.image.imresize(nd.array(img, dtype="float32"), *image_shape, interp=1).asnumpy()


def keep_content_chroma(out: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The luminance of out (HWC, [0, 1]) with the YIQ chroma (I, Q) of content at out's size."""
    from skimage.color import rgb2yiq, yiq2rgb

    h, w = out.shape[:2]
    chroma = rgb2yiq(resize(content, (w, h)) / 255.0)[..., 1:]
    yiq = np.concatenate([rgb2yiq(out)[..., :1], chroma], axis=-1)
    return np.clip(yiq2rgb(yiq), 0, 1).astype(np.float32)


# ---- style targets ---------------------------------------------------------------------------

def style_targets(net: VGGFeatures, styles: Sequence[np.ndarray], weights: Sequence[float], stage: Stage,
                  settings: Settings, ctx: mx.Context, statistic: StyleStatistic = GRAM,
                  moments_of: Optional[Callable[[nd.NDArray], list]] = None) -> list:
    """The style target of each style layer (the lecture's Gram matrices by default): the
    statistic's target of the blend-weighted mix of the style images' moments.

    A single style gives exactly the lecture's target; a style with weight 0 is not computed.
    ``moments_of`` gives a preprocessed style image's moments at the style layers (default: from
    its features, untiled; tiles.Tiling.moments for a stage too large for them).
    """
    def untiled(X: nd.NDArray) -> list:
        _, styles_Y = extract_features(net, X, settings.content_layers, settings.style_layers)
        return [statistic.moments(Y) for Y in styles_Y]

    shape = style_size(stage, settings.style_scale)
    used = [(img, w) for img, w in zip(styles, weights) if w != 0]
    per_style = [(moments_of or untiled)(preprocess(img, shape, ctx)) for img, _ in used]
    if len(styles) == 1:
        return [statistic.target(m) for m in per_style[0]]
    return [statistic.target(mix(layer, [w for _, w in used])) for layer in zip(*per_style)]


# ---- the starting image ----------------------------------------------------------------------

# --init random: mid-grey with Gaussian noise (on the 0..255 scale). Full-range white noise
# (Gatys et al. with L-BFGS) is still mostly noise after a few hundred first-order steps; a
# milder start becomes an image in the epochs a run here has, and still varies with the seed.
RANDOM_INIT_MEAN = 127.5
RANDOM_INIT_STD = 16.0

def initial_image(settings: Settings, content_X: nd.NDArray, stage: Stage, rng: np.random.Generator,
                  ctx: mx.Context) -> nd.NDArray:
    """The first stage's starting image (preprocessed) for settings.init.

    "content": the content image (the lecture). "random": mid-grey plus Gaussian noise from rng
    (grey noise in luminance mode). Otherwise a path: that image resized to the stage.
    """
    luma = settings.preserve_colors == "luminance"
    if settings.init == "content":
        return content_X
    w, h = stage.image_shape
    if settings.init == "random":
        noise = rng.normal(RANDOM_INIT_MEAN, RANDOM_INIT_STD, size=(h, w, 1 if luma else 3))
        img = np.clip(np.repeat(noise, 3, axis=-1) if luma else noise, 0.0, 255.0)
    else:
        img = read_image(settings.init, settings.max_pixels, "initial image")
        if luma:
            img = grey(luminance(img))
    return preprocess(img, (w, h), ctx)
