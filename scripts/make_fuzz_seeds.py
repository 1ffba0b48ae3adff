"""Seeds for the fuzz targets (Fuzz/Seeds/<target>/): the small test fixtures of every PNG/JPEG kind
and every checkpoint layout, plus progressive JPEGs (many scans) made with Pillow.

    python scripts/make_fuzz_seeds.py      # needs numpy and Pillow
"""
import pathlib
import shutil

import numpy as np
from PIL import Image

root = pathlib.Path(__file__).resolve().parent.parent
seeds = root / "Fuzz" / "Seeds"
images, checkpoints = seeds / "image", seeds / "checkpoint"
images.mkdir(parents=True, exist_ok=True)
checkpoints.mkdir(parents=True, exist_ok=True)

for f in (root / "Tests/EffImageTests/Fixtures").iterdir():
    if f.suffix in (".png", ".jpg") and f.stat().st_size < 4096:
        shutil.copy(f, images / f.name)
for f in (root / "Tests/EffWeightsTests/Fixtures").iterdir():
    if f.suffix in (".pth", ".safetensors", ".tar"):
        shutil.copy(f, checkpoints / f.name)

pixels = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype("uint8")
Image.fromarray(pixels).save(images / "progressive.jpg", progressive=True, quality=80)
Image.fromarray(pixels).convert("L").save(images / "gray_progressive.jpg", progressive=True)
