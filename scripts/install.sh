#!/usr/bin/env bash
# Installs effdense like any command-line tool:
#   PREFIX/bin/effdense                  the executable (built with `swift build -c release`)
#   PREFIX/share/effdense/configs/       detection / segmentation configs and class lists
#   $XDG_CACHE_HOME/effdense/            (else ~/.cache/effdense) the real Lite0 weights, where
#                                        `effdense weights pull` puts the others
# so `effdense ...` works from any folder. PREFIX: /usr/local for root, else ~/.local.
#
#   scripts/install.sh [--prefix DIR] [--binary PATH]    # --binary: install that build, do not build
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=""
binary=""
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    *) echo "install.sh: unknown argument $1 (use --prefix DIR, --binary PATH)" >&2; exit 2 ;;
  esac
done
if [ -z "$prefix" ]; then
  if [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi
if [ -z "$binary" ]; then
  swift build -c release --product effdense
  binary=.build/release/effdense
fi
mkdir -p "$prefix/bin" "$prefix/share/effdense"
# Through a temporary name and a rename: a running effdense is never overwritten in place.
cp "$binary" "$prefix/bin/.effdense.installing"
mv -f "$prefix/bin/.effdense.installing" "$prefix/bin/effdense"
rm -rf "$prefix/share/effdense/configs.installing"
cp -R configs "$prefix/share/effdense/configs.installing"
rm -rf "$prefix/share/effdense/configs"
mv "$prefix/share/effdense/configs.installing" "$prefix/share/effdense/configs"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/effdense"
if [ -s weights/efficientnet-lite0-57934424.pth ]; then
  mkdir -p "$cache"
  cp weights/efficientnet-lite0-57934424.pth "$cache/"
fi
echo "install.sh: installed $prefix/bin/effdense ($("$prefix/bin/effdense" --version)), configs in $prefix/share/effdense"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "install.sh: $prefix/bin is not on your PATH; add it (export PATH=\"$prefix/bin:\$PATH\")" ;;
esac
