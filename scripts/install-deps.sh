#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The one list of Debian packages BlueZscript needs to build, run and test, in groups:
# each make target installs the groups of what it runs, no more (the Makefile's
# deps-<group> targets). Same names on Raspberry Pi OS. Only Debian packages from the
# host's own apt sources are installed: no source is added, no kernel installed (the
# VM suite downloads its guest kernel into the build tree: tests/vm/fetch-kernel.sh).
#
#   scripts/install-deps.sh GROUP...   install the packages of these groups:
#     build   compilers and -dev packages, bluez: build and run without tests (a Pi)
#     dev     build + the test and benchmark libraries + Node.js (make, make run)
#     test    dev + what the suite runs: Python, dbus, Chromium... (make test,
#             make test-asan, make test-tsan)
#     lint    clang-format, clang-tidy (make format-check, make tidy)
#     cross   dev + cross compilers, qemu-user, mmdebstrap (make test-cross)
#     deb     cross + dpkg-dev, fakeroot, lintian, debootstrap (make deb, make test-deb)
#     vm      dev + QEMU, btvirt, busybox, apt's keyring (make test-vm)
#     all     every group (CI)
#   scripts/install-deps.sh --print cross-target
#     print the target-architecture -dev packages the cross builds' sysroots hold
#     (scripts/make-sysroot.sh)
set -euo pipefail

BUILD=(build-essential cmake pkg-config git
       libssl-dev libsqlite3-dev libsystemd-dev libqrencode-dev
       libcpp-httplib-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev)
RUNTIME=(bluez dbus)
# A configured tree builds the tests and benchmarks, so `make` needs their libraries.
DEV=(libgtest-dev libgmock-dev libbenchmark-dev)
# What the suite runs beside our binaries. The sanitizer runtimes (libasan8, libubsan1,
# libtsan2) come with build-essential's g++.
TEST=(oathtool python3 python3-cryptography python3-dbus python3-gi python3-dbusmock
      dbus dbus-daemon sqlite3 chromium zbar-tools)
LINT=(clang-format clang-tidy)
# `make test-cross`: Debian's cross compilers, user-mode emulation for the unit tests,
# mmdebstrap and the archive keyring for the sysroots (scripts/make-sysroot.sh).
CROSS=(crossbuild-essential-arm64 crossbuild-essential-armhf qemu-user-static
       mmdebstrap debian-archive-keyring)
# `make deb`, `make test-deb`: CPack's DEB generator (dpkg-deb, dpkg-shlibdeps, fakeroot),
# lintian, and debootstrap for the clean Debian root of the install test.
PACKAGING=(dpkg-dev fakeroot lintian debootstrap debian-archive-keyring)
# `make test-vm` (tests/vm): QEMU to boot the guest kernel, BlueZ's btvirt (virtual
# controllers), a static busybox for the initramfs, cpio/kmod/xz/zstd to build it, and
# the archive keyring that authenticates the kernel's download (fetch-kernel.sh).
VM=(qemu-system-x86 bluez-test-tools busybox-static cpio kmod xz-utils zstd
    debian-archive-keyring)
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

# Node.js builds the phone app and runs the browser tests: Debian's, unless a node is
# already on PATH from elsewhere (mixing the two breaks both).
NODE=()
command -v node >/dev/null 2>&1 || NODE=(nodejs npm)

# The cross builds and the VM suite (Debian's amd64 kernel under QEMU) run on amd64
# build machines; a Pi building for itself does not need them.
amd64=0
[ "$(dpkg --print-architecture)" = amd64 ] && amd64=1

[ $# -gt 0 ] || set -- all
want=()
for group in "$@"; do
  case "$group" in
    build) want+=("${BUILD[@]}" "${RUNTIME[@]}") ;;
    dev)   want+=("${BUILD[@]}" "${RUNTIME[@]}" "${DEV[@]}" "${NODE[@]}") ;;
    test)  want+=("${BUILD[@]}" "${RUNTIME[@]}" "${DEV[@]}" "${NODE[@]}" "${TEST[@]}") ;;
    lint)  want+=("${LINT[@]}") ;;
    cross|deb)
      want+=("${BUILD[@]}" "${RUNTIME[@]}" "${DEV[@]}" "${NODE[@]}")
      [ "$amd64" -eq 1 ] && want+=("${CROSS[@]}")
      [ "$group" = deb ] && want+=("${PACKAGING[@]}") ;;
    vm)
      want+=("${BUILD[@]}" "${RUNTIME[@]}" "${DEV[@]}" "${NODE[@]}")
      [ "$amd64" -eq 1 ] && want+=("${VM[@]}") ;;
    all)
      want+=("${BUILD[@]}" "${RUNTIME[@]}" "${DEV[@]}" "${NODE[@]}" "${TEST[@]}" "${LINT[@]}"
             "${PACKAGING[@]}")
      [ "$amd64" -eq 1 ] && want+=("${CROSS[@]}" "${VM[@]}") ;;
    *) echo "install-deps: unknown group '$group' (build, dev, test, lint, cross, deb, vm, all;" \
            "or --print cross-target)" >&2
       exit 2 ;;
  esac
done

# Earlier versions added bookworm-backports to the host's apt sources for the VM
# suite's kernel (and installed that kernel). Nothing here needs it any more; the
# file is the user's to keep or remove.
old=/etc/apt/sources.list.d/bookworm-backports.list
if grep -qsx 'deb http://deb.debian.org/debian bookworm-backports main' "$old"; then
  echo "install-deps: note: $old (written by an earlier install-deps.sh for the VM" \
       "suite's kernel) is no longer needed; remove it if nothing else uses it"
fi

mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages of '$*' present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
