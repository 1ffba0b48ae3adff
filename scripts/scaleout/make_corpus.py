#!/usr/bin/env python3
"""Writes a corpus of N varied pictures made from samples/ for the scale-out checks.

    make_corpus.py OUT_DIR N

Random crops, scales and mirror images of the sample photos (fixed seed: the same corpus every
time), as JPEG and PNG, in nested folders with repeated file names (`a/0001.jpg`, `b/c/0001.jpg`),
as a real photo tree has. Needs Pillow (Debian: python3-pil).
"""
import os
import random
import sys

from PIL import Image, ImageOps

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
out_dir, count = sys.argv[1], int(sys.argv[2])
samples = [Image.open(os.path.join(root, "samples", name)).convert("RGB")
           for name in sorted(os.listdir(os.path.join(root, "samples"))) if name.endswith((".jpg", ".png"))]
folders = ["a", "b", os.path.join("b", "c"), os.path.join("d", "e", "f")]
rng = random.Random(2026)
for index in range(count):
    photo = samples[index % len(samples)]
    width, height = photo.size
    side = rng.uniform(0.45, 1.0)
    crop_w, crop_h = int(width * side), int(height * rng.uniform(0.45, 1.0))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    picture = photo.crop((left, top, left + crop_w, top + crop_h))
    scale = rng.uniform(96, 640) / max(picture.size)
    picture = picture.resize((max(16, int(crop_w * scale)), max(16, int(crop_h * scale))), Image.BILINEAR)
    if rng.random() < 0.5:
        picture = ImageOps.mirror(picture)
    folder = os.path.join(out_dir, folders[index % len(folders)])
    os.makedirs(folder, exist_ok=True)
    # The same number in every folder: names repeat across folders, as in real photo trees.
    name = "%04d" % (index // len(folders))
    if index % 3 == 0:
        picture.save(os.path.join(folder, name + ".png"))
    else:
        picture.save(os.path.join(folder, name + ".jpg"), quality=90)
print("make_corpus: %d pictures in %s" % (count, out_dir))
