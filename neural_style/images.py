"""Reading, writing, and the lecture's pre- and post-processing of images."""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

import mxnet as mx
import numpy as np
from mxnet import nd
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .config import MAX_ASPECT_RATIO, MAX_PIXELS, RGB_MEAN, RGB_STD

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any Pillow image as 8-bit RGB, HWC: EXIF orientation applied, alpha composited on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode != "F" and arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


class ImageError(ValueError):
    """An input image that cannot be used; the message names the file and says why."""


def load_image(source: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image from a path, a PIL image or an array, as 8-bit RGB HWC (first frame if animated).

    A path or file goes through read_image's checks; max_pixels is its decompression-bomb limit.
    """
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        return np.ascontiguousarray(arr[..., :3])
    if isinstance(source, Image.Image):
        return to_rgb8(source)
    return read_image(source, max_pixels)


@contextlib.contextmanager
def _pillow_limit_off():
    """Pillow's own bomb check warns or fails by its limit; read_image applies the user's instead."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def read_image(source, max_pixels: int = MAX_PIXELS, role: str = "image") -> np.ndarray:
    """Decode an image file as 8-bit RGB HWC, every failure an ImageError of one sentence.

    The size the header declares is checked before any pixel is decoded: more than max_pixels
    (a decompression bomb) or an aspect ratio above MAX_ASPECT_RATIO is refused. ``role``
    ("content image", ...) starts the messages.
    """
    name = f"{role} {source}" if isinstance(source, (str, os.PathLike)) else role
    if isinstance(source, (str, os.PathLike)):
        try:
            info = os.stat(source)
        except FileNotFoundError:
            raise ImageError(f"{name} does not exist") from None
        except OSError as e:
            raise ImageError(f"cannot read {name}: {e.strerror}") from None
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{name} is a folder, not an image")
        if info.st_size == 0:
            raise ImageError(f"{name} is empty (0 bytes)")
    try:
        with _pillow_limit_off():
            img = Image.open(source)
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image (Pillow recognises no image format in it)") from None
    except PermissionError:
        raise ImageError(f"cannot read {name}: permission denied") from None
    except Exception as e:  # Pillow's parsers raise OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"{name} is damaged or truncated ({e})") from None
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageError(
                f"{name} declares {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than "
                f"the limit of {max_pixels / 1e6:g} megapixels that guards against decompression bombs; "
                f"if the image is genuine, raise the limit (--max-pixels)")
        if min(width, height) < 1:
            raise ImageError(f"{name} declares an empty size ({width}x{height} pixels)")
        if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
            raise ImageError(
                f"{name} is {width}x{height} pixels, an aspect ratio beyond the {MAX_ASPECT_RATIO:g}:1 "
                "that style transfer supports; crop it first")
        try:
            with _pillow_limit_off():
                img.seek(0)
                img.load()
                return to_rgb8(img)
        except MemoryError:
            raise ImageError(f"not enough memory to decode {name} ({width}x{height} pixels)") from None
        except Exception as e:
            raise ImageError(f"{name} is damaged or truncated ({e})") from None


SKIMAGE = "skimage:"
# Callables of skimage.data that are not images.
NOT_IMAGES = {"download_all", "lbp_frontal_face_cascade_filename"}
# package:NAME, an image that ships inside this package (neural_style/data/NAME.jpg, see NOTICE).
PACKAGE = "package:"
PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def is_named(text: str) -> bool:
    """Whether text names an image that comes with a package (skimage:NAME, package:NAME), not a file."""
    return text.startswith((SKIMAGE, PACKAGE))


def packaged_image(name: str) -> Path:
    """The file of package:NAME. ImageError, listing the packaged images, when there is none."""
    files = {p.stem: p for p in PACKAGE_DATA.iterdir() if p.suffix.lower() in SAVE_FORMATS}
    if name not in files:
        raise ImageError(f"neural-style ships no image {name!r} (it ships " + ", ".join(
            PACKAGE + stem for stem in sorted(files)) + ")")
    return files[name]


def read_source(text: str, max_pixels: int = MAX_PIXELS, role: str = "image") -> np.ndarray:
    """An image named on the command line, read: a path (read_image's checks), package:NAME for
    an image this package ships, or skimage:NAME for scikit-image's own skimage.data.NAME().
    ValueError when it cannot be used."""
    if text.startswith(PACKAGE):
        return read_image(packaged_image(text[len(PACKAGE):]), max_pixels, role)
    if not text.startswith(SKIMAGE):
        return read_image(text, max_pixels, role)
    from skimage import data

    name = text[len(SKIMAGE):]
    loader = None if name.startswith("_") or name in NOT_IMAGES else getattr(data, name, None)
    if not callable(loader):
        raise ImageError(f"scikit-image has no image {name!r} (for example skimage:chelsea, skimage:coffee, "
                         "skimage:astronaut)")
    try:
        img = loader()
    except Exception as e:  # images not in the wheel need pooch and a download
        raise ImageError(f"cannot load {text} ({type(e).__name__}: {e})") from None
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (3, 4))):
        raise ImageError(f"{text} is not a 2-D image (shape {img.shape})")
    return img


