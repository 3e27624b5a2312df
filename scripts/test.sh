#!/usr/bin/env bash
# Runs every Ferry test on a fresh Debian bookworm machine: installs what is missing, builds
# (ccache), and runs the CTest suite. The tests start the servers they need themselves
# (throwaway Postgres 15 clusters as the postgres user, gRPC servers on loopback).
#
# Then compiles everything with clang's thread-safety analysis, and builds the tests labelled
# `sanitize` (the log, the decoder, the stream codec, the config parser) again with
# AddressSanitizer + UBSan and runs them.
#
# Usage: scripts/test.sh            all tests
#        FERRY_TEST_ARGS="-L unit" scripts/test.sh   any extra ctest arguments
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > build-configure.log 2>&1 || {
  cat build-configure.log; exit 1; }
cmake --build build -j"$jobs"

# Slow tests (label "slow") run too; every test has its own CTest timeout.
(cd build && ctest --output-on-failure --timeout 900 -j"$jobs" ${FERRY_TEST_ARGS:-})

# Clang checks the thread-safety annotations (ABSL_GUARDED_BY and friends), which GCC ignores:
# every library and program is compiled with -Wthread-safety -Werror.
CC=clang CXX=clang++ cmake -S . -B build-clang -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DFERRY_THREAD_SAFETY=ON -DFERRY_BUILD_TESTS=OFF -DFERRY_BUILD_BENCH=OFF -DFERRY_JEMALLOC=OFF \
  > build-clang-configure.log 2>&1 || { cat build-clang-configure.log; exit 1; }
cmake --build build-clang -j"$jobs"

# The sanitizer pass covers the code most exposed to memory errors and hostile input: the log,
# the pgoutput decoder, the stream codec and the config parser.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON \
  -DFERRY_BUILD_BENCH=OFF > build-asan-configure.log 2>&1 || { cat build-asan-configure.log; exit 1; }
asan_tests=$(cd build-asan && ctest -N -L sanitize | awk '/Test +#/ {print $3}')
if [ -n "$asan_tests" ]; then
  cmake --build build-asan -j"$jobs" --target $asan_tests
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L sanitize)
fi
