#!/usr/bin/env bash
# On-demand full-size parity check (too big to commit): builds full-size tf_efficientdet_d0-d3
# and tf_efficientdet_lite0 (effdet), and smp DeepLabV3+ with the full
# efficientnet-b3 and -b4 encoders (and any other names given) by scripts/make_parity_matrix.py
# --full into DIR, then runs the parity matrix tests with EFFDENSE_PARITY_FULL=DIR so the
# full-size rows are checked beside the committed narrow ones.
#
#   scripts/parity_full.sh [DIR=/tmp/effdense-parity-full] [MODEL...]
# Needs the reference Python stack (see README) as `python3`, or PYTHON=/path/to/python.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/effdense-parity-full}
shift || true
encoders=("$@")
[ ${#encoders[@]} -gt 0 ] || encoders=(efficientnet-b3 efficientnet-b4 timm-efficientnet-b3 timm-efficientnet-b4 \
    tf_efficientdet_d0 tf_efficientdet_d1 tf_efficientdet_d2 tf_efficientdet_d3 tf_efficientdet_lite0)
"${PYTHON:-python3}" scripts/make_parity_matrix.py --full "${encoders[@]}" --out "$dir" 2>&1 | grep -v Warning
EFFDENSE_PARITY_FULL="$dir" swift test -c release -Xswiftc -enable-testing --filter ParityMatrixTests 2>&1 | grep -E "full size|✘|↳ .*off|Test run"
