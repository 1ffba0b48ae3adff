#!/usr/bin/env bash
# Peak memory of DeepLabV3+ per encoder, as a straight line in the network's input megapixels:
# `effdense bench --json` (random weights, 21 classes, output stride 16) at two sizes; prints a Markdown
# table for README.md, the Swift table rows
# of Sources/EffDense/Segmentation/SegmentationMemory.swift and the output-stride-8 factor.
# Usage: scripts/measure_memory.sh [small large]   (default 512 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-512}; large=${2:-1024}
swift build -c release --product effdense >/dev/null
bin=.build/release/effdense
peak() { "$bin" bench --model deeplabv3plus --encoder "$1" --size "$2" --runs 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])'; }
echo "| encoder | fixed MB | MB per megapixel |"
echo "|---|---:|---:|"
rows=()
for b in 0 1 2 3 4 5 6 7; do
  e=efficientnet-b$b
  p1=$(peak "$e" "$small"); p2=$(peak "$e" "$large")
  read -r fixed per < <(python3 -c "s,l=$small**2/1e6,$large**2/1e6; k=($p2-$p1)/(l-s); print(round($p1-k*s), round(k))")
  echo "| $e | $fixed | $per |"
  rows+=("        (\"$e\", $fixed, $per),")
done
printf '%s\n' "${rows[@]}"
# Output stride 8 on efficientnet-b0: its per-megapixel figure over stride 16's.
p1=$("$bin" bench --model deeplabv3plus --output-stride 8 --size "$small" --runs 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])')
p2=$("$bin" bench --model deeplabv3plus --output-stride 8 --size "$large" --runs 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])')
b0=$(printf '%s\n' "${rows[0]}" | tr -d '(),' | awk '{print $3}')
python3 -c "s,l=$small**2/1e6,$large**2/1e6; k=($p2-$p1)/(l-s); print('output stride 8, efficientnet-b0:', round(k), 'MB per megapixel, factor', round(k/$b0, 2))"

# Detectors at their own input size: (peak - resident after loading) per megapixel of input.
echo "| detector | input | peak MB | MB per megapixel |"
echo "|---|---:|---:|---:|"
drows=()
for m in d0 d1 d2 d3 d4 d5 d6 d7 d7x lite0 lite1 lite2 lite3 lite4; do
  read -r size peak per < <("$bin" bench --model "tf_efficientdet_$m" --runs 1 --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["size"], round(d["peak_rss_mb"]), round((d["peak_rss_mb"] - d["loaded_rss_mb"]) / (d["size"] ** 2 / 1e6)))')
  echo "| tf_efficientdet_$m | $size | $peak | $per |"
  drows+=("        (\"tf_efficientdet_$m\", $per),")
done
printf '%s\n' "${drows[@]}"
