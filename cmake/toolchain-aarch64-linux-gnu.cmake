# SPDX-License-Identifier: GPL-3.0-or-later
# Cross build for 64-bit Raspberry Pi OS / Debian arm64 (Pi Zero 2 W, 3, 4, 5):
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
set(BZS_TRIPLET aarch64-linux-gnu)
set(BZS_DEB_ARCH arm64)
set(BZS_PROCESSOR aarch64)
set(BZS_QEMU qemu-aarch64-static)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-debian-cross.cmake)
