#!/usr/bin/env python3
"""Writes the picture-format fixtures in Tests/EffImageTests/Fixtures/formats with Pillow: a
64x48 crop of samples/chelsea.png as BMP (24-bit), GIF (an animation: its first frame counts),
WebP (lossless), TIFF (RGB deflate, LZW tiled, 8-bit gray), and for each NAME.expected.png, the
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
crop.save(OUT / "chelsea_lzw_tiled.tif", compression="tiff_lzw", tile=(16, 16))
crop.convert("L").save(OUT / "chelsea_gray.tif")
for path in sorted(OUT.iterdir()):
    if path.suffix in (".bmp", ".gif", ".webp", ".tif"):
        Image.open(path).convert("RGB").save(OUT / (path.name + ".expected.png"))
        print(path.name, path.stat().st_size)
