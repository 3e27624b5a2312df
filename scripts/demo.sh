#!/usr/bin/env bash
# Ferry's main job on one machine: two regions replicating live.
#
# Starts two Postgres 15 clusters (east, west) and two ferryd (east primary, west standby) on
# loopback, loads a pgbench schema on east, runs a steady pgbench write workload, and shows
# `ferryctl status` of both regions with live lag until Ctrl-C; then stops everything cleanly.
# Along the way: a schema change under load (after 6 s) and a planned switchover,
# `ferryctl reverse` (after 14 s): west becomes the primary, east its fenced standby, the
# workload moves to west.
#
# Usage: scripts/demo.sh [--rate TPS] [--seconds N]   (N: stop by itself after N seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=200
SECONDS_TO_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECONDS_TO_RUN=$2; shift 2 ;;
    *) echo "usage: scripts/demo.sh [--rate TPS] [--seconds N]" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target ferryd ferryctl

PGBIN=/usr/lib/postgresql/15/bin
DEMO=$(mktemp -d /tmp/ferry-demo-XXXXXX)
chown postgres "$DEMO"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  [ -n "${PGBENCH_PID:-}" ] && kill "$PGBENCH_PID" 2>/dev/null || true
  # The primary first, so that it can drain what it captured to the standby that still runs.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  for r in east west; do
    [ -d "$DEMO/$r/pg" ] && as_pg $PGBIN/pg_ctl -D "$DEMO/$r/pg" -m fast stop > /dev/null 2>&1 || true
  done
  echo "demo: logs kept in $DEMO (ferryd-east.log, ferryd-west.log)"
}
trap cleanup INT TERM EXIT

declare -A PGPORT ADMIN METRICS REPL
for r in east west; do
  PGPORT[$r]=$(free_port); ADMIN[$r]=$(free_port); METRICS[$r]=$(free_port); REPL[$r]=$(free_port)
  mkdir -p "$DEMO/$r"; chown postgres "$DEMO/$r"
  as_pg $PGBIN/initdb -D "$DEMO/$r/pg" -U postgres --auth=trust --no-sync -E UTF8 > /dev/null
  cat >> "$DEMO/$r/pg/postgresql.conf" <<CONF
port = ${PGPORT[$r]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO/$r'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
CONF
  as_pg $PGBIN/pg_ctl -D "$DEMO/$r/pg" -l "$DEMO/$r/postgres.log" -w start > /dev/null
  as_pg $PGBIN/createdb -h 127.0.0.1 -p "${PGPORT[$r]}" -U postgres app
done
echo "demo: east Postgres on ${PGPORT[east]}, west Postgres on ${PGPORT[west]}"

$PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres -i -s 1 -q app > /dev/null 2>&1
# pgbench_history has no key; replicate its inserts with the whole row as identity.
psql -q -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres app -c "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"

for r in east west; do
  peer=west; role=primary
  [ "$r" = west ] && { peer=east; role=standby; }
  cat > "$DEMO/$r.yaml" <<YAML
region: $r
data_dir: $DEMO/$r/ferry
role: $role
postgres:
  dsn: "host=127.0.0.1 port=${PGPORT[$r]} dbname=app user=postgres"
  slot: ferry_$r
listen:
  replication: 127.0.0.1:${REPL[$r]}
  admin: 127.0.0.1:${ADMIN[$r]}
  metrics: 127.0.0.1:${METRICS[$r]}
peer:
  replication: 127.0.0.1:${REPL[$peer]}
  region: $peer
YAML
done

for r in west east; do
  "$ROOT/build/bin/ferryd" --config "$DEMO/$r.yaml" >> "$DEMO/ferryd-$r.log" 2>&1 &
  PIDS+=($!)
done
for r in east west; do
  for _ in $(seq 100); do
    "$ROOT/build/bin/ferryctl" --admin "127.0.0.1:${ADMIN[$r]}" --timeout 1 status > /dev/null 2>&1 && break
    sleep 0.2
  done
done
echo "demo: ferryd east (admin ${ADMIN[east]}, metrics ${METRICS[east]}) and west (admin ${ADMIN[west]}, metrics ${METRICS[west]}) running"

$PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres -c 2 -j 2 -R "$RATE" -T 86400 -n app \
  > "$DEMO/pgbench.log" 2>&1 &
PGBENCH_PID=$!
echo "demo: pgbench writing about $RATE transactions/s on east; Ctrl-C stops everything"

start=$(date +%s)
ddl_done=0
PRIMARY=east
STANDBY=west
reversed=0
while true; do
  if [ "$reversed" = 0 ] && [ $(( $(date +%s) - start )) -ge 14 ]; then
    # A planned switchover under load: east is fenced, drained and flipped; nothing is lost.
    echo; echo "demo: ferryctl reverse (planned switchover east -> west)"
    "$ROOT/build/bin/ferryctl" --admin "127.0.0.1:${ADMIN[east]}" reverse || true
    kill "$PGBENCH_PID" 2>/dev/null || true
    wait "$PGBENCH_PID" 2>/dev/null || true
    PRIMARY=west
    STANDBY=east
    echo "demo: a write on east now: $(psql -q -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres app \
      -c "UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1" 2>&1 | head -1)"
    $PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[west]}" -U postgres -c 2 -j 2 -R "$RATE" -T 86400 -n \
      app >> "$DEMO/pgbench.log" 2>&1 &
    PGBENCH_PID=$!
    echo "demo: pgbench now writes on west, the new primary"
    reversed=1
  fi
  if [ "$ddl_done" = 0 ] && [ $(( $(date +%s) - start )) -ge 6 ]; then
    # A schema change under load: the standby runs the same command at the same point.
    ddl="ALTER TABLE pgbench_branches ADD COLUMN region text NOT NULL DEFAULT 'east'"
    psql -q -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres app -c "$ddl"
    echo; echo "demo: schema change on east: $ddl"
    ddl_done=1
  fi
  echo
  echo "=== $(date +%T) ============================================================"
  for r in east west; do
    "$ROOT/build/bin/ferryctl" --admin "127.0.0.1:${ADMIN[$r]}" status || true
    echo
  done
  for t in pgbench_accounts pgbench_history; do
    # The standby first: counted after it, the primary has had the same time to grow, so the
    # standby never shows more rows than the primary (the other way round, it could).
    s=$(psql -At -h 127.0.0.1 -p "${PGPORT[$STANDBY]}" -U postgres app -c "SELECT count(*) FROM $t" 2>/dev/null || echo "?")
    p=$(psql -At -h 127.0.0.1 -p "${PGPORT[$PRIMARY]}" -U postgres app -c "SELECT count(*) FROM $t" 2>/dev/null || echo "?")
    echo "rows in $t: $PRIMARY (primary) $p, $STANDBY (standby) $s"
  done
  if [ "$ddl_done" = 1 ]; then
    w=$(psql -At -h 127.0.0.1 -p "${PGPORT[west]}" -U postgres app -c \
      "SELECT string_agg(DISTINCT region, ',') FROM pgbench_branches" 2>/dev/null || echo "not yet")
    echo "pgbench_branches.region on west (added on east with DEFAULT 'east'): ${w:-not yet}"
  fi
  if [ "$reversed" = 1 ]; then
    echo "after the switchover: $PRIMARY is the primary; $STANDBY's database refuses application writes"
  fi
  if [ "$SECONDS_TO_RUN" -gt 0 ] && [ $(( $(date +%s) - start )) -ge "$SECONDS_TO_RUN" ]; then break; fi
  sleep 2
done
