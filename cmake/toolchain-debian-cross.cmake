# SPDX-License-Identifier: GPL-3.0-or-later
# Shared part of the cross toolchain files (toolchain-<triplet>.cmake set BZS_TRIPLET,
# BZS_DEB_ARCH and BZS_QEMU, then include this file).
#
# Compilers: Debian's cross toolchains (crossbuild-essential-arm64 / -armhf).
# Libraries and headers: a sysroot holding the target architecture's Debian -dev
# packages (scripts/make-sysroot.sh; `make test-cross` and `make deb` create it), given
# as -DBZS_SYSROOT=... or defaulting to build-<arch>/sysroot beside this repository's
# other build folders.
# Tests: ctest runs the cross-built binaries through qemu-user-static, with the sysroot
# as the emulated program's library root, so no binfmt_misc registration is needed.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${BZS_PROCESSOR})
set(CMAKE_LIBRARY_ARCHITECTURE ${BZS_TRIPLET})

if(NOT BZS_SYSROOT)
  set(BZS_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build-${BZS_DEB_ARCH}/sysroot")
endif()
get_filename_component(BZS_SYSROOT "${BZS_SYSROOT}" ABSOLUTE)
if(NOT EXISTS "${BZS_SYSROOT}/usr/lib/${BZS_TRIPLET}")
  message(FATAL_ERROR "cross build: no ${BZS_DEB_ARCH} sysroot at ${BZS_SYSROOT} "
                      "(create it with scripts/make-sysroot.sh ${BZS_DEB_ARCH} ${BZS_SYSROOT})")
endif()
# try_compile projects get these too.
set(CMAKE_TRY_COMPILE_PLATFORM_VARIABLES BZS_SYSROOT BZS_DEB_ARCH BZS_TRIPLET BZS_QEMU BZS_PROCESSOR)

set(CMAKE_C_COMPILER ${BZS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${BZS_TRIPLET}-g++)
set(CMAKE_SYSROOT "${BZS_SYSROOT}")

# Programs (pkg-config, python3, ...) from the host; everything else from the sysroot.
set(CMAKE_FIND_ROOT_PATH "${BZS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The host's pkg-config, reading only the target's .pc files and prefixing their paths.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${BZS_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR} "${BZS_SYSROOT}/usr/lib/${BZS_TRIPLET}/pkgconfig:${BZS_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest and gtest_discover_tests run target binaries through this.
find_program(BZS_QEMU_PATH ${BZS_QEMU} REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${BZS_QEMU_PATH};-L;${BZS_SYSROOT}")

# The Debian architecture of the packages built here (cmake/Packaging.cmake).
set(BZS_DEB_ARCH ${BZS_DEB_ARCH} CACHE STRING "Debian architecture of the packages")
