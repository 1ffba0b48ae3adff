#!/usr/bin/env bash
# Throughput over a folder against the single-picture pipeline: for classify, detect and segment,
# prints `effdense bench`'s pipeline median (decode → pre-process → network → post-process →
# encode of samples/astronaut.jpg) as pictures/s, and the images/s of the CLI's summary line over
# a folder of COUNT copies of the same photo (default --batch-size: several pictures at once).
#
#   scripts/bench_folder.sh [COUNT=100] [THREADS=2]      # after swift build -c release
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100}
threads=${2:-2}
effdense=.build/release/effdense
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
mkdir -p "$folder/photos"
for i in $(seq 1 "$count"); do cp samples/astronaut.jpg "$folder/photos/photo_$i.jpg"; done

run() {  # name, bench arguments, CLI arguments... (the same checkpoint for both: what it detects is drawn)
    local name=$1 bench=$2
    shift 2
    local pipeline
    pipeline=$($effdense bench $bench --threads "$threads" --runs 20 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pipeline_median_ms"])')
    rm -rf "$folder/out"
    local summary
    summary=$("$effdense" "$@" "$folder/photos" --threads "$threads" --json "$folder/out.jsonl" 2>&1 >/dev/null | tail -1)
    local rate
    rate=$(echo "$summary" | grep -o '[0-9.]* images/s' | grep -o '^[0-9.]*')
    python3 -c "p=$pipeline; r=$rate; print(f'$name: pipeline median {p:.1f} ms = {1000/p:.2f} pictures/s; folder of $count: {r:.2f} images/s ({r/(1000/p):.2f}x)')"
}

lite0=weights/efficientnet-lite0-57934424.pth
d0=Tests/EffDenseTests/Fixtures/detection/tf_efficientdet_d0.pth
deeplab=Tests/EffDenseTests/Fixtures/segmentation/deeplabv3plus_efficientnet_b0.pth
run classify "--model tf_efficientnet_lite0 --weights $lite0" classify --weights "$lite0"
run detect "--model tf_efficientdet_d0 --weights $d0" detect --weights "$d0" --out-dir "$folder/out"
run segment "--model deeplabv3plus --encoder efficientnet-b0 --weights $deeplab" segment --weights "$deeplab" --out-dir "$folder/out"
