#!/usr/bin/env bash
# Video throughput against the single-picture pipeline (issue: overlap must not lose).
#
# Makes a 300-frame 640x480 H.264 clip of the four sample photos panning (30 fps, the `ffmpeg`
# program), then for detect (EfficientDet-D0, the fixture checkpoint) and segment (DeepLabV3+
# efficientnet-b0, the fixture checkpoint):
#   - `effdense bench --picture FRAME.png`: the single-picture pipeline median on one frame of the
#     clip (decode, network, drawing, PNG encode);
#   - `effdense detect|segment clip.mp4`: frames/s of the whole video (decode ahead, network,
#     annotated / mask video written behind), from its closing JSON line;
# and checks frames/s >= 0.9 x 1000 / pipeline median.
#
# Usage: scripts/bench_video.sh [THREADS]     (EFFDENSE_BIN=path/to/effdense to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
bin=${EFFDENSE_BIN:-}
if [ -z "$bin" ]; then
  swift build -c release --product effdense >&2
  bin=.build/release/effdense
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

inputs=() filters="" labels=""
for i in 0 1 2 3; do
  photo=(astronaut.jpg coffee.jpg chelsea.png rocket.jpg)
  inputs+=(-loop 1 -t 2.5 -framerate 30 -i "samples/${photo[$i]}")
  filters+="[$i]scale=800:600,setsar=1,crop=640:480:x='t*60':y='t*40'[v$i];"
  labels+="[v$i]"
done
ffmpeg -hide_banner -loglevel error -y "${inputs[@]}" -filter_complex "${filters}${labels}concat=n=4:v=1[out]" \
  -map "[out]" -frames:v 300 -c:v libx264 -pix_fmt yuv420p "$work/clip.mp4"
ffmpeg -hide_banner -loglevel error -y -i "$work/clip.mp4" -vf "select=eq(n\,100)" -vframes 1 -pix_fmt rgb24 "$work/frame.png"

fixtures=Tests/EffDenseTests/Fixtures
detector=$fixtures/detection/tf_efficientdet_d0.pth
segmenter=$fixtures/segmentation/deeplabv3plus_efficientnet_b0.pth
status=0
echo "video: 300 frames, 640x480, H.264; $threads threads; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for job in detect segment; do
  if [ "$job" = detect ]; then
    bench=(--model tf_efficientdet_d0 --weights "$detector")
    run=(detect "$work/clip.mp4" --weights "$detector" -o "$work/out.mp4")
  else
    bench=(--model deeplabv3plus --weights "$segmenter")
    run=(segment "$work/clip.mp4" --weights "$segmenter" -o "$work/out.mkv" --overlay "$work/overlay.mp4")
  fi
  median=$("$bin" bench "${bench[@]}" --picture "$work/frame.png" --runs 20 --threads "$threads" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["pipeline_median_ms"])')
  "$bin" "${run[@]}" --threads "$threads" --json "$work/$job.jsonl" > /dev/null 2> "$work/$job.log"
  fps=$(tail -n 1 "$work/$job.jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["frames_per_second"])')
  python3 - "$job" "$median" "$fps" <<'EOF' || status=1
import sys
job, median, fps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
target = 0.9 * 1000 / median
verdict = "OK" if fps >= target else "TOO SLOW"
print(f"{job:8s} pipeline median {median:6.1f} ms -> {1000 / median:5.2f} pictures/s; video {fps:5.2f} frames/s "
      f"= {fps * median / 1000:.2f}x (target >= 0.90x: {target:.2f} frames/s) {verdict}")
sys.exit(0 if fps >= target else 1)
EOF
done
exit $status