def source_stem(text: str) -> str:
    """The name an image source gives an output: a file's stem, or the packaged image's name."""
    return text.split(":", 1)[1] if is_named(text) else Path(text).stem


def preprocess(img: Union[np.ndarray, nd.NDArray], image_shape: tuple[int, int], ctx: mx.Context = mx.cpu()) -> nd.NDArray:
    """Resize to image_shape = (width, height), bilinear, normalise with ImageNet mean/std, NCHW."""
    img = nd.array(img, dtype="float32") if isinstance(img, np.ndarray) else img.astype("float32")
    img = mx.image.imresize(img, *image_shape, interp=1)
    mean = nd.array(RGB_MEAN)
    std = nd.array(RGB_STD)
    img = (img / 255 - mean) / std
    return img.transpose((2, 0, 1)).expand_dims(axis=0).as_in_context(ctx)


def postprocess(X: nd.NDArray) -> nd.NDArray:
    """The inverse of preprocess: HWC on the CPU, clipped to [0, 1]."""
    img = X[0].as_in_context(mx.cpu())
    return (img.transpose((1, 2, 0)) * nd.array(RGB_STD) + nd.array(RGB_MEAN)).clip(0, 1)


def to_uint8(img: Union[np.ndarray, nd.NDArray]) -> np.ndarray:
    """A float image in [0, 1] as 8-bit, rounded."""
    arr = img.asnumpy() if isinstance(img, nd.NDArray) else np.asarray(img)
    return (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_image(img: Union[np.ndarray, nd.NDArray, Image.Image], path: Union[str, os.PathLike],
               metadata: Optional[dict[str, str]] = None, **pil_options) -> Path:
    """Write PNG or JPEG (by extension) atomically: a crash never leaves a half-written file.

    ``metadata`` (text keys and values) goes into PNG text chunks, or as one JSON object into
    the JPEG comment (JPEG has no text chunks); metadata.read_metadata reads either back.
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot save {path}: unknown image extension (use .png, .jpg or .jpeg)")
    if isinstance(img, Image.Image):
        pil = img
    else:
        arr = img.asnumpy() if isinstance(img, nd.NDArray) else np.asarray(img)
        if arr.dtype != np.uint8 and not np.isfinite(arr).all():
            raise ValueError(f"refusing to write {path}: the image holds NaN or infinite values")
        pil = Image.fromarray(arr if arr.dtype == np.uint8 else to_uint8(arr))
    if fmt == "JPEG":
        pil_options.setdefault("quality", 95)
    if metadata and fmt == "PNG":
        info = PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
        pil_options["pnginfo"] = info
    elif metadata:
        pil_options["comment"] = json.dumps(metadata)
    with atomic_write(path) as f:
        pil.save(f, fmt, **pil_options)
    return path


class atomic_write:
    """Context manager giving a binary file in path's folder that replaces path only on success.

    The data is flushed to disk before the rename, so even a power cut leaves either the old
    file or the complete new one; on any error (Ctrl-C included) the temporary file is removed.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()

    def _discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
