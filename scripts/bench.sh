#!/usr/bin/env bash
# Side-by-side benchmarks: Ferry against native PostgreSQL 15 logical replication
# (publication / subscription), on this machine, in the same run, reported as ratios.
#
# Usage: scripts/bench.sh [--quick] [--only LIST] [--keep] [--no-build]
#   --quick      small sizes (scale 5 initial load, 20,000-transaction catch-up, 15 s of lag)
#   --only LIST  comma-separated subset of: load,catchup,proxy,lag,bigtx (default: all)
#   --keep       keep the work directory (clusters, ferryd logs) after the run
#   --no-build   use the binaries already in $FERRY_BENCH_BUILD
# Environment: FERRY_BENCH_BUILD (build dir, default build-sbs), FERRY_BENCH_TMP (default /tmp),
#   FERRY_BENCH_LAG_RATE (pgbench -R of the steady-lag benchmark, default 2000),
#   FERRY_BENCH_LAG_LOW_RATE (a second steady-lag run at this rate, default 200, 0 = none),
#   FERRY_BENCH_PERF (1: perf profiles of both ferryd; system: of the whole machine; stat: counts
#   of fdatasync, write, futex and context switches per ferryd, to divide by the transactions).
#
# Every benchmark starts its own pair of Postgres 15 clusters (east = source, west = target),
# copied from templates made once per run, with the same settings on both sides (fsync on,
# synchronous_commit on, track_commit_timestamp on). Times are taken from the databases
# themselves: a start is the target's clock_timestamp() just before replication is (re)started,
# an end is the newest pg_xact_commit_timestamp() of the rows on the target; both clusters run on
# this machine, so the clocks agree. Polling only decides when to look, never the figure.
#
# Writes its section of bench/RESULTS.md, between the side-by-side markers, and leaves every
# other section of the file alone. Methods and caveats: bench/side_by_side/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
KEEP=0
BUILD=1
ONLY="load,catchup,proxy,lag,bigtx"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--only load,catchup,proxy,lag,bigtx] [--keep] [--no-build]" >&2
       exit 2 ;;
  esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$QUICK" = 1 ]; then
  LOAD_SCALE=5; BASE_SCALE=5; CATCHUP_TX=20000; LAG_SECONDS=15; BIG_ROWS=200000
else
  LOAD_SCALE=50; BASE_SCALE=10; CATCHUP_TX=100000; LAG_SECONDS=30; BIG_ROWS=1000000
fi
LAG_RATE=${FERRY_BENCH_LAG_RATE:-2000}  # pgbench -R for the steady-lag benchmark
# A second steady-lag run at a rate the machine sustains beside either system (0: none): at
# 2,000 tps this 2-core machine is saturated even by native replication (bench/RESULTS.md).
LAG_LOW_RATE=${FERRY_BENCH_LAG_LOW_RATE:-200}
PROBE_RATE=100         # probe inserts per second (one every 10 ms)
PROXY_ONE_WAY_MS=20    # 40 ms round trip
CLIENTS=4              # pgbench clients (2 threads)

BUILD_DIR=${FERRY_BENCH_BUILD:-$ROOT/build-sbs}
PGBIN=/usr/lib/postgresql/15/bin
export PATH=$PGBIN:$PATH
export PGUSER=postgres PGDATABASE=app PGCONNECT_TIMEOUT=10

