"""Bad input gets one clear sentence naming the file; odd but valid images work."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from neural_style.config import MAX_ASPECT_RATIO, Settings, Stage
from neural_style.images import ImageError, load_image, read_image

from conftest import smooth_image


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height but which holds almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def png_rgb48(arr16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, built by hand: Pillow reads such files but does not write them."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = arr16.shape
    rows = b"".join(b"\0" + arr16[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def encoded(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def make_bad(kind: str, tmp_path, rng):
    """A broken input of the given kind, and the words its error message must contain."""
    photo = smooth_image(rng, 48, 64)
    path = tmp_path / f"bad_{kind}.png"
    if kind == "missing":
        return tmp_path / "no_such.png", "does not exist"
    if kind == "folder":
        path = tmp_path / "a_folder.png"
        path.mkdir()
        return path, "is a folder"
    if kind == "empty":
        path.write_bytes(b"")
        return path, "is empty"
    if kind == "text":
        path.write_text("this is a shopping list, not a picture\n" * 20)
        return path, "is not an image"
    if kind == "truncated_jpeg":
        path = tmp_path / "cut.jpg"
        data = encoded(photo, "JPEG")
        path.write_bytes(data[: len(data) // 2])
        return path, "damaged or truncated"
    if kind == "truncated_png":
        data = encoded(photo, "PNG")
        path.write_bytes(data[: len(data) // 2])
        return path, "damaged or truncated"
    if kind == "bomb":
        path.write_bytes(png_header_only(30_000, 20_000))  # 600 megapixels declared, 200 bytes on disk
        return path, "decompression bomb"
    if kind == "aspect":
        Image.fromarray(smooth_image(rng, 10, 400)).save(path)
        return path, "aspect ratio"
    raise AssertionError(kind)


BAD_KINDS = ["missing", "folder", "empty", "text", "truncated_jpeg", "truncated_png", "bomb", "aspect"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_is_one_sentence_naming_it(kind, tmp_path, rng):
    path, words = make_bad(kind, tmp_path, rng)
    with pytest.raises(ImageError) as info:
        read_image(path, role="content image")
    message = str(info.value)
    assert words in message and str(path) in message and message.startswith("content image")
    assert "\n" not in message
    # the library's loader (used by transfer() on paths) gives the same answer
    with pytest.raises(ImageError, match=words):
        load_image(path)


def test_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """12000x12000 is under Pillow's own error threshold (it would only warn and decode 430 MB)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(12_000, 12_000))
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or real_load(self))
    with pytest.raises(ImageError, match=r"12000x12000 pixels \(144 megapixels\).*--max-pixels"):
        read_image(path, max_pixels=100_000_000)
    assert not decoded


def test_the_pixel_limit_can_be_raised(tmp_path, rng):
    path = tmp_path / "photo.png"
    Image.fromarray(smooth_image(rng, 48, 64)).save(path)
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=64 * 48).shape == (48, 64, 3)
    # a raised limit also lifts Pillow's own check: this header passes the check, then fails to decode
    bomb = tmp_path / "declared.png"
    bomb.write_bytes(png_header_only(2000, 2000))
    with pytest.raises(ImageError, match="damaged or truncated"):
        read_image(bomb, max_pixels=5_000_000)


def test_aspect_ratio_at_the_limit_is_accepted(tmp_path, rng):
    path = tmp_path / "wide.png"
    Image.fromarray(smooth_image(rng, 20, int(20 * MAX_ASPECT_RATIO))).save(path)
    assert read_image(path).shape == (20, 200, 3)


