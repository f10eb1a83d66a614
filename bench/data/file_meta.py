"""Features of an image *file*, read from its bytes and container headers only, never its pixels.

These are what a metadata shortcut is made of (README, "Auditing a dataset"): the container format, the size
and aspect, how many bytes a pixel costs, mode and bit depth, the JPEG quality estimated from the
quantisation tables, chroma subsampling, the progressive flag, and which metadata blocks the file
carries (EXIF, ICC, XMP, PNG text chunks, C2PA manifests, generator tags such as a ComfyUI workflow
or A1111 ``parameters``). PIL's ``Image.open`` parses headers lazily; nothing here calls ``load()``,
and PNG chunks are walked directly so that text chunks after the image data are seen without decoding.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, UnidentifiedImageError

# (name, categorical): the columns of :func:`metadata_matrix`, in order.
FEATURES = (("format", True), ("width", False), ("height", False), ("aspect", False), ("megapixels", False),
            ("bytes_per_pixel", False), ("mode", True), ("bit_depth", False), ("jpeg_quality", False),
            ("chroma_subsampling", True), ("progressive", False), ("exif_bytes", False), ("icc_bytes", False),
            ("xmp_bytes", False), ("text_chunks", False), ("text_bytes", False), ("c2pa", False),
            ("generator_tag", False))
FEATURE_NAMES = tuple(name for name, _ in FEATURES)
GENERATOR_KEYS = ("parameters", "prompt", "workflow", "comfyui", "invokeai", "dream", "sd-metadata",
                  "negative_prompt", "generation_data")
# Standard IJG luminance quantisation table (quality 50), in natural order; PIL reports tables in the same order.
_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
                      56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
                      104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
                     dtype=np.float64)
_ZIGZAG = np.array([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
                    20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
                    59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63])
_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def jpeg_quality(luma_table) -> float:
    """IJG quality (1..100) whose scaled standard table best matches a luminance quantisation table.

    PIL gives the table in zig-zag order (as stored in the file); both orders are tried and the closer kept.
    """
    q = np.asarray(list(luma_table), dtype=np.float64)
    if q.size != 64:
        return float("nan")
    best, best_err = float("nan"), np.inf
    for table in (q, q[np.argsort(_ZIGZAG)]):
        scale = float(np.mean(table / _IJG_LUMA)) * 100.0
        quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
        quality = float(np.clip(quality, 1.0, 100.0))
        s = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
        expected = np.clip(np.floor((_IJG_LUMA * s + 50.0) / 100.0), 1, 255)
        err = float(np.abs(expected - table).mean())
        if err < best_err:
            best, best_err = quality, err
    return round(best, 1)


def _png_chunks(data: bytes) -> dict:
    """Walk PNG chunks by their length fields (image data is skipped, not inflated)."""
    out = {"bit_depth": 8, "text_chunks": 0, "text_bytes": 0, "exif_bytes": 0, "icc_bytes": 0, "xmp_bytes": 0,
           "c2pa": 0, "generator_tag": 0}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + min(length, 1 << 16)]
        if kind == b"IHDR" and len(body) >= 9:
            out["bit_depth"] = body[8]
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            key = body.split(b"\0", 1)[0].decode("latin-1").lower()
            if key == "xml:com.adobe.xmp":
                out["xmp_bytes"] += length
            else:
                out["text_chunks"] += 1
                out["text_bytes"] += length
            out["generator_tag"] |= int(any(k in key for k in GENERATOR_KEYS))
        elif kind == b"eXIf":
            out["exif_bytes"] += length
        elif kind == b"iCCP":
            out["icc_bytes"] += length
        elif kind == b"caBX":
            out["c2pa"] = 1
        elif kind == b"IEND":
            break
        pos += 12 + length
    return out


def _subsampling(img: Image.Image) -> str:
    layers = getattr(img, "layer", None)
    if not layers or len(layers) < 3:
        return "none"
    h0, v0 = layers[0][1], layers[0][2]
    h1, v1 = layers[1][1], layers[1][2]
    ratio = (h0 // max(h1, 1), v0 // max(v1, 1))
    return {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (4, 1): "4:1:1"}.get(ratio, f"{ratio[0]}x{ratio[1]}")


def file_features(data: bytes) -> dict:
    """One image file's header features (see :data:`FEATURES`); an unreadable file gives format 'unreadable'."""
    feats: dict = {"format": "unreadable", "width": np.nan, "height": np.nan, "aspect": np.nan,
                   "megapixels": np.nan, "bytes_per_pixel": np.nan, "mode": "unknown", "bit_depth": np.nan,
                   "jpeg_quality": np.nan, "chroma_subsampling": "none", "progressive": 0, "exif_bytes": 0,
                   "icc_bytes": 0, "xmp_bytes": 0, "text_chunks": 0, "text_bytes": 0, "c2pa": 0,
                   "generator_tag": 0}
    try:
        with Image.open(io.BytesIO(data)) as img:  # lazy: headers only
            w, h = img.size
            info = dict(img.info)
            feats.update(format=img.format or "unknown", width=w, height=h, aspect=round(w / max(h, 1), 4),
                         megapixels=w * h / 1e6, bytes_per_pixel=len(data) / max(w * h, 1), mode=img.mode,
                         bit_depth=_BITS.get(img.mode, 8))
            if img.format == "JPEG":
                tables = getattr(img, "quantization", None) or {}
                if 0 in tables:
                    feats["jpeg_quality"] = jpeg_quality(tables[0])
                feats["chroma_subsampling"] = _subsampling(img)
                feats["progressive"] = int(bool(info.get("progressive") or info.get("progression")))
                feats["bit_depth"] = getattr(img, "bits", 8)
            feats["exif_bytes"] = len(info.get("exif") or b"")
            feats["icc_bytes"] = len(info.get("icc_profile") or b"")
            xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or b""
            feats["xmp_bytes"] = len(xmp)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
        return feats
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        feats.update(_png_chunks(data))
    lowered = data[:1 << 20].lower() if feats["format"] != "PNG" else b""
    if b"c2pa" in lowered or b"jumb" in lowered:
        feats["c2pa"] = 1
    if any(k.encode() in lowered for k in ("trainedalgorithmicmedia", "stable diffusion", "midjourney", "dall")):
        feats["generator_tag"] = 1
    return feats


def metadata_matrix(rows: list[dict]) -> tuple[np.ndarray, list[int], dict[str, list[str]]]:
    """Rows of :func:`file_features` as a float matrix; categorical columns become integer codes
    (sorted category names; returned per feature), with their column indices. A value that does not apply
    (the JPEG quality of a PNG, the size of an unreadable file) is -1."""
    X = np.full((len(rows), len(FEATURES)), np.nan)
    categorical, vocab = [], {}
    for j, (name, is_cat) in enumerate(FEATURES):
        values = [r[name] for r in rows]
        if is_cat:
            vocab[name] = sorted({str(v) for v in values})
            codes = {v: i for i, v in enumerate(vocab[name])}
            X[:, j] = [codes[str(v)] for v in values]
            categorical.append(j)
        else:
            X[:, j] = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-1.0)
    return X, categorical, vocab
