#!/usr/bin/env python3
"""Writes the EXIF orientation fixtures in Tests/EffImageTests/Fixtures/exif with Pillow.

  coffee_exif6.jpg, coffee_exif3.jpg   samples/coffee.jpg stored turned (90 degrees counter-clockwise,
                                       180 degrees) with EXIF orientation 6 / 3, so a viewer that
                                       honours the tag shows it upright, as a phone's photo
  quadrants_oN.jpg (N = 1..8)          16x8 pixels, four 8x8 blocks red / green / blue / white
                                       (top-left, top-right, bottom-left, bottom-right when shown),
                                       stored as Pillow's exif_transpose would have to undo for N
  quadrants.json                       the displayed size and corner colours of each, from
                                       Pillow's ImageOps.exif_transpose

    pip install pillow
    python3 scripts/make_exif_fixtures.py
"""
import json
import pathlib

from PIL import Image, ImageOps

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/EffImageTests/Fixtures/exif"
OUT.mkdir(parents=True, exist_ok=True)

# How to store an upright picture so that orientation N shows it upright: the inverse of what
# exif_transpose applies for N.
STORE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
         5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def save(upright, orientation, path, **kw):
    stored = upright if STORE[orientation] is None else upright.transpose(STORE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes(), **kw)
    shown = ImageOps.exif_transpose(Image.open(path))
    return shown


coffee = Image.open(ROOT / "samples/coffee.jpg").convert("RGB")
for orientation in (6, 3):
    shown = save(coffee, orientation, OUT / f"coffee_exif{orientation}.jpg", quality=95)
    assert shown.size == coffee.size

quadrants = Image.new("RGB", (16, 8))
for (x, y), colour in {(0, 0): (255, 0, 0), (8, 0): (0, 255, 0), (0, 4): (0, 0, 255), (8, 4): (255, 255, 255)}.items():
    quadrants.paste(colour, (x, y, x + 8, y + 4))
expected = {}
for orientation in range(1, 9):
    shown = save(quadrants, orientation, OUT / f"quadrants_o{orientation}.jpg", quality=100, subsampling=0)
    w, h = shown.size
    expected[str(orientation)] = {"width": w, "height": h,
                                  "corners": [list(shown.getpixel(p)) for p in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]]}
(OUT / "quadrants.json").write_text(json.dumps(expected, indent=1) + "\n")
print(json.dumps(expected))
