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

# Hostile legacy checkpoints that crashed (or could crash) the pickle reader, kept as regression
# inputs next to the fuzzer's findings in Tests/EffWeightsTests/Fixtures/fuzz/.
import pickle
import struct

regressions = root / "Tests/EffWeightsTests/Fixtures/fuzz"
regressions.mkdir(parents=True, exist_ok=True)
legacy_header = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                 + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
# 300000 nested tuples: freeing them recursed 300000 deep and overflowed the stack.
depth = 300000
(regressions / "nested_300000_tuples_legacy.pth").write_bytes(
    legacy_header + b"\x80\x02" + b"(" * depth + b")" + b"t" * depth + b".")
# Lists chained through the memo after being nested (L0.append(L1), then L1.append(L2), ...): a
# depth check that trusted depths recorded at nesting time would miss this chain.
count = 5000
body = b"\x80\x02"
for i in range(count):
    body += b"]r" + struct.pack("<I", i) + b"0"
for i in range(count - 1):
    body += b"j" + struct.pack("<I", i) + b"j" + struct.pack("<I", i + 1) + b"a0"
body += b"j" + struct.pack("<I", 0) + b"."
(regressions / "list_chain_through_memo_legacy.pth").write_bytes(legacy_header + body)

# TIFF seeds (the large-picture reader, Fuzz target "tiff"): every layout TIFFRegionReader takes,
# small. Needs tifffile and imagecodecs (JPEG in TIFF).
import tifffile

tiffs = seeds / "tiff"
tiffs.mkdir(parents=True, exist_ok=True)
rgb = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype("uint8")
tifffile.imwrite(tiffs / "striped.tif", rgb, photometric="rgb", rowsperstrip=8)
tifffile.imwrite(tiffs / "striped_lzw.tif", rgb, photometric="rgb", rowsperstrip=8, compression="lzw")
tifffile.imwrite(tiffs / "tiled_deflate.tif", rgb, photometric="rgb", tile=(16, 16), compression="zlib")
tifffile.imwrite(tiffs / "tiled_jpeg.tif", rgb, photometric="rgb", tile=(16, 16), compression="jpeg")
tifffile.imwrite(tiffs / "tiled_gray.tif", rgb[..., 0], photometric="minisblack", tile=(16, 16))
tifffile.imwrite(tiffs / "bigtiff_tiled.tif", rgb, photometric="rgb", tile=(16, 16), bigtiff=True)
tifffile.imwrite(tiffs / "planar_separate.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
tifffile.imwrite(tiffs / "rgb16.tif", rgb.astype("uint16") * 257, photometric="rgb", tile=(16, 16))
with tifffile.TiffWriter(tiffs / "pyramid.tif") as pyramid:
    pyramid.write(rgb, photometric="rgb", tile=(16, 16), subifds=1)
    pyramid.write(rgb[::2, ::2], photometric="rgb", tile=(16, 16), subfiletype=1)

# Video seeds (Fuzz target "video"): tiny clips in the containers and codecs a user brings, made
# by the `ffmpeg` program (scripts/install-deps.sh installs it): 32x24, 6 frames of a test pattern.
import subprocess

videos = seeds / "video"
videos.mkdir(parents=True, exist_ok=True)
for name, codec in [("h264.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]), ("h264_faststart.mp4", ["-c:v", "libx264", "-movflags", "+faststart"]),
                    ("mpeg4.mov", ["-c:v", "mpeg4"]), ("vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime"]),
                    ("mjpeg.avi", ["-c:v", "mjpeg"]), ("ffv1_gray.mkv", ["-c:v", "ffv1", "-pix_fmt", "gray"]),
                    ("mpeg2.ts", ["-c:v", "mpeg2video"]), ("animated.gif", [])]:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=10",
                    "-frames:v", "6", *codec, str(videos / name)], check=True)
