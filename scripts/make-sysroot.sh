#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Creates the sysroot of a cross build: Debian bookworm's -dev packages for ARCH
# (scripts/install-deps.sh --print cross-target, with their dependencies) unpacked into
# DIR, without running anything of the target architecture (mmdebstrap, variant
# extract). Also collects the packages' symbols and shlibs files into
# DIR/.bzs-shlibs/DEBIAN/ so that dpkg-shlibdeps can compute the .deb's Depends for
# ARCH (cmake/Packaging.cmake).
#
#   scripts/make-sysroot.sh arm64 build-arm64/sysroot
#
# Kept between runs: DIR is rebuilt only when the package list, the mirror or FORMAT
# (raise it when this script changes what it puts into DIR) changes.
set -euo pipefail
arch=${1:?usage: make-sysroot.sh ARCH DIR}
dir=${2:?usage: make-sysroot.sh ARCH DIR}
mirror=${BZS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
pkgs=$("$here/install-deps.sh" --print cross-target)
stamp="$dir/.bzs-sysroot"
FORMAT=2
want="format $FORMAT: $arch bookworm $mirror $pkgs"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "make-sysroot: $dir is up to date"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "make-sysroot: run as root (mmdebstrap keeps file owners)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
echo "make-sysroot: $arch sysroot in $dir: $pkgs"
# --skip=download/empty,cleanup/apt/cache keep the .debs for their control files (below).
mmdebstrap --quiet --variant=extract --architectures="$arch" --format=directory \
  --include="$(echo "$pkgs" | tr ' ' ',')" --skip=download/empty --skip=cleanup/apt/cache \
  bookworm "$dir" "$mirror"
shl="$dir/.bzs-shlibs/DEBIAN"
mkdir -p "$shl"
: > "$shl/symbols"; : > "$shl/shlibs"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for deb in "$dir"/var/cache/apt/archives/*.deb; do
  rm -rf "$tmp/c"; dpkg-deb --control "$deb" "$tmp/c"
  [ -f "$tmp/c/symbols" ] && { cat "$tmp/c/symbols"; echo; } >> "$shl/symbols"
  [ -f "$tmp/c/shlibs" ] && cat "$tmp/c/shlibs" >> "$shl/shlibs"
done
rm -f "$dir"/var/cache/apt/archives/*.deb
# qemu-user's -L prefix is tried first for every path a test opens: without this, a
# test's /dev/null would be the sysroot's copy of the device node, not the host's.
rm -rf "${dir:?}/dev"
# symbols files may not contain empty lines
sed -i '/^$/d' "$shl/symbols"
echo "$want" > "$stamp"
echo "make-sysroot: done ($(du -sh "$dir" | cut -f1))"
