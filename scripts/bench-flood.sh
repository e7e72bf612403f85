#!/usr/bin/env bash
# Credential flood, measured from outside the service (docs/benchmarks.md, "Credential flood"):
# one `serve` process (all roles, release build, default configuration) on a fresh database, the loadgen receiver,
# and, alternately, a webhook burst alone (`send burst`) and the same burst during a flood of random API keys
# sent by a separate process (`ss3-bench --suite flood`), which also probes a valid cached key.
# Usage: scripts/bench-flood.sh [rounds]     (env: BIN, BENCH, LOADGEN dir with send+recv, N events per burst, FLOOD_*)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/integration-service}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-target}/release/ss3-bench}
LOADGEN=${LOADGEN:-$HOME/.cache/integration-service/loadgen/release}
N=${N:-10000}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-1000}
FLOOD_SECS=${FLOOD_SECS:-20}
OUT=${OUT:-/tmp/bench-flood}
# The loadgen receiver reports the address it was given, not the one it bound: its port is picked here.
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RECV=http://127.0.0.1:$RECV_PORT
DB=flood_bench_$$
mkdir -p "$OUT"

# The service binds a free port itself and logs it ("API listening addr=..."), read back below.
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB SS3_ADMIN_TOKEN=flood-bench-token \
  SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=error,integration_service::startup=info NO_COLOR=1
"$LOADGEN/recv" "127.0.0.1:$RECV_PORT" 1 2>"$OUT/recv.log" &
RECV_PID=$!
"$BIN" serve 2>"$OUT/serve.log" &
SERVE_PID=$!
cleanup() {
  kill "$SERVE_PID" "$RECV_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT
# shellcheck source=scripts/bench-api.sh
. "$(dirname "$0")/bench-api.sh"
wait_api "$OUT/serve.log" "$SERVE_PID"

STORE=$("$LOADGEN/send" setup --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --endpoints 1 --recv "$RECV")
burst() {
  "$LOADGEN/send" burst --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --app "$STORE" --n "$N" --conc 16 \
    --recv "$RECV" --expect "$N" --timeout 120
}
for round in $(seq 1 "$ROUNDS"); do
  burst >"$OUT/alone-$round.json"
  "$BENCH" --suite flood --api "$API" --api-token "$SS3_ADMIN_TOKEN" \
    --flood-connections "$FLOOD_CONNECTIONS" --flood-secs "$FLOOD_SECS" >"$OUT/flood-$round.md" 2>"$OUT/flood-$round.log" &
  FLOOD_PID=$!
  # Let the flood reach full strength before the burst starts; the burst must end before the flood does.
  sleep 3
  burst >"$OUT/flooded-$round.json"
  wait "$FLOOD_PID"
  for f in alone flooded; do
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], "round", sys.argv[3], "deliveries/s %.0f" % r["deliveries_per_s"], "delivered", r["delivered"], "api_errors", r["api_errors"], "send_secs %.1f" % r["send_secs"], "e2e_secs %.1f" % r["e2e_secs_first_send_to_last_delivery"])' \
      "$OUT/$f-$round.json" "$f" "$round"
  done
  cat "$OUT/flood-$round.md"
done
