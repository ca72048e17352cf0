# SPDX-License-Identifier: GPL-3.0-or-later
# Front door for people: `make run`, `make test`, `make bench`.
# CMake does the building; this file only strings the steps together.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=
RUN_DIR    ?= run

.PHONY: all deps browser-deps build run test test-unit test-asan test-vm bench bench-ble format tidy vectors clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLUEZSCRIPT_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The browser tests' Node packages, exactly as pinned in tests/browser/package-lock.json.
browser-deps: deps
	cd tests/browser && npm ci --no-audit --no-fund

# Builds, creates ./run/ on first use (config, state, a sample action) and starts the daemon.
run: build
	@./scripts/run-local.sh $(BUILD) $(RUN_DIR)

# The whole suite twice: a normal -Werror build, then ASan+UBSan.
test: build browser-deps
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) test-asan

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j$(JOBS)

# End-to-end scenarios against real BlueZ 5.66 with virtual controllers (btvirt) in a
# QEMU VM that runs this machine's files, including $(BUILD)'s binaries (tests/vm/).
# Only the two binaries it needs are built here.
test-vm: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) --target bluezscriptd bluezscript -j$(JOBS)
	./tests/vm/run.sh $(BUILD)

$(BUILD_ASAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DBLUEZSCRIPT_WERROR=ON \
	      -DBLUEZSCRIPT_SANITIZE=ON -DBLUEZSCRIPT_BENCH=OFF $(CMAKE_FLAGS)

test-asan: deps $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

bench: build
	$(BUILD)/bench/bzs_bench --benchmark_counters_tabular=true

# BLE round trip (write -> result notified) through the real daemon and the fake
# bluetoothd on a private bus; its own build folder, only the two binaries it needs.
bench-ble: deps
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLUEZSCRIPT_WERROR=ON \
	      -DBLUEZSCRIPT_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build build-bench --target bluezscriptd bzs_bench_ble -j$(JOBS)
	./bench/run-ble-roundtrip.sh build-bench

vectors: build
	$(BUILD)/spec/bzs_gen_vectors spec/vectors

format:
	find src tests bench spec -name '*.cpp' -o -name '*.h' | xargs clang-format -i

tidy: build
	find src -name '*.cpp' | xargs clang-tidy -p $(BUILD) --quiet

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
