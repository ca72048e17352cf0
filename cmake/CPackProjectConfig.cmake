# SPDX-License-Identifier: GPL-3.0-or-later
# Read by cpack before it builds the .deb (CPACK_PROJECT_CONFIG_FILE in
# cmake/Packaging.cmake): sets Depends from dpkg-shlibdeps run on the built binaries.
# Native builds use the host's dpkg database. Cross builds look the libraries up in
# the sysroot (-l) and take the symbols and shlibs files scripts/make-sysroot.sh
# collected from the sysroot's packages, presented to dpkg-shlibdeps as a package
# being built (debian/<name>/DEBIAN/), with DEB_HOST_ARCH set to the target.

if(NOT CPACK_GENERATOR STREQUAL "DEB")
  return()
endif()
foreach(_b IN LISTS CPACK_BZS_BINARIES)
  if(NOT EXISTS "${_b}")
    message(FATAL_ERROR "cpack: ${_b} is not built")
  endif()
endforeach()

file(REMOVE_RECURSE "${CPACK_BZS_WORK_DIR}")
file(MAKE_DIRECTORY "${CPACK_BZS_WORK_DIR}/debian")
file(WRITE "${CPACK_BZS_WORK_DIR}/debian/control"
     "Source: bluezscript\n\nPackage: bluezscript\nArchitecture: any\n")
set(_cmd dpkg-shlibdeps -O)
set(_env)
if(CPACK_BZS_SYSROOT)
  set(_shl "${CPACK_BZS_SYSROOT}/.bzs-shlibs/DEBIAN")
  if(NOT EXISTS "${_shl}/symbols")
    message(FATAL_ERROR "cpack: ${_shl}/symbols is missing: recreate the sysroot (scripts/make-sysroot.sh)")
  endif()
  file(COPY "${_shl}" DESTINATION "${CPACK_BZS_WORK_DIR}/debian/sysroot")
  list(APPEND _cmd "-l${CPACK_BZS_SYSROOT}/usr/lib/${CPACK_BZS_TRIPLET}"
                   "-l${CPACK_BZS_SYSROOT}/lib/${CPACK_BZS_TRIPLET}")
  set(_env ${CMAKE_COMMAND} -E env DEB_HOST_ARCH=${CPACK_BZS_DEB_ARCH})
endif()
execute_process(COMMAND ${_env} ${_cmd} ${CPACK_BZS_BINARIES}
                WORKING_DIRECTORY "${CPACK_BZS_WORK_DIR}"
                OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc)
if(_rc OR NOT _out MATCHES "shlibs:Depends=([^\n]*)")
  message(FATAL_ERROR "dpkg-shlibdeps failed (${_rc}):\n${_out}\n${_err}")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${CMAKE_MATCH_1}, ${CPACK_BZS_EXTRA_DEPENDS}")
message(STATUS "bluezscript ${CPACK_BZS_DEB_ARCH}: Depends: ${CPACK_DEBIAN_PACKAGE_DEPENDS}")
