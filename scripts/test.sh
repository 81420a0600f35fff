#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script):
#   1. install build and test dependencies (Debian packages);
#   2. release build (build/), every ctest test;
#   3. ThreadSanitizer build (build-tsan/), the runtime tests and the actor tests (sessions,
#      the gateway: everything where actors meet on several threads);
#   4. ASan+UBSan build (build-asan/), the unit tests and the libFuzzer targets (tests/fuzz,
#      20 s each from their seed corpora).
# Fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

scripts/install-deps.sh --test

step() { printf '\n=== %s\n' "$*"; }

step "release build and all tests"
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

step "ThreadSanitizer: runtime and actor tests"
cmake --preset tsan >/dev/null
cmake --build build-tsan -j "$jobs"
TSAN_OPTIONS="suppressions=$root/tsan.supp:halt_on_error=1:second_deadlock_stack=1" \
  ctest --test-dir build-tsan --output-on-failure -L "runtime|actors" -j "$jobs"

step "ASan + UBSan: unit tests, and each parser's fuzz target for a few seconds"
cmake --preset asan >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS="abort_on_error=1:detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" \
  ctest --test-dir build-asan --output-on-failure -L "unit|fuzz" -j "$jobs"

step "all tests passed"
