#!/usr/bin/env bash
# Runs every Ferry test on a fresh Debian bookworm machine: installs what is missing, builds
# (ccache), and runs the CTest suite. The tests start the servers they need themselves
# (throwaway Postgres 15 clusters as the postgres user, gRPC servers on loopback).
#
# Then builds the durable log's tests again with AddressSanitizer + UBSan and runs them.
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

# The sanitizer pass covers the code most exposed to memory errors: the log and the formats.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON \
  -DFERRY_BUILD_BENCH=OFF > build-asan-configure.log 2>&1 || { cat build-asan-configure.log; exit 1; }
asan_tests=$(cd build-asan && ctest -N -L sanitize | awk '/Test +#/ {print $3}')
if [ -n "$asan_tests" ]; then
  cmake --build build-asan -j"$jobs" --target $asan_tests
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L sanitize)
fi
