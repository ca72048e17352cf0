# SPDX-License-Identifier: GPL-3.0-or-later
# Cross build for 32-bit Raspberry Pi OS / Debian armhf (ARMv7 hard float: Pi 2 and
# later, and the Pi Zero 2 W / 3 / 4 on a 32-bit OS):
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm-linux-gnueabihf.cmake
# Raspberry Pi OS's own armhf is ARMv6 (Pi 1, Zero); Debian's armhf packages and this
# toolchain target ARMv7, so those two boards are not covered.
set(BZS_TRIPLET arm-linux-gnueabihf)
set(BZS_DEB_ARCH armhf)
set(BZS_PROCESSOR arm)
set(BZS_QEMU qemu-arm-static)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-debian-cross.cmake)
# 64-bit file offsets: set for every build in CMakeLists.txt.
