#!/usr/bin/env bash
# Runs effdense's fuzz targets (libFuzzer + AddressSanitizer) for a set time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET=600] [TARGET...]     # targets: image tiff video checkpoint pickle safetensors
#
# Targets live in Fuzz/ (a separate package so the main build never needs libFuzzer):
#   image       PNG/JPEG decoding (ImageCodec.decode, and StreamedPicture row by row), format recognised by content
#   tiff        large TIFF / BigTIFF region reading (TIFFRegionReader), three regions per input
#   video       video recognition and decoding (VideoFile.isVideo, VideoReader), up to 12 frames per input
#   checkpoint  WeightStore: safetensors, torch.save zip and legacy files, the pickle machine
#   pickle      structure-aware: opcode sequences (long runs of one opcode included), tensor
#               rebuilds with zero / huge / negative dimensions, claimed storage sizes, in a zip
#   safetensors structure-aware: headers with hostile shapes, dtypes, offsets, length claims
# The structure-aware targets start from an empty corpus (their input is a stream of choices).
# Each starts from the committed seeds in Fuzz/Seeds/<target> (scripts/make_fuzz_seeds.py) and
# grows a working corpus in Fuzz/.corpus/<target> (not committed). A crash, sanitizer report,
# hang (-timeout) or memory blow-up (-rss_limit_mb) stops the target; its input is saved as
# Fuzz/crashes/<target>-crash-*; turn it into a regression test with the input committed.
# The log of each run goes to Fuzz/logs/<target>.log, with a summary line at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(image tiff video checkpoint pickle safetensors)

# SwiftPM caches the file list of the path dependency (the main package): drop it so new
# source files are seen.
rm -f Fuzz/.build/*/release/description.json
# SwiftPM links libFuzzer for --sanitize fuzzer but does not instrument Swift code for coverage:
# -Xswiftc -sanitize=fuzzer does.
swift build -c release --package-path Fuzz --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer 2>&1 \
    | grep -v "warning: Cannot export local symbol" | tail -3

mkdir -p Fuzz/logs Fuzz/crashes
status=0
for target in "${targets[@]}"; do
    case $target in
        image) binary=FuzzImage max_len=65536 ;;
        tiff) binary=FuzzTIFF max_len=65536 ;;
        video) binary=FuzzVideo max_len=65536 ;;
        checkpoint) binary=FuzzCheckpoint max_len=65536 ;;
        pickle) binary=FuzzPickle max_len=4096 ;;
        safetensors) binary=FuzzSafetensors max_len=4096 ;;
        *) echo "unknown target $target (image, tiff, video, checkpoint, pickle, safetensors)" >&2; exit 2 ;;
    esac
    corpus=Fuzz/.corpus/$target
    log=Fuzz/logs/$target.log
    seeds=Fuzz/Seeds/$target
    mkdir -p "$corpus" "$seeds"
    echo "fuzzing $target for ${seconds}s → $log"
    set +e
    # Swift's own crash backtracer would trip AddressSanitizer; libFuzzer prints the stack instead.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "Fuzz/.build/release/$binary" "$corpus" "$seeds" \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=3072 \
        -artifact_prefix="Fuzz/crashes/$target-" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    if [ $rc -eq 0 ]; then
        summary="$target: no crash in ${seconds}s, $runs inputs run, corpus $(ls "$corpus" | wc -l) files ($(date -u +%F), $(uname -m))"
    else
        summary="$target: FAILED (exit $rc) — see $log and Fuzz/crashes/"
        status=1
    fi
    echo "$summary" | tee -a "$log"
done
exit $status
