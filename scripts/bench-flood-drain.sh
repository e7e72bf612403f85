#!/usr/bin/env bash
# Worker drain rate with and without a credential flood (docs/benchmarks.md, "Credential flood"): the worker's
# throughput measured apart from the API's accept path. Each measurement pre-loads a backlog of N events through an
# API-only process (`serve --roles api`: nothing is delivered), then lets a worker drain it to the loadgen receiver
# and takes deliveries/s at the receiver, from the moment the flood (`ss3-bench --suite flood`, its own process) has
# been at full strength for FLOOD_LEAD seconds (or, alone, as long after the same start) to the last delivery.
#   split:  the API process stays up (the flood hits it); the worker is a second process, `serve --roles worker`.
#   single: the API-only process stops after pre-loading; one `serve --roles api,worker` drains and takes the flood.
# Every measurement has a fresh database, so the pair differs only by the flood; rounds also alternate which of the
# pair runs first (see the loop at the end): run an even number.
# Usage: scripts/bench-flood-drain.sh [rounds]   (env: BIN, BENCH, LOADGEN, N, FLOOD_CONNECTIONS, FLOOD_SECS, OUT)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/integration-service}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-target}/release/ss3-bench}
LOADGEN=${LOADGEN:-$HOME/.cache/integration-service/loadgen/release}
N=${N:-20000}
# The all-roles process starts draining at once, before its flood is at strength: a bigger backlog, of which the
# deliveries before the window are not counted.
N_SINGLE=${N_SINGLE:-40000}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-1000}
FLOOD_SECS=${FLOOD_SECS:-30}
FLOOD_LEAD=${FLOOD_LEAD:-3}
OUT=${OUT:-/tmp/bench-flood-drain}
# The loadgen receiver reports the address it was given, not the one it bound: its port is picked here.
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RECV=http://127.0.0.1:$RECV_PORT
DB=
mkdir -p "$OUT"

# Each API process binds a free port itself and logs it ("API listening addr=..."); `start` reads it back into API.
export SS3_ADMIN_TOKEN=flood-bench-token SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=error,integration_service::startup=info \
  NO_COLOR=1
"$LOADGEN/recv" "127.0.0.1:$RECV_PORT" 1 2>"$OUT/recv.log" &
RECV_PID=$!
PIDS=()
drop_db() {
  if [ -n "$DB" ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
  fi
}
cleanup() {
  kill "${PIDS[@]}" "$RECV_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  drop_db
}
trap cleanup EXIT

# shellcheck source=scripts/bench-api.sh
. "$(dirname "$0")/bench-api.sh"
start() { # start ROLES → PID in $STARTED (api roles: their address in $API, once /health answers)
  local log="$OUT/serve-$(date +%s%N).log"
  "$BIN" serve --roles "$1" 2>"$log" &
  STARTED=$!
  PIDS+=("$STARTED")
  if [[ $1 == *api* ]]; then wait_api "$log" "$STARTED"; fi
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

fresh() { # a new database, its API-only process ($API_PID) and the store with one subscription to the receiver
  DB=flood_drain_$$_$(date +%s%N)
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
  start api
  API_PID=$STARTED
  STORE=$("$LOADGEN/send" setup --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --endpoints 1 --recv "$RECV")
}
finish() { # stop the API process and drop the database
  stop "$API_PID"
  drop_db
}

preload() { # COUNT events accepted, none delivered (no worker runs)
  BACKLOG=$1
  "$LOADGEN/send" burst --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --app "$STORE" --n "$1" --conc 16 \
    --recv "$RECV" --expect 0 --timeout 5 >/dev/null
  curl -fs -X POST "$RECV/_reset" >/dev/null
}
now_ns() { date +%s%N; }
drain_rate() { # FROM_NS LABEL: wait for the whole backlog, then deliveries/s from FROM_NS to the last arrival
  until [ "$(curl -fs "$RECV/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')" -ge "$BACKLOG" ]; do
    sleep 0.2
  done
  curl -fs "$RECV/_report?csv=$OUT/$2.csv" >/dev/null
  python3 - "$OUT/$2.csv" "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
start = int(sys.argv[2]); arrivals = sorted(int(r["arrival_ns"]) for r in rows)
after = [a for a in arrivals if a >= start]
first = arrivals[0]
secs = (arrivals[-1] - max(start, first)) / 1e9
print(f"{sys.argv[3]}: {len(after) if start > first else len(arrivals)} deliveries in {secs:.2f} s = "
      f"{(len(after) if start > first else len(arrivals)) / secs:.0f}/s (of {len(arrivals)})")
EOF
}
flood() { # LABEL: the flood on the API, in its own process
  "$BENCH" --suite flood --api "$API" --api-token "$SS3_ADMIN_TOKEN" --flood-connections "$FLOOD_CONNECTIONS" \
    --flood-secs "$FLOOD_SECS" >"$OUT/$1.md" 2>"$OUT/$1.log" &
  FLOOD_PID=$!
  FLOOD_END=$(( $(now_ns) + FLOOD_SECS * 1000000000 ))
}
flood_done() { # LABEL: the flood's report; warn when the drain outlasted it
  wait "$FLOOD_PID"
  grep -E '^\| external|^transport' "$OUT/$1-flood.md"
  local last; last=$(curl -fs "$RECV/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_arrival_ns"])')
  if [ "$last" -gt "$FLOOD_END" ]; then echo "WARNING: $1 drained past the end of the flood"; fi
}
measure_split() { # LABEL FLOODED(0|1)
  fresh
  preload "$N"
  if [ "$2" = 1 ]; then flood "$1-flood"; fi
  sleep "$FLOOD_LEAD"
  local from; from=$(now_ns)
  start worker
  local worker=$STARTED
  drain_rate "$from" "$1"
  stop "$worker"
  if [ "$2" = 1 ]; then flood_done "$1"; fi
  finish
}
measure_single() { # LABEL FLOODED(0|1): the API-only process pre-loads, then one all-roles process drains
  fresh
  preload "$N_SINGLE"
  stop "$API_PID"
  start api,worker
  local all=$STARTED
  if [ "$2" = 1 ]; then flood "$1-flood"; fi
  sleep "$FLOOD_LEAD"
  drain_rate "$(now_ns)" "$1"
  if [ "$2" = 1 ]; then flood_done "$1"; fi
  stop "$all"
  drop_db
}
# Odd rounds measure alone first, even rounds flooded first (ABBA), so that a drift of the machine over a pair
# favours neither.
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
  for flooded in $order; do
    label=$([ "$flooded" = 1 ] && echo flooded || echo alone)
    measure_split "split-$label-$round" "$flooded"
  done
  for flooded in $order; do
    label=$([ "$flooded" = 1 ] && echo flooded || echo alone)
    measure_single "single-$label-$round" "$flooded"
  done
done
