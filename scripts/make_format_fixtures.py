#!/usr/bin/env python3
"""Writes the picture-format fixtures in Tests/EffImageTests/Fixtures/formats with Pillow: a
64x48 crop of samples/chelsea.png as BMP (24-bit), GIF (an animation: its first frame counts),
WebP (lossless), TIFF (RGB deflate, LZW, 8-bit gray; tiled RGB and gray through tifffile), and for each NAME.expected.png, the
RGB pixels Pillow decodes (first frame) -- effdense must decode the same, pixel for pixel.

    pip install pillow
    python3 scripts/make_format_fixtures.py
"""
import pathlib

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/EffImageTests/Fixtures/formats"
OUT.mkdir(parents=True, exist_ok=True)
crop = Image.open(ROOT / "samples/chelsea.png").convert("RGB").crop((100, 60, 164, 108))

crop.save(OUT / "chelsea.bmp")
frames = [crop.quantize(64), crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).quantize(64)]
frames[0].save(OUT / "chelsea.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
crop.save(OUT / "chelsea.webp", lossless=True)
crop.save(OUT / "chelsea_deflate.tif", compression="tiff_adobe_deflate")
crop.save(OUT / "chelsea_lzw.tif", compression="tiff_lzw")   # Pillow writes strips
# Tiled TIFFs (tifffile): 16 x 16 tiles over a 70 x 45 crop, so the last row and column of tiles
# are partial; deflate RGB, and LZW gray.
try:
    import numpy as np
    import tifffile
    wide = Image.open(ROOT / "samples/chelsea.png").convert("RGB").crop((100, 60, 170, 105))
    tifffile.imwrite(OUT / "chelsea_tiled.tif", np.asarray(wide), tile=(16, 16), compression="zlib", photometric="rgb")
    tifffile.imwrite(OUT / "chelsea_tiled_gray.tif", np.asarray(wide.convert("L")), tile=(16, 16), compression="lzw")
    # A whole slide as Aperio's scanners write it (OpenSlide reads it as "aperio"): tiled level 0
    # with Aperio's ImageDescription, then a half-size level; and a copy cut short.
    slide = Image.open(ROOT / "samples/coffee.jpg").convert("RGB").crop((20, 30, 320, 230))
    aperio = "Aperio Image Library v12.0.15 \r\n{0}x{1} [0,0 {0}x{1}] (64x64) deflate|AppMag = 20|MPP = 0.4990"
    with tifffile.TiffWriter(OUT / "slide_aperio.svs") as svs:
        svs.write(np.asarray(slide), tile=(64, 64), photometric="rgb", compression="zlib", metadata=None, description=aperio.format(300, 200))
        svs.write(np.asarray(slide.resize((150, 100))), tile=(64, 64), photometric="rgb", compression="zlib", metadata=None, description=aperio.format(150, 100))
    slide.save(OUT / "slide_aperio.svs.expected.png")
except ImportError:
    print("tifffile not installed: the tiled TIFF fixtures are not remade")
crop.convert("L").save(OUT / "chelsea_gray.tif")
# What cannot be read as a stream of rows (pictures over the pixel limit): an interlaced PNG
# and a progressive JPEG.
def write_adam7_png(picture, path):
    """An 8-bit RGB PNG with Adam7 interlacing (Pillow never writes one): the seven passes'
    sub-pictures, each row with filter type 0, deflated together."""
    import struct
    import zlib
    rgb = picture.convert("RGB")
    width, height = rgb.size
    pixels = rgb.tobytes()
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        for y in range(y0, height, dy):
            columns = range(x0, width, dx)
            if len(columns) == 0:
                continue
            raw.append(0)
            for x in columns:
                raw += pixels[(y * width + x) * 3:(y * width + x) * 3 + 3]

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


write_adam7_png(crop, OUT / "chelsea_interlaced.png")
crop.save(OUT / "chelsea_progressive.jpg", progressive=True, quality=90)
for path in sorted(OUT.iterdir()):
    if path.suffix in (".bmp", ".gif", ".webp", ".tif") and not path.name.startswith("fuzz_"):
        Image.open(path).convert("RGB").save(OUT / (path.name + ".expected.png"))
        print(path.name, path.stat().st_size)
