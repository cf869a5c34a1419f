"""The settings and version a result was made with, carried inside the image file.

PNG keeps them in text chunks (one per key, readable by any PNG tool); JPEG, which has no text
chunks, keeps the same keys as one JSON object in its comment segment.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence, Union

import numpy as np
from PIL import Image

from .version import __version__
from .config import Settings

PREFIX = "neural-style:"


def describe(source: Any) -> str:
    """How an input image is named in the metadata: its path, or what kind of object it was."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return f"PIL image {source.size[0]}x{source.size[1]}"
    if isinstance(source, np.ndarray) and source.ndim >= 2:
        return f"array {source.shape[1]}x{source.shape[0]}"
    return type(source).__name__


def image_metadata(settings: Settings, content: Optional[str] = None, styles: Optional[Sequence[str]] = None,
                   extra: Optional[dict[str, Any]] = None) -> dict[str, str]:
    """Text keys for save_image: the package version, the settings as JSON, the inputs' names."""
    meta = {
        "Software": f"neural-style {__version__}",
        PREFIX + "version": __version__,
        PREFIX + "settings": json.dumps(settings.to_dict()),
    }
    if content is not None:
        meta[PREFIX + "content"] = content
    if styles is not None:
        meta[PREFIX + "style"] = json.dumps(list(styles))
    for key, value in (extra or {}).items():
        meta[PREFIX + key] = str(value)
    return meta


def read_metadata(path: Union[str, os.PathLike]) -> dict[str, str]:
    """The neural-style keys of an image written by save_image (empty when it has none)."""
    with Image.open(path) as im:
        if im.format == "PNG":
            text = dict(im.text)
        else:
            comment = im.info.get("comment")
            try:
                text = json.loads(comment) if comment else {}
            except ValueError:
                text = {}
            if not isinstance(text, dict):
                text = {}
    return {k: str(v) for k, v in text.items() if k.startswith(PREFIX) or k == "Software"}


def read_settings(path: Union[str, os.PathLike]) -> Settings:
    """The Settings a result was made with, from the image alone."""
    meta = read_metadata(path)
    if PREFIX + "settings" not in meta:
        raise ValueError(f"{path} carries no neural-style settings (only PNG and JPEG outputs of "
                         "neural-style do)")
    return Settings.from_dict(json.loads(meta[PREFIX + "settings"]))


def styles_of(meta: dict[str, str]) -> list[str]:
    return json.loads(meta[PREFIX + "style"]) if PREFIX + "style" in meta else []
