"""Reading odd images, the lecture's pre/post-processing, and writing."""
import io

import numpy as np
import pytest
from mxnet import nd
from PIL import Image

from neural_style.config import RGB_MEAN, RGB_STD
from neural_style.images import load_image, postprocess, preprocess, save_image

from conftest import smooth_image


def test_preprocess_shape_is_width_then_height(rng):
    img = smooth_image(rng, 30, 40)
    X = preprocess(img, (64, 48))
    assert X.shape == (1, 3, 48, 64)
    assert X.dtype == np.float32


def test_preprocess_normalises_with_imagenet_statistics():
    img = np.full((10, 12, 3), (255, 0, 128), np.uint8)
    X = preprocess(img, (12, 10)).asnumpy()
    expected = (np.array([255, 0, 128]) / 255 - np.array(RGB_MEAN)) / np.array(RGB_STD)
    np.testing.assert_allclose(X[0, :, 5, 5], expected, rtol=1e-5)


def test_postprocess_inverts_preprocess_and_clips(rng):
    img = smooth_image(rng, 48, 64)
    back = postprocess(preprocess(img, (64, 48))).asnumpy()
    assert back.shape == (48, 64, 3)
    np.testing.assert_allclose(back * 255, img, atol=1e-3)
    X = nd.full((1, 3, 4, 4), 50.0)
    out = postprocess(X).asnumpy()
    assert out.max() == 1.0 and out.min() == 1.0


def roundtrip(img: Image.Image, fmt: str, **kw) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return load_image(buf)


def test_odd_modes_become_rgb8():
    gray = Image.fromarray((np.arange(48 * 64) % 256).astype(np.uint8).reshape(48, 64))
    for img, fmt in [
        (gray, "PNG"),
        (gray.convert("P"), "GIF"),
        (gray.convert("RGB").convert("CMYK"), "JPEG"),
        (gray.convert("RGBA"), "PNG"),
        (gray.convert("RGB"), "WEBP"),
        (gray.convert("RGB"), "TIFF"),
        (gray.convert("RGB"), "BMP"),
    ]:
        arr = roundtrip(img, fmt)
        assert arr.shape == (48, 64, 3) and arr.dtype == np.uint8, (img.mode, fmt)


def test_sixteen_bit_is_scaled_not_clipped():
    arr16 = np.full((8, 8), 65535 // 2, np.uint16)
    img = Image.fromarray(arr16)
    assert img.mode == "I;16"
    out = roundtrip(img, "PNG")
    assert abs(int(out[0, 0, 0]) - 128) <= 1


def test_transparent_palette_composites_on_white():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0] * 256)
    img.info["transparency"] = 0
    out = roundtrip(img, "PNG", transparency=0)
    assert (out == 255).all()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = roundtrip(img, "JPEG", exif=exif.tobytes())
    assert out.shape == (40, 20, 3)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    buf.seek(0)
    out = load_image(buf)
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


def test_save_by_extension(tmp_path, rng):
    img = smooth_image(rng, 48, 64).astype(np.float32) / 255
    for name, fmt in [("a.png", "PNG"), ("b.jpg", "JPEG"), ("c.JPEG", "JPEG")]:
        save_image(img, tmp_path / "sub" / name)
        with Image.open(tmp_path / "sub" / name) as im:
            assert im.format == fmt and im.size == (64, 48)
    png = np.asarray(Image.open(tmp_path / "sub" / "a.png"))
    np.testing.assert_array_equal(png, (img * 255 + 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="unknown image extension"):
        save_image(img, tmp_path / "d.gifx")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.png", "b.jpg", "c.JPEG"]
