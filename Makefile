# SPDX-License-Identifier: MIT
# A thin wrapper around CMake and ctest. The real build is CMakeLists.txt.
#
#   make test     deps-test, then plain + ASan/UBSan + TSan test runs (the
#                 plain one includes man_pages), then an install check
#                 (pkg-config and find_package consumers, man pages, and a
#                 /usr/local install run without LD_LIBRARY_PATH in a
#                 private mount namespace), then a summary; the stages are
#                 also targets of their own: test-plain, test-asan,
#                 test-tsan (-L threads), test-install
#   make bench    deps, Release build, bench/run.sh (the default set,
#                 under 3 minutes on a 2-core VM; docs/BENCHMARKS.md)
#   make bench-full  the same with --full: every workload, full sizes
#                 (about 16 minutes)
#   make install  build/, `cmake --install` into $(PREFIX) (/usr/local),
#                 ldconfig when that is a system directory and we are root
#                 (otherwise it says what to run), then the README example
#                 built and run against it (scripts/install.sh). Not root:
#                 `sudo make install`, or PREFIX=$HOME/.local
#   make deps     scripts/deps.sh: install what is missing (apt-get, root)
#                 for the tests and the benchmarks; deps-test: for the
#                 tests only (what `make test` asks for)
#   make soak     evq-echo under load for SOAK_SECONDS (60) per backend,
#                 every byte verified, server fds and RSS printed each
#                 second (tests/soak/soak.sh; 5 s per backend in make test)
#   make random-long  the model-based random tester (tests/test_random.c)
#                 for RANDOM_SECONDS (120) per backend, ASan+UBSan build
#   make fault    fault injection (tests/fault/) in the ASan+UBSan build,
#                 each call site failing on its 1st..FAULT_NTH (3) call,
#                 plus FAULT_RANDOM (50) seeded random runs per scenario
#   (docs/RELIABILITY.md says what each checks)
#   make clean    remove the build directories

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := test

JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
CMAKE ?= cmake
CTEST ?= ctest
# Extra -D options for every configure, e.g. CMAKE_ARGS=-DCMAKE_C_COMPILER=clang
CMAKE_ARGS ?=

# A literal comma, for use inside $(call ...).
, := ,

BUILD_DIRS := build build-asan build-tsan build-release

# Tests without their own TIMEOUT get this many seconds.
CTEST_FLAGS := --output-on-failure --no-tests=error --timeout 120 -j2

# Fail on the first sanitizer report, with a stack.
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS ?= abort_on_error=0:detect_leaks=1
export TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1

# $(call configure,dir,options...)
configure = $(CMAKE) -S . -B $(1) $(2) $(CMAKE_ARGS)
# $(call ctest,dir,extra flags): run ctest, keep its output in dir/ctest.log.
ctest = $(CTEST) --test-dir $(1) $(CTEST_FLAGS) $(2) 2>&1 | tee $(1)/ctest.log

.PHONY: soak random-long fault build-asan-reliability
.PHONY: all deps deps-test test test-plain test-asan test-tsan test-install \
        test-summary build bench bench-full bench-build install clean

all: build

deps:
	@bash scripts/deps.sh bench

deps-test:
	@bash scripts/deps.sh test

build:
	$(call configure,build,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVQ_WERROR=ON)
	$(CMAKE) --build build -j$(JOBS)

# Every stage runs even if an earlier one failed, so that one run shows
# all that is wrong; the summary at the end, and the exit status, count
# every failure.
TEST_STAGES := test-plain test-asan test-tsan test-install

test: deps-test
	@rm -f build*/ctest.log build/install-check.log
	@status=0; \
	for stage in $(TEST_STAGES); do \
	  echo "== make $$stage"; \
	  $(MAKE) --no-print-directory $$stage || { status=1; echo "== make $$stage: FAILED"; }; \
	done; \
	$(MAKE) --no-print-directory test-summary || status=1; \
	exit $$status

test-plain: build
	$(call ctest,build)

test-asan:
	$(call configure,build-asan,-DCMAKE_BUILD_TYPE=Debug -DEVQ_WERROR=ON \
	  -DEVQ_SANITIZE=address$(,)undefined -DEVQ_BUILD_BENCH=OFF)
	$(CMAKE) --build build-asan -j$(JOBS)
	$(call ctest,build-asan)

test-tsan:
	$(call configure,build-tsan,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVQ_WERROR=ON \
	  -DEVQ_SANITIZE=thread -DEVQ_BUILD_BENCH=OFF)
	$(CMAKE) --build build-tsan -j$(JOBS)
	$(call ctest,build-tsan,-L threads)

test-install: build
	bash scripts/check-install.sh build 2>&1 | tee build/install-check.log

# The closing lines: each stage's result, from the logs above, and a total.
test-summary:
	@bash scripts/test-summary.sh

bench-build: deps
	$(call configure,build-release,-DCMAKE_BUILD_TYPE=Release \
	  -DEVQ_BUILD_TESTS=OFF -DEVQ_BUILD_EXAMPLES=ON)
	$(CMAKE) --build build-release -j$(JOBS)

# The library's workloads (bench/run.sh), then the example servers
# against nginx and redis-server (bench/apps.sh, table in
# bench/results/apps.txt).
bench: bench-build
	bash bench/run.sh build-release
	bash bench/apps.sh build-release | tee bench/results/apps.txt

bench-full: bench-build
	bash bench/run.sh build-release --full

install:
	CMAKE='$(CMAKE)' JOBS='$(JOBS)' CMAKE_ARGS='$(CMAKE_ARGS)' \
	  bash scripts/install.sh build '$(PREFIX)'

SOAK_SECONDS ?= 60
RANDOM_SECONDS ?= 120
FAULT_NTH ?= 3
FAULT_RANDOM ?= 50
RELIABILITY_BACKENDS := uring aio epoll poll

soak: build
	bash tests/soak/soak.sh build $(SOAK_SECONDS) $(RELIABILITY_BACKENDS)

build-asan-reliability:
	$(call configure,build-asan,-DCMAKE_BUILD_TYPE=Debug -DEVQ_WERROR=ON \
	  -DEVQ_SANITIZE=address$(,)undefined -DEVQ_BUILD_BENCH=OFF)
	$(CMAKE) --build build-asan -j$(JOBS) --target test_random test_fault

random-long: build-asan-reliability
	@status=0; for b in $(RELIABILITY_BACKENDS); do \
	  echo "== random-long [$$b], $(RANDOM_SECONDS) s"; \
	  EVQ_BACKEND=$$b EVQ_RANDOM_SECONDS=$(RANDOM_SECONDS) \
	    build-asan/tests/test_random || status=1; \
	done; exit $$status

fault: build-asan-reliability
	@status=0; for b in $(RELIABILITY_BACKENDS); do \
	  echo "== fault [$$b]"; \
	  EVQ_BACKEND=$$b EVQ_FAULT_NTH=$(FAULT_NTH) \
	    EVQ_FAULT_RANDOM=$(FAULT_RANDOM) build-asan/tests/test_fault \
	    || status=1; \
	done; exit $$status

clean:
	rm -rf $(BUILD_DIRS)
