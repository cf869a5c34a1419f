"""The Python entry point: ``neural_style.stylize(content, style, **settings)``."""
from __future__ import annotations

import os
from dataclasses import fields, replace
from typing import Optional, Union

from PIL import Image

from .config import DEFAULT_PRESET, Settings, settings_for
from .controls import StyleLike, style_list
from .images import ImageLike, to_uint8
from .metadata import describe, image_metadata
from .outputs import write_result
from .hooks import Callback, StopFlag
from .schedule import checkpoint_path, transfer

PathLike = Union[str, os.PathLike]


def stylize(
    content: ImageLike,
    style: StyleLike,
    *,
    settings: Optional[Settings] = None,
    preset: Optional[str] = None,
    callback: Optional[Callback] = None,
    output: Optional[PathLike] = None,
    resume: Optional[PathLike] = None,
    stop: Optional[StopFlag] = None,
    **overrides,
) -> Image.Image:
    """Stylise content with one style image or a list of them; returns an RGB PIL image.

    ``content`` and each style are paths, PIL images or arrays (HWC, uint8 or floats in [0, 1]).
    ``overrides`` are fields of Settings (``style_blend=(0.7, 0.3)``, ``preserve_colors="luminance"``,
    ``stages=(Stage(300, 200),)``, ...), applied over ``settings`` or over a ``preset``'s values
    (config.PRESETS; default: the lecture's); with a preset, ``size`` is a --size value (a long
    side N ends the photo preset's coarse-to-fine schedule there).
    ``callback`` gets a Progress after every epoch. With ``output`` the image is also
    written there (PNG or JPEG, the settings in its metadata), and ``save_every`` snapshots and
    the checkpoint are named after it; ``resume`` continues from such a checkpoint. ``stop``
    (e.g. a threading.Event) ends the run after the current epoch, as in transfer().

    The returned image's ``info`` holds the same metadata (its ``neural-style:settings`` are the
    effective settings, which ``Settings.from_dict(json.loads(...))`` turns back into Settings).
    """
    if settings is not None and preset is not None:
        raise TypeError("stylize() takes settings or a preset, not both")
    known = {f.name for f in fields(Settings)} | ({"size"} if settings is None else set())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"stylize() got unknown settings {', '.join(unknown)}; the settings are: "
                        + ", ".join(sorted(known)))
    if settings is not None:
        settings = replace(settings, **overrides)
    else:
        settings = settings_for(preset or DEFAULT_PRESET, **overrides)
    result = transfer(content, style, settings, callback, stop, resume=resume, save_to=output)
    meta = image_metadata(result.settings, describe(content), [describe(s) for s in style_list(style)])
    img = Image.fromarray(to_uint8(result.image))
    img.info.update(meta)
    if output is not None:
        write_result(img, output, meta, checkpoint=checkpoint_path(output) if settings.save_every or resume is not None else None)
    return img
