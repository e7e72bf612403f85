#!/usr/bin/env bash
# The cost of payload filters on ingest (docs/benchmarks.md, "Payload filters"). One API-only process (`serve
# --roles api`: nothing is delivered, so the rate is ingest's: the fan-out statement and its commit) and two stores:
#   plain:    one subscription without a filter;
#   filtered: the same, plus FILTERED (100) subscriptions to the same event types whose payload filters never
#             match (each a different predicate), so both stores create one delivery row per event.
# Bursts of N events over POST /events alternate plain / filtered, ROUNDS times; accept rates from `send burst`.
# Usage: scripts/bench-filters.sh [rounds]   (env: BIN, LOADGEN, N, FILTERED, OUT)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/integration-service}
LOADGEN=${LOADGEN:-$HOME/.cache/integration-service/loadgen/release}
N=${N:-10000}
FILTERED=${FILTERED:-100}
OUT=${OUT:-/tmp/bench-filters}
DB=bench_filters_$$
mkdir -p "$OUT"
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RECV=http://127.0.0.1:$RECV_PORT
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB SS3_ADMIN_TOKEN=filters-bench-token \
  SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=error,integration_service::startup=info NO_COLOR=1
"$LOADGEN/recv" "127.0.0.1:$RECV_PORT" 1 2>"$OUT/recv.log" &
RECV_PID=$!
"$BIN" serve --roles api 2>"$OUT/serve.log" &
SERVE_PID=$!
trap 'kill $SERVE_PID $RECV_PID 2>/dev/null; wait 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
until addr=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$OUT/serve.log"); do sleep 0.1; done
API=http://${addr#API listening addr=}
until curl -fs "$API/health" >/dev/null; do sleep 0.1; done

setup() { "$LOADGEN/send" setup --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --endpoints 1 --recv "$RECV"; }
PLAIN=$(setup)
FILTERED_STORE=$(setup)
for i in $(seq 1 "$FILTERED"); do
  curl -fs -o /dev/null -X POST "$API/subscriptions" -H "authorization: Bearer $SS3_ADMIN_TOKEN" \
    -H "x-ss3-store-id: $FILTERED_STORE" -H 'content-type: application/json' \
    -d "{\"name\":\"filtered $i\",\"targetUrl\":\"$RECV/\",\"events\":[\"*\"],\"payloadFilter\":\"\$.data.seq == -$i\"}"
done

burst() { # STORE LABEL
  "$LOADGEN/send" burst --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --app "$1" --n "$N" --conc 16 \
    --recv "$RECV" --expect 0 --timeout 5 >"$OUT/$2.json"
  python3 - "$OUT/$2.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lat = d["api_latency_ms"]
print(f"{sys.argv[2]}: {d['accept_rate_msgs_per_s']:.0f} events/s accepted ({d['accepted']} of {d['n']}, "
      f"{d['api_errors']} errors), POST /events p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms")
PY
}
for round in $(seq 1 "$ROUNDS"); do
  burst "$PLAIN" "plain-$round"
  burst "$FILTERED_STORE" "filtered-$round"
done
