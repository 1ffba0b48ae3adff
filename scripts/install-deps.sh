#!/usr/bin/env bash
# Installs the native libraries effdense builds against (Debian/Ubuntu), only when missing:
# OpenBLAS, libpng, libjpeg-turbo, FreeType with the DejaVu fonts (labels on pictures), zlib
# (checksums of torch.save zip entries), stb_image (BMP, GIF), libwebp, libtiff, OpenSlide
# (whole-slide images), FFmpeg's libraries (video) and the ffmpeg program (the video tests make clips with it), pkg-config.
set -euo pipefail

packages=(libopenblas-dev libpng-dev libjpeg62-turbo-dev libfreetype-dev fonts-dejavu-core zlib1g-dev libstb-dev libwebp-dev libtiff-dev libopenslide-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all native packages present (${packages[*]})"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
