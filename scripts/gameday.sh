#!/usr/bin/env bash
# The failover game day on this machine (docs/operations.md, "Promote", "Rejoin", "Quarantine"):
#
#   1. two regions replicating (east primary, west standby), pgbench data, a load on east;
#   2. east's shipping held while east commits inserts, updates and deletes that therefore never
#      reach west (the script counts them: the truth);
#   3. east's ferryd SIGKILLed and its Postgres stopped (immediate): the region is lost;
#   4. `ferryctl promote` on west: the RTO (command to the first write west acknowledges) and
#      the loss bound west reports, against the truth;
#   5. writes on west, some to the keys east changed;
#   6. east restarted: it fences itself (a write there is refused);
#   7. `ferryctl rejoin` on east: the quarantine count against the truth, east repaired and
#      replicating;
#   8. `ferryctl verify` (equal), then `ferryctl reverse`: east is the primary again.
#
# Usage: scripts/gameday.sh [--scale N] [--unshipped N]   (exit 0 when every check held)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALE=5
UNSHIPPED=500
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --unshipped) UNSHIPPED=$2; shift 2 ;;
    *) echo "usage: scripts/gameday.sh [--scale N] [--unshipped N]" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh > /dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target ferryd ferryctl > /dev/null
source scripts/lib/regions.sh
trap 'regions_cleanup; echo "gameday: logs kept in $REGIONS"' EXIT
FAILED=0
check() {  # check WHAT EXPECTED GOT
  if [ "$2" = "$3" ]; then echo "  ok: $1 ($3)"; else echo "  FAILED: $1: expected $2, got $3"; FAILED=1; fi
}
now_ms() { date +%s%3N; }

echo "gameday: 1. two regions, pgbench scale $SCALE"
regions_init
$PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres -i -s "$SCALE" -q app > /dev/null 2>&1
sql east "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"
sql east "CREATE TABLE orders (id bigserial PRIMARY KEY, region text, note text)"
sql east "INSERT INTO orders (region, note) SELECT 'east', 'shipped' FROM generate_series(1, 1000)"
regions_start_ferryd west
regions_start_ferryd east
until [ "$(sql west 'SELECT count(*) FROM orders' 2>/dev/null || echo 0)" = 1000 ]; do sleep 0.5; done
$PGBIN/pgbench -h 127.0.0.1 -p "${PGPORT[east]}" -U postgres -c 2 -j 2 -R 200 -T 5 -n app > /dev/null 2>&1
until ctl east verify > /dev/null 2>&1; do sleep 1; done
echo "  both regions hold the same data (ferryctl verify: equal)"

echo "gameday: 2. east's shipping held; east commits changes west never receives"
ctl east pause > /dev/null
INSERTS=$UNSHIPPED
UPDATES=100
DELETES=50
sql east "INSERT INTO orders (region, note) SELECT 'east', 'unshipped' FROM generate_series(1, $INSERTS)"
for i in $(seq 1 $UPDATES); do
  sql east "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = $i"
done
sql east "DELETE FROM orders WHERE id <= $DELETES"
TRUTH_CHANGES=$((INSERTS + UPDATES + DELETES))
TRUTH_TXNS=$((1 + UPDATES + 1))
echo "  east committed $TRUTH_CHANGES changes in $TRUTH_TXNS transactions after the hold"
# West learns what it misses from east's reports on the stream (polled for up to 20 s).
REPORTED=0
for _ in $(seq 100); do
  REPORTED=$(ctl west status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s.get("primary_unshipped",{}).get("records",0))')
  [ "$REPORTED" -ge "$TRUTH_TXNS" ] && break
  sleep 0.2
done
[ "$REPORTED" -ge "$TRUTH_TXNS" ] || echo "  (west's last report of what east holds unshipped: $REPORTED record(s))"

echo "gameday: 3. east is lost (ferryd SIGKILLed, Postgres stopped)"
regions_kill_ferryd east
regions_stop_pg east immediate

echo "gameday: 4. ferryctl promote on west"
T0=$(now_ms)
PROMOTE=$(ctl west promote --json)
until sql west "INSERT INTO orders (region, note) VALUES ('west', 'first write')" > /dev/null 2>&1; do sleep 0.05; done
T1=$(now_ms)
LOSS_RECORDS=$(echo "$PROMOTE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"]["records"])')
echo "  RTO: $((T1 - T0)) ms from the promote command to the first write west acknowledged"
echo "  loss bound reported: $LOSS_RECORDS record(s); truth: $TRUTH_TXNS transaction(s) east never shipped"
[ "$LOSS_RECORDS" -ge "$TRUTH_TXNS" ] && echo "  ok: the loss bound covers the truth" || { echo "  FAILED: the loss bound is below the truth"; FAILED=1; }

echo "gameday: 5. writes on west, some to keys east changed"
sql west "UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid <= 20"
sql west "INSERT INTO orders (region, note) SELECT 'west', 'after promote' FROM generate_series(1, 100)"
WEST_ORDERS=$(sql west "SELECT count(*) FROM orders WHERE region = 'west'")

echo "gameday: 6. east comes back"
regions_start_pg east
regions_start_ferryd east
echo "  east: $(ctl east status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["role"], s["state"], "epoch", s["epoch"], "fenced" if s.get("fenced") else "NOT fenced")')"
echo "  a write on east: $(sql east "INSERT INTO orders (region, note) VALUES ('east', 'x')" 2>&1 | head -1)"

echo "gameday: 7. ferryctl rejoin on east"
T2=$(now_ms)
REJOIN=$(ctl east rejoin --json)
T3=$(now_ms)
KEPT=$(echo "$REJOIN" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["quarantined"], r["transactions"], r["anomaly_count"])')
echo "  rejoin: $((T3 - T2)) ms"
read -r KEPT_CHANGES KEPT_TXNS ANOMALIES <<< "$KEPT"
check "changes kept in the quarantine" "$TRUTH_CHANGES" "$KEPT_CHANGES"
check "their source transactions" "$TRUTH_TXNS" "$KEPT_TXNS"
check "ferry.quarantine rows on west" "$TRUTH_CHANGES" "$(sql west 'SELECT count(*) FROM ferry.quarantine')"
check "differing keys no kept change explains" 0 "$ANOMALIES"

echo "gameday: 8. verify, then failback"
if ctl west verify > /dev/null 2>&1; then echo "  ok: ferryctl verify: equal"; else echo "  FAILED: ferryctl verify found differences"; FAILED=1; fi
ctl east reverse > /dev/null
check "east's role after reverse" primary "$(ctl east status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])')"
check "west's orders on east (every write west acknowledged)" "$WEST_ORDERS" "$(sql east "SELECT count(*) FROM orders WHERE region = 'west'")"
check "quarantine pending on east (replicated)" "$TRUTH_CHANGES" "$(sql east "SELECT count(*) FROM ferry.quarantine WHERE status = 'pending'")"
if ctl east verify > /dev/null 2>&1; then echo "  ok: ferryctl verify after the failback: equal"; else echo "  FAILED: verify after the failback"; FAILED=1; fi
[ "$FAILED" = 0 ] && echo "gameday: every check held" || echo "gameday: SOME CHECKS FAILED"
exit "$FAILED"
