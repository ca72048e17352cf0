# SPDX-License-Identifier: GPL-3.0-or-later
# Front door for people: `make run`, `make test`, `make bench`.
# CMake does the building; this file only strings the steps together.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=
RUN_DIR    ?= run
# The package groups of scripts/install-deps.sh, one make target each (deps-dev, ...).
DEPS_GROUPS := dev test lint cross deb vm

.PHONY: all deps browser-deps app-deps app build run test test-unit test-asan test-tsan test-vm \
        vm-kernel bench bench-ble format format-check tidy vectors clean deb build-config \
        test-cross test-deb $(addprefix deps-,$(DEPS_GROUPS))

all: build

# Each target installs the Debian packages of what it runs, no more
# (scripts/install-deps.sh names the groups): `make run` and `make test` never
# install the cross toolchains, QEMU or packaging tools. `make deps` installs every
# group (CI).
deps:
	@./scripts/install-deps.sh all

$(addprefix deps-,$(DEPS_GROUPS)):
	@./scripts/install-deps.sh $(@:deps-%=%)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLUEZSCRIPT_WERROR=ON $(CMAKE_FLAGS)

build: deps-dev $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The browser tests' Node packages, exactly as pinned in tests/browser/package-lock.json.
# Each of these steps runs again only when what it reads changed (npm ci writes
# node_modules/.package-lock.json), not once per target that needs it: make test,
# test-asan and deb all do.
browser-deps: deps-test tests/browser/node_modules/.package-lock.json
tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund

# The phone app (clients/web): its Node packages exactly as pinned in its
# package-lock.json, then type-checked and built into clients/web/dist/.
app-deps: deps-dev clients/web/node_modules/.package-lock.json
clients/web/node_modules/.package-lock.json: clients/web/package-lock.json
	cd clients/web && npm ci --no-audit --no-fund

APP_SOURCES := $(shell find clients/web -path clients/web/node_modules -prune -o \
                 -path clients/web/dist -prune -o -type f -print)
app: app-deps clients/web/dist/index.html
clients/web/dist/index.html: $(APP_SOURCES) clients/web/node_modules/.package-lock.json
	cd clients/web && npm run --silent typecheck && npm run --silent build
	@touch $@

# Builds, creates ./run/ on first use (config, state, a sample action) and starts the daemon.
run: build app
	@./scripts/run-local.sh $(BUILD) $(RUN_DIR)

# Every test in the normal -Werror build. The sanitizer builds are `make test-asan`
# and `make test-tsan` (CI runs both).
test: deps-test build browser-deps app
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j$(JOBS)

# End-to-end scenarios against real BlueZ 5.66 with virtual controllers (btvirt) in a
# QEMU VM that runs this machine's files, including $(BUILD)'s binaries (tests/vm/).
# Only the two binaries it needs are built here. The guest kernel is downloaded with
# apt into $(BUILD)/vm/kernel/ and unpacked there, never installed (tests/vm/fetch-kernel.sh).
test-vm: deps-vm $(BUILD)/CMakeCache.txt vm-kernel
	cmake --build $(BUILD) --target bluezscriptd bluezscript -j$(JOBS)
	./tests/vm/run.sh $(BUILD)

vm-kernel: deps-vm
	./tests/vm/fetch-kernel.sh $(BUILD)/vm/kernel

# The sanitizer builds: Debug with line tables only (-g1: reports keep file:line), no
# benchmarks. ASan at -O0: measured on web/server.cpp with ASan+UBSan, 36 s of CPU at
# -O0 -g1, 71 s at -O1 -g1, 85 s at -O1 -g, and the suite mostly waits on processes,
# so a faster build beats faster instrumented code (CI's budget, docs/testing.md).
# TSan at -O1, as its authors advise: -O0 slows it far more, and its build is small.
SANITIZER_FLAGS = -DCMAKE_BUILD_TYPE=Debug -DBLUEZSCRIPT_WERROR=ON -DBLUEZSCRIPT_BENCH=OFF

$(BUILD_ASAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_ASAN) -DBLUEZSCRIPT_SANITIZE=ON $(SANITIZER_FLAGS) \
	      -DCMAKE_CXX_FLAGS_DEBUG=-g1 $(CMAKE_FLAGS)

# The whole suite under ASan+UBSan, browser tests included (they drive the sanitized
# daemon). Tests labelled no-cxx run none of our C++ and are left to `make test`.
test-asan: deps-test browser-deps app $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -LE no-cxx -j$(JOBS)

$(BUILD_TSAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_TSAN) -DBLUEZSCRIPT_TSAN=ON $(SANITIZER_FLAGS) \
	      "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1" $(CMAKE_FLAGS)

