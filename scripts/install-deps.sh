#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The one list of Debian packages BlueZscript needs to build, run and test.
# Used by the README, the Makefile (`make deps`) and CI. Same names on Raspberry Pi OS.
#
#   scripts/install-deps.sh            everything: build, tests, packaging, cross builds (CI)
#   scripts/install-deps.sh build      only what building and running needs (a Pi)
#   scripts/install-deps.sh --print cross-target
#                                      print the target-architecture -dev packages the
#                                      cross builds' sysroots hold (scripts/make-sysroot.sh)
set -euo pipefail

BUILD=(build-essential cmake pkg-config git
       libssl-dev libsqlite3-dev libsystemd-dev libqrencode-dev
       libcpp-httplib-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev)
TEST=(libgtest-dev libgmock-dev libbenchmark-dev
      oathtool python3 python3-cryptography python3-dbus python3-gi python3-dbusmock
      dbus dbus-daemon sqlite3 clang-format clang-tidy
      chromium zbar-tools)
RUNTIME=(bluez dbus)
# `make deb`, `make test-deb`: CPack's DEB generator (dpkg-deb, dpkg-shlibdeps, fakeroot),
# lintian, and the clean Debian roots: debootstrap for the install test, mmdebstrap for
# the cross sysroots.
PACKAGING=(dpkg-dev fakeroot lintian debootstrap mmdebstrap debian-archive-keyring)
# `make test-cross`: Debian's cross compilers and user-mode emulation for the unit tests.
CROSS=(crossbuild-essential-arm64 crossbuild-essential-armhf qemu-user-static)
# Target-architecture -dev packages for the cross builds. They go into a sysroot per
# architecture under build-<arch>/ (scripts/make-sysroot.sh), not into the host's dpkg
# database: multiarch co-installation needs the same version of every Multi-Arch: same
# library for amd64 and the target, which a mirror in the middle of a security update
# does not offer, and it would change the host's own libraries.
CROSS_TARGET=(libc6-dev libstdc++-12-dev
              libssl-dev libsqlite3-dev libsystemd-dev libqrencode-dev
              libcpp-httplib-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev
              libgtest-dev libgmock-dev)

if [ "${1:-}" = "--print" ]; then
  case "${2:-}" in
    cross-target) echo "${CROSS_TARGET[*]}" ;;
    *) echo "install-deps: --print takes: cross-target" >&2; exit 2 ;;
  esac
  exit 0
fi
# `make test-vm` (tests/vm): Debian's kernel and QEMU to boot it, BlueZ's btvirt
# (virtual controllers), a static busybox for the initramfs, cpio/kmod/xz to build it.
# The kernel itself is installed by vm_kernel below.
VM=(qemu-system-x86 bluez-test-tools busybox-static cpio kmod xz-utils)

# Node.js runs the browser tests (tests/browser): Debian's, unless a node is already
# on PATH from elsewhere (mixing the two breaks both).
NODE=()
command -v node >/dev/null 2>&1 || NODE=(nodejs npm)

# The cross builds (make test-cross, make deb) run on amd64 build machines; a Pi
# building for itself does not need them.
[ "$(dpkg --print-architecture)" = amd64 ] || CROSS=()
# The VM suite boots Debian's amd64 kernel under QEMU: amd64 hosts only too.
[ "$(dpkg --print-architecture)" = amd64 ] || VM=()

case "${1:-all}" in
  all)   want=("${BUILD[@]}" "${TEST[@]}" "${NODE[@]}" "${RUNTIME[@]}" "${PACKAGING[@]}" "${CROSS[@]}" \
               "${VM[@]}") ;;
  build) want=("${BUILD[@]}" "${RUNTIME[@]}"); VM=() ;;
  *) echo "install-deps: unknown group '$1' (all, build, --print cross-target)" >&2; exit 2 ;;
esac
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# The VM suite's guest kernel (only with the VM group). Bookworm's own 6.1 kernel
# oopses in its Bluetooth stack under the suite (list_del corruption in hci_chan_del
# when a link drops during encryption; docs/testing.md), so on bookworm the kernel
# comes from bookworm-backports: its source is added once, in a file of its own, and
# only linux-image-amd64 is taken from it (backports has priority 100: nothing else
# moves there). Done when linux-image-amd64 is at least 6.12; other releases take
# their own kernel.
vm_kernel() {
  [ ${#VM[@]} -gt 0 ] || return 0
  local codename have
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  have=$(dpkg-query -W -f='${Status} ${Version}' linux-image-amd64 2>/dev/null |
         sed -n 's/^install ok installed //p' || true)
  if [ "$codename" != bookworm ]; then
    [ -n "$have" ] && return 0
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends linux-image-amd64
    return 0
  fi
  if [ -n "$have" ] && dpkg --compare-versions "$have" ge 6.12; then return 0; fi
  if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "install-deps: adding bookworm-backports (the VM suite's kernel) to /etc/apt/sources.list.d/"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' |
      $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  echo "install-deps: installing linux-image-amd64 from bookworm-backports"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports linux-image-amd64
}

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
vm_kernel
