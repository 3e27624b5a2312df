#!/usr/bin/env bash
# Side-by-side benchmarks: Ferry against native PostgreSQL 15 logical replication
# (publication / subscription), on this machine, in the same run, reported as ratios.
# Builds and runs bench/side_by_side/side_by_side_bench, which does the work (one function per
# scenario, on the project's test fixtures); method and caveats: bench/side_by_side/README.md.
#
# Usage: scripts/bench.sh [--quick] [--only LIST] [--keep] [--no-build]
#   --quick      small sizes (scale 5 initial load, 20,000-transaction catch-up, 15 s of lag)
#   --only LIST  comma-separated subset of: load,catchup,proxy,lag,bigtx (default: all), and the
#                DR scenarios the program lists in its usage
#   --keep       keep the work directory (clusters, ferryd logs) after the run
#   --no-build   use the binaries already in $FERRY_BENCH_BUILD
# Environment: FERRY_BENCH_BUILD (build dir, default build-sbs), FERRY_BENCH_TMP (default /tmp),
#   FERRY_BENCH_LOAD_SCALE (pgbench scale of the initial load, default 50, --quick 5; 20 gave
#   steady ratios on this machine when the host's memory made scale 50 swing, FINDINGS.md),
#   FERRY_BENCH_LAG_RATE (pgbench -R of the steady-lag benchmark, default 2000),
#   FERRY_BENCH_LAG_LOW_RATE (a second steady-lag run at this rate, default 200, 0 = none),
#   FERRY_BENCH_LAG_SECONDS (how long each steady-lag run's pgbench runs, default 30, --quick
#   15; at 2,000 tps each log flushes a memtable every ~3.6 s),
#   FERRY_BENCH_COMMIT_DELAY_US (postgres.commit_delay_us of both ferryd; default: ferryd's),
#   FERRY_BENCH_COMPRESSION_LEVEL (stream.compression_level of both ferryd; default: ferryd's),
#   FERRY_BENCH_FERRYD_CPUS (a CPU list: both ferryd run under `taskset -c LIST`; default: not
#   pinned; FINDINGS.md, session 28),
#   FERRY_BENCH_PG_HUGE_PAGES (every cluster's `huge_pages`, e.g. on; default: Postgres's `try`,
#   which uses huge pages only when vm.nr_hugepages reserves them; FINDINGS.md, session 30),
#   FERRY_BENCH_PERF (1: perf profiles of both ferryd; dwarf: the same with whole call chains
#   (DWARF stacks, large files); system: of the whole machine; stat: counts of fdatasync, write,
#   futex and context switches per ferryd, to divide by the transactions),
#   FERRY_BENCH_DEBUG_LOG (1: both ferryd log at debug, RocksDB's flushes among it, to match
#   the steady lag's slowest probes, which the run logs with their times, with what ran then).
#
# Writes its section of bench/RESULTS.md, between the side-by-side markers, and leaves every
# other section of the file alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD=1
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick|--keep) ARGS+=("$1"); shift ;;
    --no-build) BUILD=0; shift ;;
    --only) [ $# -ge 2 ] || { echo "--only needs a list" >&2; exit 2; }; ARGS+=(--only "$2"); shift 2 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--only load,catchup,proxy,lag,bigtx,switchover] [--keep] [--no-build]" >&2
       exit 2 ;;
  esac
done

BUILD_DIR=${FERRY_BENCH_BUILD:-$ROOT/build-sbs}
log() { echo "bench: $(date +%T) $*" >&2; }
if [ "$BUILD" = 1 ]; then
  log "building Release in $BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFERRY_BUILD_TESTS=ON \
    > "$BUILD_DIR/bench-configure.log" 2>&1 \
    || { cat "$BUILD_DIR/bench-configure.log" >&2; log "ERROR: configure failed"; exit 1; }
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target side_by_side_bench >&2 \
    || { log "ERROR: build failed"; exit 1; }
fi
BENCH=$BUILD_DIR/bench/side_by_side_bench
[ -x "$BENCH" ] || { log "ERROR: missing $BENCH"; exit 1; }
grep -q 'CMAKE_BUILD_TYPE:STRING=Release' "$BUILD_DIR/CMakeCache.txt" \
  || { log "ERROR: $BUILD_DIR is not a Release build"; exit 1; }
exec "$BENCH" ${ARGS[@]+"${ARGS[@]}"} --results "$ROOT/bench/RESULTS.md" --repo "$ROOT"