# The tests labelled `threads` (tests/CMakeLists.txt) under ThreadSanitizer; only their
# binaries are built. A race report fails the test (TSan exits 66).
test-tsan: deps-test $(BUILD_TSAN)/CMakeCache.txt
	cmake --build $(BUILD_TSAN) --target bzs_thread_tests -j$(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -L threads -j$(JOBS)

bench: build
	$(BUILD)/bench/bzs_bench --benchmark_counters_tabular=true

# BLE round trip (write -> result notified) through the real daemon and the fake
# bluetoothd on a private bus; its own build folder, only the two binaries it needs.
bench-ble: deps-dev
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLUEZSCRIPT_WERROR=ON \
	      -DBLUEZSCRIPT_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build build-bench --target bluezscriptd bluezscript bzs_bench_ble -j$(JOBS)
	./bench/run-ble-roundtrip.sh build-bench

vectors: build
	$(BUILD)/spec/bzs_gen_vectors spec/vectors

# C++ sources under clang-format (.clang-format): `make format` rewrites them,
# `make format-check` (CI) lists every file that differs and fails.
FORMAT_FILES = git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' \
               'bench/*.cpp' 'bench/*.h' 'spec/*.cpp'
format: deps-lint
	$(FORMAT_FILES) | xargs clang-format -i

format-check: deps-lint
	@$(FORMAT_FILES) | xargs clang-format --dry-run --Werror && echo "format-check: clean"

# clang-tidy (.clang-tidy, warnings are errors) over every source of src/, one file
# per process, $(JOBS) at a time.
tidy: deps-lint deps-dev $(BUILD)/CMakeCache.txt
	@git ls-files 'src/*.cpp' | xargs -P$(JOBS) -n1 clang-tidy -p $(BUILD) --quiet && echo "tidy: clean"

# --- Packages and cross builds (docs/install.md) ------------------------------------
# The phone app the packages carry; make app builds it into clients/web/dist.
APP_DIR    ?= clients/web/dist
DEB_DIR    ?= build-deb
CROSS_ARCHES := arm64 armhf
TOOLCHAIN_arm64 := cmake/toolchain-aarch64-linux-gnu.cmake
TOOLCHAIN_armhf := cmake/toolchain-arm-linux-gnueabihf.cmake
# Cross builds: Release without debug info, no benchmarks; the same folder serves the unit
# tests and the .deb. -O2 as Debian builds: GCC 12's -O3 reports a false -Wrestrict inside
# std::string's operator+ (GCC bug 105651).
CROSS_FLAGS = -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
              -DBLUEZSCRIPT_WERROR=ON -DBLUEZSCRIPT_BENCH=OFF \
              -DBLUEZSCRIPT_APP_DIR=$(abspath $(APP_DIR)) $(CMAKE_FLAGS)

# build-<arch>/: sysroot (cached: sysroot-<arch>) and a configured cross build.
sysroot-%: deps-cross
	./scripts/make-sysroot.sh $* build-$*/sysroot

cross-%: sysroot-%
	cmake -S . -B build-$* -DCMAKE_TOOLCHAIN_FILE=$(TOOLCHAIN_$*) $(CROSS_FLAGS) >/dev/null

# Unit tests that cannot pass under qemu-user whatever the code does (they pass natively
# and under ASan in `make test-asan`):
#  - exec errors of posix_spawn (missing file, no #! line): glibc reports them through
#    memory shared with a CLONE_VM|CLONE_VFORK child, which qemu-user runs as a plain
#    fork, so the error never reaches the parent;
#  - the action's ignored signals: qemu-user keeps two host real-time signals for
#    itself, and the processes it starts inherit them as ignored.
QEMU_EXCLUDE := ^RunnerTest[.](ScriptWithoutInterpreterLineIsNotHandedToAShell|MissingFileIsStartFailed|RunBlockingRunsToCompletionAndRestoresTheSignalMask|ActionStartsWithDefaultSignalState)$$

# The unit tests cross-built for arm64 and armhf, run under qemu-user-static.
test-cross: $(addprefix cross-,$(CROSS_ARCHES))
	@for a in $(CROSS_ARCHES); do \
	  cmake --build build-$$a --target bzs_unit_tests -j$(JOBS) && \
	  (cd build-$$a && ctest --output-on-failure -L unit -LE no-cxx -E '$(QEMU_EXCLUDE)' -j$(JOBS)) || exit 1; \
	done

# bluezscript_<version>_{amd64,arm64,armhf}.deb in $(DEB_DIR)/: amd64 from $(BUILD),
# the others cross-built.
deb: deps-deb app build-config $(addprefix cross-,$(CROSS_ARCHES))
	cmake -S . -B $(BUILD) -DBLUEZSCRIPT_APP_DIR=$(abspath $(APP_DIR)) >/dev/null
	@mkdir -p $(DEB_DIR)
	@for b in $(BUILD) $(addprefix build-,$(CROSS_ARCHES)); do \
	  cmake --build $$b --target bluezscriptd bluezscript -j$(JOBS) && \
	  rm -rf $$b/packages && (cd $$b && cpack -G DEB) && \
	  cp $$b/packages/*.deb $(DEB_DIR)/ || exit 1; \
	done
	@ls -l $(DEB_DIR)/*.deb

build-config: deps-dev $(BUILD)/CMakeCache.txt

# Installs the amd64 package into a clean Debian root (debootstrap, cached in
# $(DEB_DIR)/), checks files, owners, modes, the user, remove and purge; lintian on
# every package.
test-deb: deb
	cd tests/packaging && BZS_DEB_DIR=$(abspath $(DEB_DIR)) /usr/bin/python3 -m unittest -v test_deb

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(DEB_DIR) $(addprefix build-,$(CROSS_ARCHES))
