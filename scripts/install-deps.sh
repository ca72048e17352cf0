#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The one list of Debian packages BlueZscript needs to build, run and test.
# Used by the README, the Makefile (`make deps`) and CI. Same names on Raspberry Pi OS.
set -euo pipefail

BUILD=(build-essential cmake pkg-config git
       libssl-dev libsqlite3-dev libsystemd-dev libqrencode-dev
       libcpp-httplib-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev)
TEST=(libgtest-dev libgmock-dev libbenchmark-dev
      oathtool python3 python3-cryptography python3-dbus python3-gi python3-dbusmock
      dbus dbus-daemon sqlite3 clang-format clang-tidy
      chromium zbar-tools)
RUNTIME=(bluez dbus)
# `make test-vm` (tests/vm): Debian's kernel and QEMU to boot it, BlueZ's btvirt
# (virtual controllers), a static busybox for the initramfs, cpio/kmod to build it.
VM=(qemu-system-x86 linux-image-amd64 bluez-test-tools busybox-static cpio kmod)

# Node.js runs the browser tests (tests/browser): Debian's, unless a node is already
# on PATH from elsewhere (mixing the two breaks both).
NODE=()
command -v node >/dev/null 2>&1 || NODE=(nodejs npm)

want=("${BUILD[@]}" "${TEST[@]}" "${NODE[@]}" "${RUNTIME[@]}" "${VM[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
