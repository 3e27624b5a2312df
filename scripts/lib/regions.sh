# Two regions on this machine, for scripts/demo.sh and scripts/gameday.sh (sourced, not run):
# two Postgres 15 clusters (east, west) on loopback and the configs of two ferryd (east
# primary, west standby). Needs ROOT (the checkout) set and build/bin/ferryd built.
#
#   regions_init              initdb and start both clusters, database "app"; writes the configs
#   regions_start_ferryd R    starts (or restarts) ferryd of region R, waits for its admin port
#   regions_kill_ferryd R     SIGKILL, no drain
#   ctl R ARGS...             ferryctl against region R
#   sql R SQL                 psql -At against region R's database
#   regions_cleanup           stops everything; the logs stay in $REGIONS
PGBIN=/usr/lib/postgresql/15/bin
REGIONS=$(mktemp -d /tmp/ferry-regions-XXXXXX)
chown postgres "$REGIONS"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A PGPORT ADMIN METRICS REPL FERRYD_PID
EXTRA_PIDS=()

regions_init() {
  for r in east west; do
    PGPORT[$r]=$(free_port); ADMIN[$r]=$(free_port); METRICS[$r]=$(free_port); REPL[$r]=$(free_port)
    mkdir -p "$REGIONS/$r"; chown postgres "$REGIONS/$r"
    as_pg $PGBIN/initdb -D "$REGIONS/$r/pg" -U postgres --auth=trust --no-sync -E UTF8 > /dev/null
    cat >> "$REGIONS/$r/pg/postgresql.conf" <<CONF
port = ${PGPORT[$r]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$REGIONS/$r'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
CONF
    regions_start_pg "$r"
    as_pg $PGBIN/createdb -h 127.0.0.1 -p "${PGPORT[$r]}" -U postgres app
  done
  for r in east west; do
    local peer=west role=primary
    [ "$r" = west ] && { peer=east; role=standby; }
    cat > "$REGIONS/$r.yaml" <<YAML
region: $r
data_dir: $REGIONS/$r/ferry
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
}

regions_start_pg() { as_pg $PGBIN/pg_ctl -D "$REGIONS/$1/pg" -l "$REGIONS/$1/postgres.log" -w start > /dev/null; }
regions_stop_pg() { as_pg $PGBIN/pg_ctl -D "$REGIONS/$1/pg" -m "${2:-fast}" stop > /dev/null 2>&1 || true; }

regions_start_ferryd() {
  "$ROOT/build/bin/ferryd" --config "$REGIONS/$1.yaml" --drain 2 >> "$REGIONS/ferryd-$1.log" 2>&1 &
  FERRYD_PID[$1]=$!
  for _ in $(seq 150); do
    ctl "$1" --timeout 1 status > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "ferryd $1 did not start; see $REGIONS/ferryd-$1.log" >&2
  return 1
}

regions_kill_ferryd() {
  kill -KILL "${FERRYD_PID[$1]}" 2>/dev/null || true
  wait "${FERRYD_PID[$1]}" 2>/dev/null || true
  unset "FERRYD_PID[$1]"
}

ctl() { local r=$1; shift; "$ROOT/build/bin/ferryctl" --admin "127.0.0.1:${ADMIN[$r]}" "$@"; }
sql() { psql -X -q -At -h 127.0.0.1 -p "${PGPORT[$1]}" -U postgres app -c "$2"; }

regions_cleanup() {
  for pid in "${EXTRA_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # The primary first, so that it can drain what it captured to the standby that still runs.
  for r in east west; do
    [ -n "${FERRYD_PID[$r]:-}" ] || continue
    kill -TERM "${FERRYD_PID[$r]}" 2>/dev/null || true
    wait "${FERRYD_PID[$r]}" 2>/dev/null || true
  done
  for r in east west; do
    [ -d "$REGIONS/$r/pg" ] && regions_stop_pg "$r"
  done
}
