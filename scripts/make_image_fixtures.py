#!/usr/bin/env python3
"""Writes the decoder fixtures in Tests/EffImageTests/Fixtures: small PNGs of every colour type
and bit depth, JPEGs (YCbCr, gray, Adobe CMYK), and a PNG whose header claims 100000x100000
pixels. expected.json holds the RGB bytes each file must decode to.

PNGs are written by Pillow where it can, and by hand (zlib + chunk CRCs) for 16-bit colour,
which Pillow cannot write. Expected pixels come from the source arrays for lossless files
(8-bit: as stored; 16-bit: the high byte; alpha dropped; gray replicated; palette looked up) and
from Pillow's own decoder for JPEGs.

    pip install pillow numpy
    python scripts/make_image_fixtures.py
"""
import io
import json
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/EffImageTests/Fixtures"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(20261123)
W, H = 7, 5
expected = {}


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, rows):
    """A PNG from already-packed rows (filter type 0 on each)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"".join(b"\x00" + row for row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")


def save(name, data, rgb):
    (OUT / name).write_bytes(data)
    rgb = np.asarray(rgb, dtype=np.uint8)
    expected[name] = {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "rgb": rgb.flatten().tolist()}


def pil_bytes(image, fmt, **kw):
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
gray = rng.integers(0, 256, (H, W), dtype=np.uint8)

save("rgb8.png", pil_bytes(Image.fromarray(rgb, "RGB"), "PNG"), rgb)
save("rgba8.png", pil_bytes(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"), rgb)
save("gray8.png", pil_bytes(Image.fromarray(gray, "L"), "PNG"), np.dstack([gray] * 3))
save("graya8.png", pil_bytes(Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"), np.dstack([gray] * 3))
bits = rng.integers(0, 2, (H, W)).astype(bool)
save("gray1.png", pil_bytes(Image.fromarray(bits), "PNG"), np.dstack([bits.astype(np.uint8) * 255] * 3))

palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
indices = rng.integers(0, 6, (H, W), dtype=np.uint8)
p_image = Image.fromarray(indices, "P")
p_image.putpalette(palette.flatten().tolist())
save("palette.png", pil_bytes(p_image, "PNG", transparency=2), palette[indices])

gray16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
save("gray16.png", raw_png(W, H, 16, 0, [gray16[y].astype(">u2").tobytes() for y in range(H)]),
     np.dstack([(gray16 >> 8).astype(np.uint8)] * 3))
rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
save("rgb16.png", raw_png(W, H, 16, 2, [rgb16[y].astype(">u2").tobytes() for y in range(H)]),
     (rgb16 >> 8).astype(np.uint8))
rgba16 = rng.integers(0, 65536, (H, W, 4), dtype=np.uint16)
save("rgba16.png", raw_png(W, H, 16, 6, [rgba16[y].astype(">u2").tobytes() for y in range(H)]),
     (rgba16[..., :3] >> 8).astype(np.uint8))

# JPEGs: a smooth picture (so the codec has something realistic), decoded by Pillow for the
# expected pixels.
yy, xx = np.mgrid[0:24, 0:32]
smooth = np.dstack([xx * 8, yy * 10, (xx + yy) * 4]).clip(0, 255).astype(np.uint8)
for name, image in [("rgb.jpg", Image.fromarray(smooth, "RGB")),
                    ("gray.jpg", Image.fromarray(smooth[..., 0], "L")),
                    ("cmyk.jpg", Image.fromarray(smooth, "RGB").convert("CMYK"))]:
    data = pil_bytes(image, "JPEG", quality=90)
    save(name, data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))

# A valid-looking PNG whose header claims 100000 x 100000 pixels (10 gigapixels).
(OUT / "huge_header.png").write_bytes(raw_png(100000, 100000, 8, 2, [b"\x00\x00\x00"]))

# Pillow's resampling (what timm / torchvision pre-processing runs): small exact cases, and
# torchvision's Resize(256) + CenterCrop(224) of samples/chelsea.png stored losslessly.
ROOT = OUT.parent.parent.parent
chelsea = Image.open(ROOT / "samples/chelsea.png").convert("RGB")
small = Image.fromarray(rgb, "RGB")
resized = {}
for source_name, source, size in [("chelsea.png", chelsea, (37, 29)), ("chelsea.png", chelsea, (300, 200)),
                                  ("rgb8.png", small, (20, 13)), ("rgb8.png", small, (3, 9))]:
    for filter_name, flt in [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)]:
        out = np.asarray(source.resize(size, flt))
        resized[f"{source_name} {size[0]}x{size[1]} {filter_name}"] = {
            "source": source_name, "width": size[0], "height": size[1], "filter": filter_name, "rgb": out.flatten().tolist()}
(OUT / "resize_expected.json").write_text(json.dumps(resized))
import torchvision.transforms as T
crop = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224)])(chelsea)
crop.save(OUT / "chelsea_resize256_crop224.png")

(OUT / "expected.json").write_text(json.dumps(expected))
print(f"wrote {len(expected)} decodable fixtures and huge_header.png to {OUT}")
