#!/usr/bin/env bash
# Ferry's main job on one machine: two regions replicating live.
#
# Starts two Postgres 15 clusters (east, west) and two ferryd (east primary, west standby) on
# loopback (scripts/lib/regions.sh), loads a pgbench schema on east, runs a steady pgbench write
# workload, and shows `ferryctl status` of both regions with live lag until Ctrl-C; then stops
# everything cleanly. Along the way: a schema change under load (after 6 s), a planned
# switchover, `ferryctl reverse` (after 14 s: west becomes the primary, east its fenced standby,
# the workload moves to west), a switchover back (after 26 s) and `ferryctl verify` (after 34 s:
# both regions equal at one cut, under load).
#
# Usage: scripts/demo.sh [--rate TPS] [--seconds N] [--gameday]
#   --seconds N  stop by itself after N seconds
#   --gameday    then run the failover game day (scripts/gameday.sh: promote, rejoin, failback)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=200
SECONDS_TO_RUN=0
GAMEDAY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECONDS_TO_RUN=$2; shift 2 ;;
    --gameday) GAMEDAY=1; [ "$SECONDS_TO_RUN" = 0 ] && SECONDS_TO_RUN=40; shift ;;
    *) echo "usage: scripts/demo.sh [--rate TPS] [--seconds N] [--gameday]" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target ferryd ferryctl
source scripts/lib/regions.sh
stop_demo() {
  trap - INT TERM EXIT
  echo; echo "demo: stopping"
  regions_cleanup
  echo "demo: logs kept in $REGIONS (ferryd-east.log, ferryd-west.log)"
}
trap stop_demo INT TERM EXIT

regions_init
echo "demo: east Postgres on ${PGPORT[east]}, west Postgres on ${PGPORT[west]}"
$PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres -i -s 1 -q app > /dev/null 2>&1
# pgbench_history has no key; replicate its inserts with the whole row as identity.
sql east "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"
regions_start_ferryd west
regions_start_ferryd east
echo "demo: ferryd east (admin ${ADMIN[east]}, metrics ${METRICS[east]}) and west (admin ${ADMIN[west]}, metrics ${METRICS[west]}) running"
echo "demo: status pages at http://127.0.0.1:${METRICS[east]}/status and http://127.0.0.1:${METRICS[west]}/status"

start_load() {
  $PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[$1]}" -U postgres -c 2 -j 2 -R "$RATE" -T 86400 -n \
    app >> "$REGIONS/pgbench.log" 2>&1 &
  PGBENCH_PID=$!
  EXTRA_PIDS=("$PGBENCH_PID")
}
stop_load() { kill "$PGBENCH_PID" 2>/dev/null || true; wait "$PGBENCH_PID" 2>/dev/null || true; }
start_load east
echo "demo: pgbench writing about $RATE transactions/s on east; Ctrl-C stops everything"

# A planned switchover under load: the primary is fenced, drained and flipped; nothing is lost.
switch_to() {
  local from=$1 to=$2
  echo; echo "demo: ferryctl reverse (planned switchover $from -> $to)"
  ctl "$from" reverse || true
  stop_load
  echo "demo: a write on $from now: $(sql "$from" "UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1" 2>&1 | head -1)"
  start_load "$to"
  echo "demo: pgbench now writes on $to, the new primary"
  PRIMARY=$to
  STANDBY=$from
}

start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
ddl_done=0 reversed=0 back=0 verified=0
PRIMARY=east
STANDBY=west
while true; do
  if [ "$ddl_done" = 0 ] && [ "$(elapsed)" -ge 6 ]; then
    # A schema change under load: the standby runs the same command at the same point.
    ddl="ALTER TABLE pgbench_branches ADD COLUMN region text NOT NULL DEFAULT 'east'"
    sql east "$ddl"
    echo; echo "demo: schema change on east: $ddl"
    ddl_done=1
  fi
  if [ "$reversed" = 0 ] && [ "$(elapsed)" -ge 14 ]; then switch_to east west; reversed=1; fi
  if [ "$back" = 0 ] && [ "$(elapsed)" -ge 26 ]; then switch_to west east; back=1; fi
  if [ "$verified" = 0 ] && [ "$(elapsed)" -ge 34 ]; then
    echo; echo "demo: ferryctl verify on $PRIMARY (both regions at one cut, under load)"
    ctl "$PRIMARY" verify || true
    verified=1
  fi
  echo
  echo "=== $(date +%T) ============================================================"
  for r in east west; do
    ctl "$r" status || true
    echo
  done
  for t in pgbench_accounts pgbench_history; do
    # The standby first: counted after it, the primary has had the same time to grow, so the
    # standby never shows more rows than the primary (the other way round, it could).
    s=$(sql "$STANDBY" "SELECT count(*) FROM $t" 2>/dev/null || echo "?")
    p=$(sql "$PRIMARY" "SELECT count(*) FROM $t" 2>/dev/null || echo "?")
    echo "rows in $t: $PRIMARY (primary) $p, $STANDBY (standby) $s"
  done
  if [ "$ddl_done" = 1 ]; then
    w=$(sql west "SELECT string_agg(DISTINCT region, ',') FROM pgbench_branches" 2>/dev/null || echo "not yet")
    echo "pgbench_branches.region on west (added on east with DEFAULT 'east'): ${w:-not yet}"
  fi
  if [ "$reversed" = 1 ]; then
    echo "after the switchover: $PRIMARY is the primary; $STANDBY's database refuses application writes"
  fi
  if [ "$SECONDS_TO_RUN" -gt 0 ] && [ "$(elapsed)" -ge "$SECONDS_TO_RUN" ]; then break; fi
  sleep 2
done
stop_demo
if [ "$GAMEDAY" = 1 ]; then
  echo; echo "demo: the failover game day (scripts/gameday.sh)"
  exec bash scripts/gameday.sh
fi