# The system interpreter: a version manager's shim can take seconds to start on a busy machine.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
log() { echo "bench: $(date +%T) $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Build.
if [ "$BUILD" = 1 ]; then
  log "building Release in $BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFERRY_BUILD_TESTS=ON \
    > "$BUILD_DIR/bench-configure.log" 2>&1 \
    || { cat "$BUILD_DIR/bench-configure.log" >&2; die "configure failed"; }
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target ferryd ferryctl fault_proxy_main notify_listener >&2 \
    || die "build failed"
fi
FERRYD=$BUILD_DIR/bin/ferryd
FERRYCTL=$BUILD_DIR/bin/ferryctl
PROXY=$BUILD_DIR/bench/fault_proxy_main
LISTENER=$BUILD_DIR/bench/notify_listener
for b in "$FERRYD" "$FERRYCTL" "$PROXY" "$LISTENER"; do [ -x "$b" ] || die "missing $b"; done
grep -q 'CMAKE_BUILD_TYPE:STRING=Release' "$BUILD_DIR/CMakeCache.txt" || die "$BUILD_DIR is not a Release build"

# ---------------------------------------------------------------------------------------------
# Processes and cleanup.
WORK=$(mktemp -d "${FERRY_BENCH_TMP:-/tmp}/ferry-bench-XXXXXX")
chmod 755 "$WORK"
chown postgres "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

BG_PIDS=()         # ferryd, proxies, pgbench: stopped by cleanup
CLUSTERS=()        # data directories of running clusters
cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${BG_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for d in "${CLUSTERS[@]}"; do as_pg pg_ctl -D "$d" -m immediate stop > /dev/null 2>&1 || true; done
  if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {  # stop_pid PID [timeout_s]: SIGTERM, then SIGKILL after the timeout
  local pid=$1 t=${2:-60}
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((t * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=()
  for p in "${BG_PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}

# wait_until TIMEOUT_S INTERVAL_S CMD...: runs CMD until it succeeds; fails after the timeout.
wait_until() {
  local timeout=$1 interval=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep "$interval"
  done
}

q() {  # q PORT SQL: one value
  psql -X -q -At -h 127.0.0.1 -p "$1" -v ON_ERROR_STOP=1 -c "$2"
}

# ---------------------------------------------------------------------------------------------
# Cluster templates: made once, copied for every benchmark (a fresh pair each time).
PG_SETTINGS="
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 16
max_wal_senders = 16
max_worker_processes = 16
max_logical_replication_workers = 8
max_sync_workers_per_subscription = 2
track_commit_timestamp = on
fsync = on
synchronous_commit = on
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
logical_decoding_work_mem = 64MB
"

make_template() {  # make_template NAME SCALE|schema
  local name=$1 scale=$2 dir=$WORK/tpl-$1 port
  port=$(free_port)
  mkdir -p "$dir"; chown postgres "$dir"
  as_pg initdb -D "$dir/pg" -U postgres --auth=trust -E UTF8 > "$dir/initdb.log" 2>&1
  echo "$PG_SETTINGS" >> "$dir/pg/postgresql.conf"
  as_pg pg_ctl -D "$dir/pg" -l "$dir/postgres.log" -o "-p $port -k $dir" -w start > /dev/null
  CLUSTERS+=("$dir/pg")
  as_pg createdb -h 127.0.0.1 -p "$port" -U postgres app
  if [ "$scale" = schema ]; then
    pgbench -h 127.0.0.1 -p "$port" -i -I dtp -s 1 -q app > "$dir/pgbench-init.log" 2>&1
  else
    pgbench -h 127.0.0.1 -p "$port" -i -s "$scale" -q app > "$dir/pgbench-init.log" 2>&1
  fi
  # pgbench_history has no key: replicate its inserts with the whole row as identity (harmless
  # for native: only UPDATE and DELETE need an identity).
  psql -X -q -h 127.0.0.1 -p "$port" -v ON_ERROR_STOP=1 app > /dev/null <<'SQL'
ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
CREATE TABLE probe (id bigserial PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL);
VACUUM ANALYZE;
CHECKPOINT;
SQL
  as_pg pg_ctl -D "$dir/pg" -m fast -w stop > /dev/null
  local keep=(); for d in "${CLUSTERS[@]}"; do [ "$d" != "$dir/pg" ] && keep+=("$d"); done
  CLUSTERS=("${keep[@]}")
}

# start_pair NAME SRC_TEMPLATE DST_TEMPLATE: sets EAST_PG, WEST_PG, PAIR_DIR.
start_pair() {
  PAIR_DIR=$WORK/$1
  mkdir -p "$PAIR_DIR"; chown postgres "$PAIR_DIR"
  for side in east west; do
    local tpl=$2; [ "$side" = west ] && tpl=$3
    local port; port=$(free_port)
    cp -a "$WORK/tpl-$tpl/pg" "$PAIR_DIR/$side-pg"
    as_pg pg_ctl -D "$PAIR_DIR/$side-pg" -l "$PAIR_DIR/$side-postgres.log" \
      -o "-p $port -k $PAIR_DIR" -w start > /dev/null
    CLUSTERS+=("$PAIR_DIR/$side-pg")
    if [ "$side" = east ]; then EAST_PG=$port; else WEST_PG=$port; fi
  done
}

stop_pair() {
  for side in east west; do
    as_pg pg_ctl -D "$PAIR_DIR/$side-pg" -m fast -w stop > /dev/null 2>&1 || true
    local keep=(); for d in "${CLUSTERS[@]}"; do [ "$d" != "$PAIR_DIR/$side-pg" ] && keep+=("$d"); done
    CLUSTERS=("${keep[@]}")
  done
  [ "$KEEP" = 1 ] || rm -rf "$PAIR_DIR/east-pg" "$PAIR_DIR/west-pg"
}

# Visibility on the target: triggers that NOTIFY (delivered when the writing transaction
# commits, i.e. when its rows become visible) and notify_listener, which timestamps each one.
# Row triggers fire for replicated rows (ENABLE ALWAYS); native fires statement triggers only in
# its initial copy, Ferry for each statement; both are used only where they fire for both.
target_setup() {
  psql -X -q -h 127.0.0.1 -p "$WEST_PG" -v ON_ERROR_STOP=1 app > /dev/null <<'SQL'
CREATE FUNCTION bench_notify_row() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('bench_' || TG_TABLE_NAME, NEW.id::text); RETURN NULL; END $$;
CREATE FUNCTION bench_notify_statement() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('bench_' || TG_TABLE_NAME, ''); RETURN NULL; END $$;
CREATE TRIGGER bench_seen AFTER INSERT ON probe FOR EACH ROW EXECUTE FUNCTION bench_notify_row();
ALTER TABLE probe ENABLE ALWAYS TRIGGER bench_seen;
CREATE TRIGGER bench_seen AFTER INSERT ON pgbench_accounts FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_statement();
ALTER TABLE pgbench_accounts ENABLE ALWAYS TRIGGER bench_seen;
CREATE TRIGGER bench_seen AFTER INSERT ON pgbench_tellers FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_statement();
ALTER TABLE pgbench_tellers ENABLE ALWAYS TRIGGER bench_seen;
CREATE TRIGGER bench_seen AFTER INSERT ON pgbench_branches FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_statement();
ALTER TABLE pgbench_branches ENABLE ALWAYS TRIGGER bench_seen;
SQL
  LISTEN_OUT=$PAIR_DIR/notify.log
  "$LISTENER" "host=127.0.0.1 port=$WEST_PG dbname=app user=postgres" bench_probe \
    bench_pgbench_accounts bench_pgbench_tellers bench_pgbench_branches \
    > "$LISTEN_OUT" 2> "$LISTEN_OUT.err" &
  LISTEN_PID=$!
  BG_PIDS+=("$LISTEN_PID")
  wait_until 10 0.05 grep -q ready "$LISTEN_OUT.err" || die "notify_listener did not start"
}
now_s() { date +%s.%N; }
# CPU seconds used so far by a process (with its reaped children).
proc_cpu() { awk '{ printf "%.2f", ($14 + $15 + $16 + $17) / 100 }' "/proc/$1/stat" 2> /dev/null || echo 0; }
# CPU seconds of a cluster: the postmaster, its reaped children and its live children.
pg_cpu() {
  local pm; pm=$(head -1 "$PAIR_DIR/$1-pg/postmaster.pid")
  { proc_cpu "$pm"; echo; for c in $(pgrep -P "$pm"); do proc_cpu "$c"; echo; done; } |
    awk '{ s += $1 } END { printf "%.2f", s }'
}
# "ferryd_east ferryd_west pg_east pg_west" CPU seconds now.
cpu_split() {
  local fe=0 fw=0
  [ -n "${FPID[east]:-}" ] && kill -0 "${FPID[east]}" 2> /dev/null && fe=$(proc_cpu "${FPID[east]}")
  [ -n "${FPID[west]:-}" ] && kill -0 "${FPID[west]}" 2> /dev/null && fw=$(proc_cpu "${FPID[west]}")
  echo "$fe $fw $(pg_cpu east) $(pg_cpu west)"
}
# Optional profile of both ferryd (FERRY_BENCH_PERF=1): perf samples, call graphs; or of the whole
# machine, Postgres included (FERRY_BENCH_PERF=system).
perf_start() {
  PERF_PIDS=()
  [ -n "${FERRY_BENCH_PERF:-}" ] || return 0
  local r
  if [ "$FERRY_BENCH_PERF" = stat ]; then  # per-event costs: syscalls and switches per thread
    for r in east west; do
      kill -0 "${FPID[$r]:-0}" 2> /dev/null || continue
      perf record -e 'syscalls:sys_enter_fdatasync,syscalls:sys_enter_write,syscalls:sys_enter_sendmsg,syscalls:sys_enter_futex,sched:sched_switch' \
        -p "${FPID[$r]}" -o "$PAIR_DIR/perf-$r.data" > /dev/null 2>&1 &
      PERF_PIDS+=($!)
    done
    sleep 0.3
    return 0
  fi
  if [ "$FERRY_BENCH_PERF" = system ]; then  # every process on the machine, Postgres included
    perf record -e cpu-clock -F 999 -a -o "$PAIR_DIR/perf-system.data" > /dev/null 2>&1 &
    PERF_PIDS+=($!)
    sleep 0.3
    return 0
  fi
  for r in east west; do
    kill -0 "${FPID[$r]:-0}" 2> /dev/null || continue
    perf record -e cpu-clock -F 499 -g -p "${FPID[$r]}" -o "$PAIR_DIR/perf-$r.data" > /dev/null 2>&1 &
    PERF_PIDS+=($!)
  done
  sleep 0.3
}
perf_stop() {
  local p r
  for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done
  PERF_PIDS=()
  for r in east west system; do
    if [ "${FERRY_BENCH_PERF:-}" = stat ] && [ -f "$PAIR_DIR/perf-$r.data" ]; then
      # Events per thread name and kind (divide by the transactions of the run).
      perf script -i "$PAIR_DIR/perf-$r.data" -F comm,event 2> /dev/null | sort | uniq -c | sort -rn \
        > "$PAIR_DIR/perf-$r.txt" || true
      mkdir -p "$WORK/profiles"; cp "$PAIR_DIR/perf-$r.txt" "$WORK/profiles/$(basename "$PAIR_DIR")-$r.txt"
      log "counts: $WORK/profiles/$(basename "$PAIR_DIR")-$r.txt"
      continue
    fi
    [ -f "$PAIR_DIR/perf-$r.data" ] || continue
    perf report -i "$PAIR_DIR/perf-$r.data" --stdio --no-children --percent-limit 1.5 -g none \
      > "$PAIR_DIR/perf-$r.txt" 2> /dev/null || true
    mkdir -p "$WORK/profiles"; cp "$PAIR_DIR/perf-$r.txt" "$WORK/profiles/$(basename "$PAIR_DIR")-$r.txt"
    log "profile: $WORK/profiles/$(basename "$PAIR_DIR")-$r.txt"
  done
}

# seen_s CHANNEL [PAYLOAD]: when the last matching notification arrived (epoch seconds).
seen_s() {
  awk -v c="bench_$1" -v p="${2:-}" '$1 == c && (p == "" || $2 == p) { if ($3 > m) m = $3 }
    END { if (m) printf "%.6f", m / 1e6 }' "$LISTEN_OUT"
}
probe_seen() { grep -q "^bench_probe $1 " "$LISTEN_OUT"; }
# A marker: one probe row inserted on the source now; prints its id.
marker() { q "$EAST_PG" "INSERT INTO probe DEFAULT VALUES RETURNING id"; }

# ---------------------------------------------------------------------------------------------
# Ferry.
ferry_configs() {  # ferry_configs SNAPSHOT(true|false)
  declare -gA FADMIN FREPL
  local r
  for r in east west; do FADMIN[$r]=$(free_port); FREPL[$r]=$(free_port); done
  for r in east west; do
    local role=primary peer=west pg=$EAST_PG peer_port=${FREPL[west]}
    [ "$r" = west ] && { role=standby; peer=east; pg=$WEST_PG; peer_port=${FREPL[east]}; }
    cat > "$PAIR_DIR/$r.yaml" <<YAML
region: $r
data_dir: $PAIR_DIR/ferry-$r
role: $role
postgres:
  dsn: "host=127.0.0.1 port=$pg dbname=app user=postgres"
  slot: ferry_$r
  snapshot: $1
listen:
  replication: 127.0.0.1:${FREPL[$r]}
  admin: 127.0.0.1:${FADMIN[$r]}
  metrics: 127.0.0.1:$(free_port)
peer:
  replication: 127.0.0.1:$peer_port
  region: $peer
YAML
  done
}

declare -A FPID
start_ferryd() {  # start_ferryd REGION [wait]
  "$FERRYD" --config "$PAIR_DIR/$1.yaml" >> "$PAIR_DIR/ferryd-$1.log" 2>&1 &
  FPID[$1]=$!
  BG_PIDS+=("${FPID[$1]}")
  if [ "${2:-wait}" = wait ]; then
    wait_until 60 0.1 ctl_quiet "$1" || die "ferryd $1 did not start; see $PAIR_DIR/ferryd-$1.log"
  fi
}
ctl_quiet() { ctl "$1" status > /dev/null 2>&1; }
ctl() { "$FERRYCTL" --admin "127.0.0.1:${FADMIN[$1]}" --timeout 5 "${@:2}"; }
fstatus() {  # fstatus REGION PYTHON_EXPR(over s = the status JSON)
  ctl "$1" status --json 2> /dev/null | "$PY" -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
ferry_connected() { [ "$(fstatus east "s['peer']['connected']")" = True ]; }
vmhwm_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2> /dev/null || echo "?"; }
clear_hwm() { echo 5 > "/proc/$1/clear_refs" 2> /dev/null || true; }

# ---------------------------------------------------------------------------------------------
# Native logical replication.
native_subscribe() {  # native_subscribe COPY_DATA(true|false) [SOURCE_PORT (a proxy)]
  q "$EAST_PG" "CREATE PUBLICATION bench FOR ALL TABLES" > /dev/null
  q "$WEST_PG" "CREATE SUBSCRIPTION bench CONNECTION 'host=127.0.0.1 port=${2:-$EAST_PG} dbname=app user=postgres' PUBLICATION bench WITH (copy_data = $1)" > /dev/null
}
native_streaming() {
  [ "$(q "$EAST_PG" "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'bench' AND active")" = 1 ] &&
    [ "$(q "$WEST_PG" "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')")" = 0 ]
}
native_slot_idle() {
  [ "$(q "$EAST_PG" "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'bench' AND NOT active")" = 1 ]
}

# ---------------------------------------------------------------------------------------------
# Results.
declare -A R    # figure name -> value
declare -a NOTES=()
fmt() { "$PY" -c "import sys; v=float(sys.argv[1]); print(('%.'+sys.argv[2]+'f') % v)" "$1" "$2"; }
ratio() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b > 0 else '?')" "$1" "$2"; }
calc() { "$PY" -c "print($1)"; }

target_rows_equal() {  # target_rows_equal TABLE EXPECTED
  [ "$(q "$WEST_PG" "SELECT count(*) FROM $1")" = "$2" ]
}
# Cheap first, exact second: the stats counter of inserted rows, then a count.
load_done() {
  local ins
  ins=$(q "$WEST_PG" "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = 'pgbench_accounts'")
  [ "$ins" -ge $((LOAD_SCALE * 100000)) ] || return 1
  target_rows_equal pgbench_accounts $((LOAD_SCALE * 100000)) &&
    target_rows_equal pgbench_tellers $((LOAD_SCALE * 10)) &&
    target_rows_equal pgbench_branches "$LOAD_SCALE"
}

# ---------------------------------------------------------------------------------------------
# 1. Initial load.
bench_load() {
  local sys=$1 t0 t1
  start_pair "load-$sys" load schema
  target_setup
  t0=$(now_s)
  if [ "$sys" = native ]; then
    native_subscribe true
  else
    ferry_configs true
    start_ferryd west nowait
    start_ferryd east nowait
    perf_start
  fi
  local c0; c0=$(cpu_split)
  wait_until 3600 2 load_done || die "initial load ($sys) did not finish"
  [ "$sys" = ferry ] && perf_stop
  sleep 0.5  # the last notification is sent before the count can see the rows
  t1=$(maxn "$(seen_s pgbench_accounts)" "$(seen_s pgbench_tellers)" "$(seen_s pgbench_branches)")
  [ -n "$t1" ] || die "no notification from the target ($sys); see $LISTEN_OUT"
  R[load_$sys]=$(calc "$t1 - $t0")
  local c1; c1=$(cpu_split)
  R[cpu_load_$sys]=$("$PY" -c "import sys; a=list(map(float,sys.argv[1].split())); b=list(map(float,sys.argv[2].split())); print(' / '.join('%.1f' % (y-x) for x,y in zip(a,b)))" "$c0" "$c1")
  log "initial load $sys: CPU seconds (ferryd east / west / postgres east / west): ${R[cpu_load_$sys]}"
  log "initial load $sys: $(fmt "${R[load_$sys]}" 1) s"
  if [ "$sys" = ferry ]; then
    R[load_hwm_east]=$(vmhwm_mb "${FPID[east]}"); R[load_hwm_west]=$(vmhwm_mb "${FPID[west]}")
    log "initial load: ferryd VmHWM east ${R[load_hwm_east]} MB, west ${R[load_hwm_west]} MB"
    stop_pid "${FPID[east]}"; stop_pid "${FPID[west]}"
  fi
  stop_pair
}

# ---------------------------------------------------------------------------------------------
# 2/4/5. Catch-up: replication held, CATCHUP_TX TPC-B transactions, replication started again.
#   mode: native | ferry (pause on east: capture goes on, shipping held) |
#         ferrycold (ferryd east stopped: capture, shipping and apply all happen in the catch-up)
#   latency: one-way ms of a fault proxy between the regions (0 = none)
run_pgbench_tx() {
  pgbench -h 127.0.0.1 -p "$EAST_PG" -n -c "$CLIENTS" -j 2 -t $((CATCHUP_TX / CLIENTS)) app \
    > "$PAIR_DIR/pgbench-catchup.log" 2>&1 || die "pgbench failed; see $PAIR_DIR/pgbench-catchup.log"
}
slot_caught_up() {  # the Ferry slot confirmed everything written so far
  [ "$(q "$EAST_PG" "SELECT confirmed_flush_lsn >= '$1'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_east'")" = t ]
}
start_proxy() {  # start_proxy TARGET_PORT: sets PROXY_PORT
  local out=$PAIR_DIR/proxy-$1.port
  "$PROXY" 127.0.0.1 "$1" "$PROXY_ONE_WAY_MS" > "$out" 2>> "$PAIR_DIR/proxy.log" &
  PROXY_PID=$!
  BG_PIDS+=("$PROXY_PID")
  wait_until 10 0.05 test -s "$out" || die "fault proxy did not start"
  PROXY_PORT=$(head -1 "$out")
}

bench_catchup() {
  local mode=$1 latency=$2 key t0 t1 n
  key=${mode}_${latency}
  start_pair "catchup-$key" base base
  target_setup
  if [ "$mode" = native ]; then
    local src=$EAST_PG
    if [ "$latency" != 0 ]; then start_proxy "$EAST_PG"; src=$PROXY_PORT; fi
    native_subscribe false "$src"
    wait_until 60 0.2 native_streaming || die "native subscription did not start"
    q "$WEST_PG" "ALTER SUBSCRIPTION bench DISABLE" > /dev/null
    wait_until 60 0.1 native_slot_idle || die "native slot still active after DISABLE"
  else
    ferry_configs false
    if [ "$latency" != 0 ]; then
      start_proxy "${FREPL[west]}"
      sed -i "s/^  replication: 127.0.0.1:${FREPL[west]}\$/  replication: 127.0.0.1:$PROXY_PORT/" "$PAIR_DIR/east.yaml"
      grep -q "127.0.0.1:$PROXY_PORT" "$PAIR_DIR/east.yaml" || die "cannot point east at the proxy"
    fi
    start_ferryd west; start_ferryd east
    wait_until 60 0.2 ferry_connected || die "ferry east did not connect to west"
    if [ "$mode" = ferry ]; then
      ctl east pause > /dev/null
    else
      stop_pid "${FPID[east]}"
    fi
  fi
  run_pgbench_tx
  local lsn; lsn=$(q "$EAST_PG" "SELECT pg_current_wal_lsn()")
  if [ "$mode" = ferry ]; then
    # Paused: capture goes on; start the clock once everything written is in east's log.
    wait_until 300 0.2 slot_caught_up "$lsn" || die "ferry capture did not catch up with $lsn"
  fi
  local id; id=$(marker)  # the last transaction: visible => everything before is
  n=$(q "$EAST_PG" "SELECT count(*) FROM pgbench_history")
  [ "$mode" = ferry ] && [ "$latency" = 0 ] && perf_start
  local c0; c0=$(cpu_split)
  t0=$(now_s)
  case "$mode" in
    native) q "$WEST_PG" "ALTER SUBSCRIPTION bench ENABLE" > /dev/null ;;
    ferry) ctl east resume > /dev/null ;;
    ferrycold) start_ferryd east nowait; perf_start ;;
  esac
  wait_until 1800 0.05 probe_seen "$id" || die "catch-up $key did not finish"
  t1=$(seen_s probe "$id")
  local c1; c1=$(cpu_split)
  [ "$mode" != native ] && [ "$latency" = 0 ] && perf_stop
  R[cpu_$key]=$("$PY" -c "import sys; a=list(map(float,sys.argv[1].split())); b=list(map(float,sys.argv[2].split())); n=float(sys.argv[3])/1000; print(' / '.join('%.2f' % ((y-x)/n) for x,y in zip(a,b)))" "$c0" "$c1" "$n")
  log "catch-up $key: CPU seconds per 1000 transactions (ferryd east / west / postgres east / west): ${R[cpu_$key]}"
  target_rows_equal pgbench_history "$n" || die "catch-up $key: marker visible before every transaction"
  R[catchup_$key]=$(calc "$n / ($t1 - $t0)")
  log "catch-up $key: $n transactions in $(fmt "$(calc "$t1 - $t0")" 2) s = $(fmt "${R[catchup_$key]}" 0) tx/s"
  if [ "$mode" != native ]; then
    wait_until 30 0.2 ferry_up_to_date || true
    R[hwm_east_$key]=$(vmhwm_mb "${FPID[east]}"); R[hwm_west_$key]=$(vmhwm_mb "${FPID[west]}")
    log "catch-up $key: ferryd VmHWM east ${R[hwm_east_$key]} MB, west ${R[hwm_west_$key]} MB"
  fi
  if [ "$mode" != ferrycold ] && [ "$latency" = 0 ] && want bigtx; then bench_bigtx "$mode"; fi
  [ "$mode" = native ] || { stop_pid "${FPID[east]}"; stop_pid "${FPID[west]}"; }
  FPID=()
  [ "$latency" = 0 ] || stop_pid "$PROXY_PID"
  stop_pair
}
ferry_up_to_date() { [ "$(fstatus east "s['apply_lag']['records']")" = 0 ]; }

# 5b. One transaction of BIG_ROWS rows on a live pair (after the catch-up above).
bench_bigtx() {
  local sys=$1 t0 t1
  if [ "$sys" != native ]; then clear_hwm "${FPID[east]}"; clear_hwm "${FPID[west]}"; fi
  t0=$(now_s)
  q "$EAST_PG" "INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, $BIG_ROWS) g" > /dev/null
  local committed; committed=$(q "$EAST_PG" "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM big WHERE id = 1")
  local id; id=$(marker)
  wait_until 1800 0.1 probe_seen "$id" || die "big transaction ($sys) did not arrive"
  t1=$(seen_s probe "$id")
  target_rows_equal big "$BIG_ROWS" || die "big transaction ($sys): marker visible before it"
  R[bigtx_$sys]=$(calc "$t1 - $committed")
  log "big transaction $sys: visible $(fmt "${R[bigtx_$sys]}" 2) s after its commit (insert took $(fmt "$(calc "$committed - $t0")" 2) s)"
  if [ "$sys" != native ]; then
    R[bigtx_hwm_east]=$(vmhwm_mb "${FPID[east]}"); R[bigtx_hwm_west]=$(vmhwm_mb "${FPID[west]}")
    log "big transaction: ferryd VmHWM east ${R[bigtx_hwm_east]} MB, west ${R[bigtx_hwm_west]} MB"
  fi
}

# ---------------------------------------------------------------------------------------------
# 3. Steady lag at LAG_RATE tps, probes every 10 ms.
bench_lag() {  # bench_lag SYSTEM [RATE TAG]: TAG suffixes the result keys (_low: LAG_LOW_RATE)
  local sys=$1 rate=${2:-$LAG_RATE} tag=${3:-}
  start_pair "lag$tag-$sys" base base
  target_setup
  if [ "$sys" = native ]; then
    native_subscribe false
    wait_until 60 0.2 native_streaming || die "native subscription did not start"
  else
    ferry_configs false
    start_ferryd west; start_ferryd east
    wait_until 60 0.2 ferry_connected || die "ferry east did not connect to west"
  fi
  echo "INSERT INTO probe DEFAULT VALUES;" > "$PAIR_DIR/probe.sql"
  local warm=3
  local t_start; t_start=$(now_s)
  pgbench -h 127.0.0.1 -p "$EAST_PG" -n -c "$CLIENTS" -j 2 -R "$rate" -T "$LAG_SECONDS" app \
    > "$PAIR_DIR/pgbench-lag.log" 2>&1 &
  local bench_pid=$!; BG_PIDS+=("$bench_pid")
  pgbench -h 127.0.0.1 -p "$EAST_PG" -n -c 1 -R "$PROBE_RATE" -T "$LAG_SECONDS" -f "$PAIR_DIR/probe.sql" app \
    > "$PAIR_DIR/pgbench-probe.log" 2>&1 &
  local probe_pid=$!; BG_PIDS+=("$probe_pid")
  local cpu0; cpu0=$(awk '/^cpu / {print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)
  local split0; split0=$(cpu_split)
  [ "$sys" = ferry ] && perf_start
  wait "$bench_pid" || die "pgbench (lag) failed; see $PAIR_DIR/pgbench-lag.log"
  wait "$probe_pid" || die "pgbench (probe) failed"
  [ "$sys" = ferry ] && perf_stop
  local cpu1; cpu1=$(awk '/^cpu / {print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)
  R[lag_cpu_$sys$tag]=$("$PY" -c "import sys; b0,i0=map(float,sys.argv[1].split()); b1,i1=map(float,sys.argv[2].split()); print('%.0f' % (100*(b1-b0)/((b1-b0)+(i1-i0))))" "$cpu0" "$cpu1")
  local n; n=$(q "$EAST_PG" "SELECT count(*) FROM probe")
  wait_until 120 0.2 target_rows_equal probe "$n" || die "probes did not all arrive ($sys)"
  # CPU seconds per 1000 replicated transactions of everything but pgbench: both clusters
  # (backends, walsender, apply) and both ferryd, until the last probe (after every transaction
  # of the run, as commits apply in order) became visible.
  local split1; split1=$(cpu_split)
  local ntx; ntx=$(grep -m1 -oP 'number of transactions actually processed: \K[0-9]+' "$PAIR_DIR/pgbench-lag.log" || echo 0)
  R[lag_cpu1k_$sys$tag]=$("$PY" -c "import sys; a=list(map(float,sys.argv[1].split())); b=list(map(float,sys.argv[2].split())); n=(float(sys.argv[3])+float(sys.argv[4]))/1000; d=[(y-x)/n for x,y in zip(a,b)]; print(' / '.join('%.3f' % v for v in d) + '; total %.3f' % sum(d))" "$split0" "$split1" "$ntx" "$n")
  log "steady lag $sys: CPU seconds per 1000 transactions (ferryd east / west / postgres east / west; total): ${R[lag_cpu1k_$sys$tag]}"
  # Lag of a probe = when the target's listener saw it - the source's commit time of the row.
  psql -X -q -At -F ' ' -h 127.0.0.1 -p "$EAST_PG" \
    -c "SELECT id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM probe" > "$PAIR_DIR/probe-source.txt"
  local stats
  stats=$("$PY" - "$PAIR_DIR/probe-source.txt" "$LISTEN_OUT" "$t_start" "$warm" <<'PY'
import sys
src = {}
for line in open(sys.argv[1]):
    i, ts = line.split()
    src[i] = float(ts)
start = float(sys.argv[3]) + float(sys.argv[4])
seen = {}
for line in open(sys.argv[2]):
    ch, payload, us = line.split()
    if ch == "bench_probe" and payload not in seen:
        seen[payload] = int(us) / 1e6
lags = sorted((seen[i] - t) * 1000 for i, t in src.items() if i in seen and t >= start)
def pct(p):
    k = (len(lags) - 1) * p
    f = int(k)
    c = min(f + 1, len(lags) - 1)
    return lags[f] + (lags[c] - lags[f]) * (k - f)
print("%.2f %.2f %.2f %d" % (pct(0.5), pct(0.99), lags[-1], len(lags)))
PY
)
  read -r R[lag_p50_$sys$tag] R[lag_p99_$sys$tag] R[lag_max_$sys$tag] R[lag_n_$sys$tag] <<< "$stats"
  R[lag_tps_$sys$tag]=$(grep -m1 -oP 'tps = \K[0-9.]+' "$PAIR_DIR/pgbench-lag.log" || echo "?")
  log "steady lag $sys at $rate tps: p50 ${R[lag_p50_$sys$tag]} ms, p99 ${R[lag_p99_$sys$tag]} ms, max ${R[lag_max_$sys$tag]} ms over ${R[lag_n_$sys$tag]} probes at ${R[lag_tps_$sys$tag]} tps (machine CPU busy ${R[lag_cpu_$sys$tag]}%)"
  if [ "$sys" = ferry ]; then
    R[lag_hwm_east$tag]=$(vmhwm_mb "${FPID[east]}"); R[lag_hwm_west$tag]=$(vmhwm_mb "${FPID[west]}")
    stop_pid "${FPID[east]}"; stop_pid "${FPID[west]}"
  fi
  stop_pair
}

# ---------------------------------------------------------------------------------------------
# RESULTS.md: rewrite only our own section.
write_results() {
  local file=$ROOT/bench/RESULTS.md section=$WORK/section.md
  local mem cpu load
  mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  v() { echo "${R[$1]:-n/a}"; }
  rv() { if [ -n "${R[$1]:-}" ] && [ -n "${R[$2]:-}" ]; then ratio "${R[$1]}" "${R[$2]}"; else echo "n/a"; fi; }
  f0() { if [ -n "${R[$1]:-}" ]; then fmt "${R[$1]}" 0; else echo "n/a"; fi; }
  f1() { if [ -n "${R[$1]:-}" ]; then fmt "${R[$1]}" 1; else echo "n/a"; fi; }
  f2() { if [ -n "${R[$1]:-}" ]; then fmt "${R[$1]}" 2; else echo "n/a"; fi; }
  local drop="n/a"
  if [ -n "${R[catchup_ferry_0]:-}" ] && [ -n "${R[catchup_ferry_${PROXY_ONE_WAY_MS}]:-}" ]; then
    drop=$("$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.1f%%' % (100*(1-b/a)))" "${R[catchup_ferry_0]}" "${R[catchup_ferry_${PROXY_ONE_WAY_MS}]}")
  fi
  local ndrop="n/a"
  if [ -n "${R[catchup_native_0]:-}" ] && [ -n "${R[catchup_native_${PROXY_ONE_WAY_MS}]:-}" ]; then
    ndrop=$("$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.1f%%' % (100*(1-b/a)))" "${R[catchup_native_0]}" "${R[catchup_native_${PROXY_ONE_WAY_MS}]}")
  fi
  local L=$PROXY_ONE_WAY_MS
  {
    echo "<!-- side-by-side:begin -->"
    echo "## Side by side with native logical replication (scripts/bench.sh)"
    echo
    echo "Written by \`scripts/bench.sh$([ "$QUICK" = 1 ] && echo " --quick")\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)'); ferryd built $(date -u -r "$FERRYD" '+%Y-%m-%d %H:%M UTC')."
    echo "Machine: $(nproc) cores ($cpu), $mem RAM, load average at the end $load (shared machine: only the ratios"
    echo "mean something). Postgres 15, both clusters with the same settings (fsync on, synchronous_commit on,"
    echo "shared_buffers 512MB, track_commit_timestamp on). Ferry: default config (4 apply workers), Release build."
    echo "A fresh pair of clusters for every row. Method: bench/side_by_side/README.md."
    echo
    echo "| # | benchmark | native | Ferry | Ferry / native | goal | met |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    local r1; r1=$(rv load_native load_ferry)
    echo "| 1 | initial load, pgbench scale $LOAD_SCALE ($((LOAD_SCALE * 100000)) accounts), seconds until the target has every row | $(f1 load_native) s | $(f1 load_ferry) s | ${r1}x speed | >= 1.5x | $(meets "$r1" 1.5) |"
    local r2; r2=$(rv catchup_ferry_0 catchup_native_0)
    echo "| 2 | catch-up of $CATCHUP_TX TPC-B transactions (Ferry paused: capture went on), tx/s | $(f0 catchup_native_0) | $(f0 catchup_ferry_0) | $r2 | >= 1x (aim 2x) | $(meets "$r2" 1) |"
    local r2c; r2c=$(rv catchup_ferrycold_0 catchup_native_0)
    echo "| 2b | the same, ferryd east stopped (decode + capture + ship + apply all in the catch-up), tx/s | $(f0 catchup_native_0) | $(f0 catchup_ferrycold_0) | $r2c | >= 1x | $(meets "$r2c" 1) |"
    echo "| 3 | steady lag at $LAG_RATE tps: commit-to-visible p50 | $(f2 lag_p50_native) ms | $(f2 lag_p50_ferry) ms | $(rv lag_p50_ferry lag_p50_native)x the time | | |"
    echo "| 3 | p99 | $(f2 lag_p99_native) ms | $(f2 lag_p99_ferry) ms | $(rv lag_p99_ferry lag_p99_native)x the time | Ferry <= 20 ms | $(meets_le "${R[lag_p99_ferry]:-}" 20) |"
    echo "| 3 | max | $(f2 lag_max_native) ms | $(f2 lag_max_ferry) ms | $(rv lag_max_ferry lag_max_native)x the time | | |"
    echo "| 3 | achieved pgbench tps (probes counted) | $(v lag_tps_native) ($(v lag_n_native)) | $(v lag_tps_ferry) ($(v lag_n_ferry)) | | | |"
    echo "| 3 | machine CPU busy during the run | $(v lag_cpu_native)% | $(v lag_cpu_ferry)% | | | |"
    echo "| 3 | CPU seconds per 1000 transactions, all but pgbench (ferryd east / west / postgres east / west; total) | $(v lag_cpu1k_native) | $(v lag_cpu1k_ferry) | | Ferry's total <= native's | |"
    if [ "$LAG_LOW_RATE" -gt 0 ]; then
      echo "| 3b | steady lag at $LAG_LOW_RATE tps (a rate this machine sustains with room): p50 | $(f2 lag_p50_native_low) ms | $(f2 lag_p50_ferry_low) ms | $(rv lag_p50_ferry_low lag_p50_native_low)x the time | | |"
      echo "| 3b | p99 | $(f2 lag_p99_native_low) ms | $(f2 lag_p99_ferry_low) ms | $(rv lag_p99_ferry_low lag_p99_native_low)x the time | Ferry <= 20 ms | $(meets_le "${R[lag_p99_ferry_low]:-}" 20) |"
      echo "| 3b | max | $(f2 lag_max_native_low) ms | $(f2 lag_max_ferry_low) ms | $(rv lag_max_ferry_low lag_max_native_low)x the time | | |"
      echo "| 3b | achieved pgbench tps (probes counted); machine CPU busy | $(v lag_tps_native_low) ($(v lag_n_native_low)); $(v lag_cpu_native_low)% | $(v lag_tps_ferry_low) ($(v lag_n_ferry_low)); $(v lag_cpu_ferry_low)% | | | |"
    fi
    echo "| 4 | catch-up through a fault proxy, $((2 * L)) ms round trip, tx/s | $(f0 catchup_native_$L) | $(f0 catchup_ferry_$L) | $(rv catchup_ferry_$L catchup_native_$L) | | |"
    echo "| 4 | drop from the no-latency figure | $ndrop | $drop | | Ferry < 10% | $(meets_drop "$drop") |"
    echo "| 5 | ferryd peak RSS (VmHWM) east / west, catch-up (row 2) | | $(v hwm_east_ferry_0) / $(v hwm_west_ferry_0) MB | | <= 256 MB each | $(meets_le "$(maxn "${R[hwm_east_ferry_0]:-}" "${R[hwm_west_ferry_0]:-}")" 256) |"
    echo "| 5 | ferryd peak RSS east / west, catch-up cold (row 2b) / through the proxy (row 4) | | $(v hwm_east_ferrycold_0) / $(v hwm_west_ferrycold_0), $(v hwm_east_ferry_$L) / $(v hwm_west_ferry_$L) MB | | <= 256 MB | |"
    echo "| 5 | one transaction of $BIG_ROWS rows (~100 B each): seconds from source commit to visible | $(f2 bigtx_native) s | $(f2 bigtx_ferry) s | $(rv bigtx_ferry bigtx_native)x the time | | |"
    echo "| 5 | ferryd peak RSS east / west during that transaction (peak reset before it) | | $(v bigtx_hwm_east) / $(v bigtx_hwm_west) MB | | bounded | |"
    echo "| 1 | CPU seconds of the load: ferryd east / west / postgres east / west | $(v cpu_load_native) | $(v cpu_load_ferry) | | | |"
    echo "| 2 | CPU seconds per 1000 transactions of the catch-up: ferryd east / west / postgres east / west | $(v cpu_native_0) | $(v cpu_ferry_0) (2b: $(v cpu_ferrycold_0)) | | | |"
    echo "| | ferryd peak RSS east / west, initial load; steady lag | | $(v load_hwm_east) / $(v load_hwm_west); $(v lag_hwm_east) / $(v lag_hwm_west) MB | | | |"
    echo
    for note in "${NOTES[@]}"; do echo "$note"; echo; done
    if [ -f "$ROOT/bench/side_by_side/FINDINGS.md" ]; then
      echo "Where the time goes and what to change: [bench/side_by_side/FINDINGS.md](side_by_side/FINDINGS.md)."
      echo
    fi
    echo "<!-- side-by-side:end -->"
  } > "$section"
  "$PY" - "$file" "$section" <<'PY'
import os, re, sys
path, section_path = sys.argv[1], sys.argv[2]
section = open(section_path).read().rstrip("\n") + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
pattern = re.compile(r"<!-- side-by-side:begin -->.*?<!-- side-by-side:end -->\n?", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + section
tmp = path + ".tmp-side-by-side"
open(tmp, "w").write(text)
os.replace(tmp, path)
PY
  cat "$section"
  log "results written to bench/RESULTS.md"
}
meets() { "$PY" -c "import sys; print('?' if sys.argv[1] in ('n/a','?') else ('yes' if float(sys.argv[1]) >= float(sys.argv[2]) else 'NO'))" "$1" "$2"; }
meets_le() { "$PY" -c "import sys; print('?' if sys.argv[1] in ('','n/a','?') else ('yes' if float(sys.argv[1]) <= float(sys.argv[2]) else 'NO'))" "$1" "$2"; }
meets_drop() { "$PY" -c "import sys; print('?' if sys.argv[1] == 'n/a' else ('yes' if float(sys.argv[1].rstrip('%')) < 10 else 'NO'))" "$1"; }
maxn() { "$PY" -c "import sys; v=[float(x) for x in sys.argv[1:] if x not in ('','?')]; print(max(v) if v else '')" "$@"; }

# ---------------------------------------------------------------------------------------------
log "work directory $WORK; $([ "$QUICK" = 1 ] && echo quick || echo full) run: $ONLY"
if want load; then
  log "template: pgbench scale $LOAD_SCALE"
  make_template load "$LOAD_SCALE"
fi
make_template schema schema
if want catchup || want proxy || want lag || want bigtx; then
  log "template: pgbench scale $BASE_SCALE (catch-up and lag base)"
  make_template base "$BASE_SCALE"
fi

if want load; then bench_load native; bench_load ferry; fi
if want catchup || want bigtx; then
  bench_catchup native 0
  bench_catchup ferry 0
  want catchup && bench_catchup ferrycold 0
fi
if want proxy; then bench_catchup native "$PROXY_ONE_WAY_MS"; bench_catchup ferry "$PROXY_ONE_WAY_MS"; fi
if want lag; then
  bench_lag native; bench_lag ferry
  if [ "$LAG_LOW_RATE" -gt 0 ]; then
    bench_lag native "$LAG_LOW_RATE" _low; bench_lag ferry "$LAG_LOW_RATE" _low
  fi
fi
write_results
