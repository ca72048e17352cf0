# SPDX-License-Identifier: GPL-3.0-or-later
# The sanitizer builds (make test-asan, make test-tsan; docs/testing.md). Both apply
# to everything compiled here, libraries and tests alike, so that a report names our
# own frames; the third-party libraries linked from Debian are not instrumented.
#   BLUEZSCRIPT_SANITIZE  AddressSanitizer + UndefinedBehaviorSanitizer (the whole suite)
#   BLUEZSCRIPT_TSAN      ThreadSanitizer (the tests labelled `threads`)
# ASan and TSan cannot share one process, hence two options and two build folders.

option(BLUEZSCRIPT_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(BLUEZSCRIPT_TSAN "Build with ThreadSanitizer (make test-tsan)" OFF)

if(BLUEZSCRIPT_SANITIZE AND BLUEZSCRIPT_TSAN)
  message(FATAL_ERROR "BLUEZSCRIPT_SANITIZE and BLUEZSCRIPT_TSAN exclude each other "
                      "(ASan and TSan cannot run in one process): use two build folders")
endif()
if(BLUEZSCRIPT_SANITIZE)
  # Every undefined behaviour is fatal, so a test cannot pass over one.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(BLUEZSCRIPT_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
if(BLUEZSCRIPT_SANITIZE OR BLUEZSCRIPT_TSAN)
  # GCC 12 reports false -Wmaybe-uninitialized inside libstdc++'s <regex> when the
  # instrumented code is optimised; the normal -Werror build keeps checking it. After
  # bzs_warnings' -Wall, which would turn it back on.
  target_compile_options(bzs_warnings INTERFACE -Wno-maybe-uninitialized)
endif()
