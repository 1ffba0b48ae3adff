#!/usr/bin/env bash
# The gigapixel check: makes a SIDE x SIDE tiled RGB TIFF from the sample photos
# (scripts/make_gigapixel.py), segments it in tiles with the DeepLabV3+ b0 fixture, and reports
# peak RSS, tiles/s against the rate `effdense bench` predicts at the tile size (network median),
# and what tifffile and Pillow make of the mask TIFF.
#   scripts/gigapixel_check.sh [SIDE=40000] [TILE=1024]    (PYTHON: a python with tifffile, imagecodecs, pillow)
set -euo pipefail
cd "$(dirname "$0")/.."
side=${1:-40000}; tile=${2:-1024}; overlap=128
python=${PYTHON:-../refenv/bin/python}
work=${WORK:-/tmp/effdense-gigapixel}
mkdir -p "$work"
[ -f "$work/big_$side.tif" ] || "$python" scripts/make_gigapixel.py "$work/big_$side.tif" "$side"
# EFFDENSE_BIN: an effdense already built (else it is built here, release).
bin=${EFFDENSE_BIN:-}
if [ -z "$bin" ]; then
    swift build -c release --product effdense >/dev/null
    bin=.build/release/effdense
fi
weights=Tests/EffDenseTests/Fixtures/segmentation/deeplabv3plus_efficientnet_b0.pth
"$bin" bench --model deeplabv3plus --size "$tile" --runs 5 --json > "$work/bench.json"
rm -f "$work/run.jsonl"
/usr/bin/time -v "$bin" segment "$work/big_$side.tif" --weights "$weights" --tile "$tile" --overlap "$overlap" \
    -o "$work/mask_$side.tif" --overlay "$work/overlay_$side.png" --json "$work/run.jsonl" 2> "$work/time.txt"
"$python" - "$work" "$side" <<'PY'
import json, re, sys
import numpy as np, tifffile
from PIL import Image
work, side = sys.argv[1], int(sys.argv[2])
timing = open(f"{work}/time.txt").read()
rss_mb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", timing).group(1).split(":")
seconds = sum(float(v) * 60 ** i for i, v in enumerate(reversed(clock)))
run = json.loads(open(f"{work}/run.jsonl").readline())
bench = json.load(open(f"{work}/bench.json"))
rate, predicted = run["tiles"] / seconds, 1000 / bench["median_ms"]
print(f"{side}x{side}: {run['tiles']} tiles of {run['tile']} (and {run.get('context_tiles', 0)} of the context pass, context {run.get('context')}) "
      f"in {seconds:.0f} s = {rate:.2f} tiles/s; "
      f"bench predicts {predicted:.2f} tiles/s ({rate / predicted:.2f}x); peak RSS {rss_mb:.0f} MB")
with tifffile.TiffFile(f"{work}/mask_{side}.tif") as tif:
    page = tif.pages[0]
    print("tifffile:", page.shape, page.dtype, "tiles", page.tilewidth, "x", page.tilelength, page.compression.name, page.photometric.name,
          "bigtiff" if tif.is_bigtiff else "classic")
    window = page.asarray()[: min(side, 4096), : min(side, 4096)] if side <= 20000 else None
Image.MAX_IMAGE_PIXELS = None
mask = Image.open(f"{work}/mask_{side}.tif")
print("Pillow:", mask.mode, mask.size)
classes = sorted(c["class_index"] for c in run["classes"])
print("classes in the JSON:", classes, "pixels counted:", sum(c["pixels"] for c in run["classes"]) == side * side)
PY
