"""Every kind of bad input gets correct handling or a recorded one-line skip, never a traceback."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import ImageSkip
from bench.data.dataset import load_dataset, probe_rows
from bench.data.images import decode_bytes, decode_image
from bench.data.manifest import Row
from helpers import textured


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


RGB = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)


def test_grayscale_becomes_rgb():
    out = decode_bytes(png_bytes(Image.fromarray(RGB[..., 0])))
    assert out.shape == (40, 30, 3) and out.dtype == np.uint8
    assert (out[..., 0] == RGB[..., 0]).all() and (out[..., 1] == out[..., 2]).all()


def test_cmyk_becomes_rgb():
    out = decode_bytes(png_bytes(Image.fromarray(RGB).convert("CMYK"), format="JPEG", quality=95))
    assert out.shape == (40, 30, 3)
    assert np.abs(out.astype(int) - RGB.astype(int)).mean() < 20  # same picture, not garbage


def test_16bit_is_rescaled_not_clipped():
    grey16 = (RGB[..., 0].astype(np.uint16) * 257)  # full 16-bit range
    out = decode_bytes(png_bytes(Image.fromarray(grey16)))
    assert out.dtype == np.uint8
    assert np.array_equal(out[..., 0], RGB[..., 0])  # PIL's plain convert would clip everything to 255


def test_32bit_integer_tiff_in_the_16bit_range_is_rescaled_and_beyond_it_skipped():
    """A mode I (int32) TIFF holding 0..65535 is scaled like a 16-bit image; values beyond (negative, or up to
    millions) have no defined 8-bit range: skipped with the range, never clipped into a wrong picture."""
    grey = RGB[..., 0].astype(np.int32) * 257
    out = decode_bytes(png_bytes(Image.fromarray(grey, "I"), format="TIFF"))
    assert np.array_equal(out[..., 0], RGB[..., 0])
    for values in (grey * 100, grey - 1000):
        with pytest.raises(ImageSkip) as error:
            decode_bytes(png_bytes(Image.fromarray(values.astype(np.int32), "I"), format="TIFF"))
        low, high = int(values.min()), int(values.max())
        assert str(error.value) == (f"32-bit integer image with values {low}..{high} beyond 0..65535 has no "
                                    "defined 8-bit range")


def test_rgba_alpha_is_dropped():
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 10, np.uint8)])
    out = decode_bytes(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert np.array_equal(out, RGB)


def test_palette_image():
    out = decode_bytes(png_bytes(Image.fromarray(RGB).convert("P")))
    assert out.shape == (40, 30, 3)


def test_exif_orientation_is_applied():
    img = Image.fromarray(RGB)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    out = decode_bytes(png_bytes(img, format="JPEG", quality=95, exif=exif.tobytes()))
    assert out.shape == (30, 40, 3)


@pytest.mark.parametrize("data,reason", [
    (b"", "empty file"),
    (b"this is not an image at all", "not a readable image"),
])
def test_unreadable_bytes(data, reason):
    with pytest.raises(ImageSkip, match=reason):
        decode_bytes(data)


def test_truncated_png():
    data = png_bytes(Image.fromarray(RGB))
    with pytest.raises(ImageSkip, match="corrupt or truncated"):
        decode_bytes(data[: len(data) // 2])


def test_tiny_image_skipped():
    with pytest.raises(ImageSkip, match="too small: 1x1"):
        decode_bytes(png_bytes(Image.new("RGB", (1, 1))))


def test_huge_image_skipped_from_header_without_decoding():
    # a 20000x20000 PNG compresses to a few hundred kB; only its header may be read
    data = png_bytes(Image.new("L", (20000, 20000)))
    with pytest.raises(ImageSkip, match="too large: 20000x20000"):
        decode_bytes(data)


def test_missing_file():
    with pytest.raises(ImageSkip, match="file not found"):
        decode_image("/nonexistent/x.png")


def test_dataset_records_every_bad_file_and_keeps_the_good(tmp_path, cache):
    rng = np.random.default_rng(1)
    good = []
    for i in range(12):
        Image.fromarray(textured(rng, 32)).save(tmp_path / f"real{i}.png")
        Image.fromarray(textured(rng, 32, smooth=True)).save(tmp_path / f"fake{i}.png")
        good += [f"real{i}.png,real", f"fake{i}.png,fake"]
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    data = png_bytes(Image.fromarray(RGB))
    (tmp_path / "trunc.png").write_bytes(data[:100])
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    Image.fromarray(RGB[..., 0]).save(tmp_path / "grey.png")
    bad = ["empty.png,fake", "text.png,fake", "trunc.png,real", "tiny.png,real", "missing.png,real",
           "grey.png,unknownlabel", "grey.png,real"]
    (tmp_path / "manifest.csv").write_text("path,label\n" + "\n".join(good + bad) + "\n")
    ds = load_dataset(str(tmp_path), cache, progress=False)
    reasons = {s.id: s.reason for s in ds.skips}
    assert reasons["empty.png"] == "empty file"
    assert "not a readable image" in reasons["text.png"]
    assert "truncated" in reasons["trunc.png"] or "unreadable" in reasons["trunc.png"]
    assert "too small" in reasons["tiny.png"]
    assert reasons["missing.png"] == "file not found"
    assert "unknown label" in reasons["grey.png"]
    assert len(ds.items) == 25  # 24 good + the grayscale image with a valid label
    assert all("\n" not in r for r in reasons.values())


def test_probe_is_cached_and_invalidated_by_changes(tmp_path, cache):
    p = tmp_path / "a.png"
    Image.fromarray(RGB).save(p)
    row = Row("a.png", str(p), 0, "real")
    items, _ = probe_rows([row], cache, progress=False)
    Image.fromarray(RGB[::-1].copy()).save(p)
    import os
    os.utime(p, ns=(1, 1))  # a different mtime
    items2, _ = probe_rows([row], cache, progress=False)
    assert items[0].sha256 != items2[0].sha256
