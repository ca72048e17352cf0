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
# 64-bit file offsets and inode numbers (readdir64, stat64, ...): without them readdir()
# fails with EOVERFLOW on file systems with 64-bit inode numbers or directory offsets
# (a 64-bit kernel seen through qemu-user, btrfs, NFS, overlayfs). Safe with the
# libraries used here: none has off_t or ino_t in its interface. time_t stays 32-bit
# (bookworm's armhf ABI: _TIME_BITS=64 would break the libraries' interfaces).
set(CMAKE_C_FLAGS_INIT "-D_FILE_OFFSET_BITS=64")
set(CMAKE_CXX_FLAGS_INIT "-D_FILE_OFFSET_BITS=64")
