"""Writes a large tiled RGB TIFF made of the sample photos (default 40000 x 40000, 256 x 256 JPEG
tiles, BigTIFF), tile by tile, in bounded memory: the four photos in a 2048 x 2048 mosaic,
repeated with a different flip per block so the picture is real content, not noise.

    ../refenv/bin/pip install tifffile imagecodecs pillow numpy
    ../refenv/bin/python scripts/make_gigapixel.py OUT.tif [SIDE]
"""
import pathlib
import sys

import numpy as np
import tifffile
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
out = sys.argv[1]
side = int(sys.argv[2]) if len(sys.argv) > 2 else 40000
TILE = 256
mosaic = np.zeros((2048, 2048, 3), np.uint8)
for i, name in enumerate(["astronaut.jpg", "coffee.jpg", "chelsea.png", "rocket.jpg"]):
    photo = Image.open(ROOT / "samples" / name).convert("RGB").resize((1024, 1024), Image.BICUBIC)
    mosaic[(i // 2) * 1024:(i // 2 + 1) * 1024, (i % 2) * 1024:(i % 2 + 1) * 1024] = np.asarray(photo)
variants = [mosaic, mosaic[:, ::-1], mosaic[::-1], mosaic[::-1, ::-1]]


def tiles():
    # A tile never straddles two 2048 blocks (256 divides 2048); edge tiles are padded by tifffile.
    for ty in range(0, side, TILE):
        for tx in range(0, side, TILE):
            block = variants[(ty // 2048 + tx // 2048) % 4]
            yield np.ascontiguousarray(block[ty % 2048:ty % 2048 + TILE, tx % 2048:tx % 2048 + TILE])


tifffile.imwrite(out, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(TILE, TILE), compression="jpeg",
                 compressionargs={"level": 90}, photometric="rgb", bigtiff=True)
print("wrote", out, side, "x", side)