def odd_images(rng):
    """name -> (bytes, expected (height, width)): modes and containers people actually have."""
    photo = smooth_image(rng, 48, 64)
    gray = Image.fromarray(photo[..., 0])
    out = {}

    def save(name, img, fmt, shape=(48, 64), **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = (buf.getvalue(), shape)

    save("gray.png", gray, "PNG")
    save("bilevel.png", gray.convert("1"), "PNG")
    palette = Image.fromarray(photo).convert("P", palette=Image.ADAPTIVE, colors=16)
    save("palette_transparent.png", palette, "PNG", transparency=0)
    save("gray_alpha.png", gray.convert("LA"), "PNG")
    save("rgba.png", Image.fromarray(photo).convert("RGBA"), "PNG")
    save("cmyk.jpg", Image.fromarray(photo).convert("CMYK"), "JPEG")
    save("sixteen_bit.png", Image.fromarray((photo[..., 0].astype(np.uint16) * 257)), "PNG")
    save("float.tif", Image.fromarray(photo[..., 0].astype(np.float32)), "TIFF")
    out["rgb48.png"] = (png_rgb48(photo.astype(np.uint16) * 257), (48, 64))
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise on display
    save("exif_rotated.jpg", Image.fromarray(photo), "JPEG", shape=(64, 48), exif=exif.tobytes())
    frames = [Image.fromarray(photo), Image.fromarray(255 - photo)]
    save("animated.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out


def test_odd_but_valid_images_are_read_as_rgb(tmp_path, rng):
    for name, (data, shape) in odd_images(rng).items():
        path = tmp_path / name
        path.write_bytes(data)
        arr = read_image(path)
        assert arr.shape == (*shape, 3) and arr.dtype == np.uint8, name
        assert arr.std() > 5, f"{name} decoded flat"


def test_sixteen_bit_keeps_its_range_and_gif_gives_its_first_frame(tmp_path, rng):
    images = odd_images(rng)
    (tmp_path / "16.png").write_bytes(images["sixteen_bit.png"][0])
    (tmp_path / "a.gif").write_bytes(images["animated.gif"][0])
    photo = smooth_image(np.random.default_rng(0), 48, 64)  # odd_images' photo: the rng fixture is seeded 0
    sixteen = read_image(tmp_path / "16.png")
    assert sixteen.max() > 200  # 16-bit values scaled, not clipped to 255 or divided to black
    (tmp_path / "48.png").write_bytes(images["rgb48.png"][0])
    np.testing.assert_array_equal(read_image(tmp_path / "48.png"), photo)
    gif = read_image(tmp_path / "a.gif").astype(int)
    # the first frame is the photo, the second its negative: compare mean brightness
    assert abs(gif.mean() - photo.mean()) < abs(gif.mean() - (255 - photo).mean())


# --- settings: the same ValueError for Python callers and the command line ----------------------

@pytest.mark.parametrize("change, words", [
    (dict(stages=(Stage(8, 8),)), "too small"),
    (dict(stages=(Stage(15, 300),)), "at least 16 px"),
    (dict(stages=(Stage(300, 20),)), "aspect ratio"),
    (dict(stages=(Stage(0, 200),)), "width must be a whole number of at least 1"),
    (dict(stages=(Stage(300, 200, epochs=0),)), "epochs"),
    (dict(stages=(Stage(300, 200, lr=0.0),)), "learning rate must be greater than 0"),
    (dict(stages=(Stage(300, 200, lr=-1.0),)), "learning rate"),
    (dict(stages=(Stage(300, 200, lr=float("nan")),)), "finite"),
    (dict(stages=(Stage(300, 200, lr=float("inf")),)), "finite"),
    (dict(stages=(Stage(300, 200, lr_decay_epoch=0),)), "lr_decay_epoch"),
    (dict(stages=(Stage(300, 200, optimizer="sgdd"),)), "not a gluon optimizer"),
    (dict(stages=()), "at least one stage"),
    (dict(style_weight=0.0), "style weight must be greater than 0"),
    (dict(content_weight=-1.0), "content weight must be at least 0"),
    (dict(tv_weight=float("nan")), "tv weight must be a finite number"),
    # any layer of the 37, by index or name, is usable (issue 5): only others are refused
    (dict(style_layers=(37,)), "style layer: VGG19 layer index 37 is out of range 0..36"),
    (dict(content_layers=(99,)), "content layer: VGG19 layer index 99 is out of range"),
    (dict(style_layers=("conv9_1",)), "style layer: unknown VGG19 layer 'conv9_1'; use an index 0..36 or one of: conv1_1"),
    (dict(style_layers=()), "at least one style layer"),
    (dict(max_pixels=0), "max_pixels"),
    (dict(max_recoveries=-1), "max_recoveries"),
    (dict(weights_source="torch"), "unknown weights source"),
])
def test_settings_validate_names_the_bad_setting(change, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Settings(**change).validate()


def test_valid_settings_pass_and_zero_content_or_tv_weight_is_allowed():
    Settings().validate()
    Settings(content_weight=0.0, tv_weight=0.0, stages=(Stage(16, 16),)).validate()
    # shallow layers only need fewer pixels: conv1_1 and conv2_1 (one pool) need 2 px
    Settings(stages=(Stage(4, 4),), content_layers=(5,), style_layers=(0, 5)).validate()


def test_transfer_validates_before_loading_vgg(tmp_path):
    from neural_style import transfer

    # Loading VGG would fail on the missing weights file: the size's error must come first.
    with pytest.raises(ValueError, match="too small"):
        transfer(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8),
                 Settings(stages=(Stage(10, 10),), weights_file=str(tmp_path / "no-such-vgg19.pth")))
