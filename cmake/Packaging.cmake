# SPDX-License-Identifier: GPL-3.0-or-later
# Installation layout and the Debian package (CPack DEB), included from CMakeLists.txt.
# `make deb` builds the packages for amd64, arm64 and armhf; docs/install.md lists
# where every file goes. Paths under /etc and /lib are absolute on purpose: the
# package always installs into /usr, whatever CMAKE_INSTALL_PREFIX says.

set(BLUEZSCRIPT_APP_DIR "${CMAKE_SOURCE_DIR}/clients/web/dist" CACHE PATH
    "The built phone app (make app) installed to ${CMAKE_INSTALL_DATADIR}/bluezscript/app")

set(_pkg ${CMAKE_CURRENT_SOURCE_DIR}/packaging)
set(_doc ${CMAKE_INSTALL_DATADIR}/doc/bluezscript)
# `make deb` builds exactly the two programs first; cpack must not build everything
# else (tests, benchmarks) through the install step's dependency on "all".
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# Binaries (install(TARGETS) in CMakeLists.txt): bin/bluezscriptd, bin/bluezscript,
# linked with full RELRO (relocations read-only before main), as Debian builds them.
foreach(_t bluezscriptd bluezscript)
  target_link_options(${_t} PRIVATE -Wl,-z,relro -Wl,-z,now)
endforeach()

# The service. Debian bookworm still ships units in /lib (the /usr-merge moratorium).
install(FILES ${_pkg}/systemd/bluezscriptd.service DESTINATION /lib/systemd/system)
install(FILES ${_pkg}/dbus/bluezscript.conf DESTINATION ${CMAKE_INSTALL_DATADIR}/dbus-1/system.d)

# Defaults (conffiles, kept on upgrade when edited) and the two example actions.
install(FILES ${_pkg}/bluezscript.toml DESTINATION /etc/bluezscript)
install(PROGRAMS ${_pkg}/actions.d/hello ${_pkg}/actions.d/gpio-status
        DESTINATION /etc/bluezscript/actions.d)
install(FILES ${_pkg}/actions.d/hello.toml ${_pkg}/actions.d/gpio-status.toml
        DESTINATION /etc/bluezscript/actions.d)
set(BZS_CONFFILES /etc/bluezscript/bluezscript.toml
    /etc/bluezscript/actions.d/hello /etc/bluezscript/actions.d/hello.toml
    /etc/bluezscript/actions.d/gpio-status /etc/bluezscript/actions.d/gpio-status.toml)

# The phone app the daemon serves at /app/ (arch-independent, same in every package).
install(CODE "if(NOT IS_DIRECTORY \"${BLUEZSCRIPT_APP_DIR}\" OR NOT EXISTS \"${BLUEZSCRIPT_APP_DIR}/index.html\")
  message(FATAL_ERROR \"BLUEZSCRIPT_APP_DIR=${BLUEZSCRIPT_APP_DIR} holds no built app (index.html): run make app\")
endif()")
install(DIRECTORY ${BLUEZSCRIPT_APP_DIR}/ DESTINATION ${CMAKE_INSTALL_DATADIR}/bluezscript/app
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Documentation, the GPIO drop-in as an example, Debian's copyright and changelog.
install(FILES docs/install.md docs/actions.md docs/configuration.md docs/security.md
        docs/web.md DESTINATION ${_doc})
install(FILES ${_pkg}/systemd/gpio.conf.example DESTINATION ${_doc}/examples RENAME gpio.conf)
set(BZS_DEB_MAINTAINER "BlueZscript maintainers <maintainers@users.noreply.r-seed-b004aa03.example>")
set(BZS_DEB_REVISION 1)
set(BZS_DEB_VERSION ${PROJECT_VERSION}-${BZS_DEB_REVISION})
# The source files start with an SPDX line that Debian's formats do not allow.
foreach(_f copyright changelog.in)
  file(READ ${_pkg}/deb/${_f} _text)
  string(REGEX REPLACE "^#[^\n]*\n" "" _text "${_text}")
  string(CONFIGURE "${_text}" _text @ONLY)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/deb/${_f} "${_text}")
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${_pkg}/deb/copyright ${_pkg}/deb/changelog.in)
execute_process(COMMAND gzip -9nc ${CMAKE_CURRENT_BINARY_DIR}/deb/changelog.in
                OUTPUT_FILE ${CMAKE_CURRENT_BINARY_DIR}/deb/changelog.Debian.gz
                RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "gzip of the Debian changelog failed")
endif()
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/deb/copyright
              ${CMAKE_CURRENT_BINARY_DIR}/deb/changelog.Debian.gz DESTINATION ${_doc})

# Maintainer scripts and the conffiles list.
list(JOIN BZS_CONFFILES "\n" _conffiles)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/deb/conffiles "${_conffiles}\n")

if(NOT BZS_DEB_ARCH)
  execute_process(COMMAND dpkg --print-architecture OUTPUT_VARIABLE BZS_DEB_ARCH
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME bluezscript)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${BZS_DEB_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/packages)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${BZS_DEB_REVISION})
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${BZS_DEB_ARCH})
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run owner-approved scripts from paired phones over Bluetooth LE")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "BlueZscript turns a Raspberry Pi (or any Linux machine with BlueZ) into a
Bluetooth LE peripheral that runs the owner's action scripts when a paired
phone asks, with every command authenticated (TOTP and HMAC), replay-protected
and audited. It contains the daemon (bluezscriptd, a sandboxed systemd service
running as its own user), the owner's command-line tool (bluezscript), the web
UI and the phone app the daemon serves, and two example actions.")
# Depends: the shared libraries' packages are computed by dpkg-shlibdeps in
# cmake/CPackProjectConfig.cmake (for cross builds against the sysroot's packages).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
set(BZS_DEB_EXTRA_DEPENDS "adduser, init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "bluez, dbus")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "gpiod")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_pkg}/deb/postinst ${_pkg}/deb/prerm ${_pkg}/deb/postrm
    ${CMAKE_CURRENT_BINARY_DIR}/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Read by cpack (not cmake): computes Depends from the built binaries.
set(CPACK_BZS_BINARIES ${CMAKE_CURRENT_BINARY_DIR}/bluezscriptd ${CMAKE_CURRENT_BINARY_DIR}/bluezscript)
set(CPACK_BZS_WORK_DIR ${CMAKE_CURRENT_BINARY_DIR}/deb/shlibdeps)
set(CPACK_BZS_DEB_ARCH ${BZS_DEB_ARCH})
set(CPACK_BZS_EXTRA_DEPENDS "${BZS_DEB_EXTRA_DEPENDS}")
if(CMAKE_CROSSCOMPILING)
  set(CPACK_BZS_SYSROOT ${BZS_SYSROOT})
  set(CPACK_BZS_TRIPLET ${BZS_TRIPLET})
endif()
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_LIST_DIR}/CPackProjectConfig.cmake)

include(CPack)
