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
except ImportError:
    print("tifffile not installed: the tiled TIFF fixtures are not remade")
crop.convert("L").save(OUT / "chelsea_gray.tif")
for path in sorted(OUT.iterdir()):
    if path.suffix in (".bmp", ".gif", ".webp", ".tif") and not path.name.startswith("fuzz_"):
        Image.open(path).convert("RGB").save(OUT / (path.name + ".expected.png"))
        print(path.name, path.stat().st_size)
