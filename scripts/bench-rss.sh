#!/usr/bin/env bash
# Memory with a backlog (issue 11, "Memory"): scripts/bench-burst.sh's external burst against one release build,
# N events at fan-out ENDPOINTS (2,000 × 10 by default: 20,000 deliveries, accepted faster than they are delivered),
# while a sampler reads twice a second how many deliveries are accepted and not yet delivered (the backlog in
# flight); once every delivery has arrived it reads the service's peak RSS (VmHWM).
#
# Usage: scripts/bench-rss.sh BIN [ROUNDS=2]
#   N (2000), ENDPOINTS (10), CONC (16), LOADGEN, OUT (/tmp/bench-rss), PGURL may be set.
set -euo pipefail
BIN=$1 ROUNDS=${2:-2}
LOADGEN=${LOADGEN:-/work/targets/loadgen/release}
SAMPLER=${SAMPLER:-/work/shared/loadgen/cpu_sampler.py}
OUT=${OUT:-/tmp/bench-rss}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
CONC=${CONC:-16} N=${N:-2000} ENDPOINTS=${ENDPOINTS:-10}
mkdir -p "$OUT"

# shellcheck source=scripts/bench-burst.sh
. "$(dirname "$0")/bench-burst.sh"

BACKLOG_PID=""
DB=""
TAG=""
start_backlog() { # API STORE (the burst's hook): sample the backlog until the burst is over
  while :; do
    psql "$PGURL/$DB" -qAt -c "SELECT count(*) FROM webhook_deliveries WHERE status <> 'DELIVERED'" 2>/dev/null
    sleep 0.5
  done >"$TAG.backlog" &
  BACKLOG_PID=$!
}
after() { # SERVICE_PID DB TAG
  kill "$BACKLOG_PID" 2>/dev/null || true
  grep VmHWM "/proc/$1/status" | awk '{print $2}' >"$3.rss_kb"
}
BURST_AFTER=after

printf 'round\tdelivered\tdeliveries/s\tpeak backlog (accepted, not delivered)\tpeak RSS MB\n'
for rnd in $(seq 1 "$ROUNDS"); do
  DB="ss3_bench_rss_$$_$rnd" TAG=$OUT/run-$rnd
  burst "$BIN" "$DB" "$TAG" "$ENDPOINTS" "$N" "$((N * ENDPOINTS))" 120 start_backlog
  python3 - "$TAG" "$rnd" <<'PY'
import json, sys
tag, rnd = sys.argv[1:3]
s = json.load(open(tag + ".send.json"))
backlog = max([int(l) for l in open(tag + ".backlog") if l.strip().isdigit()] or [0])
rss = int(open(tag + ".rss_kb").read()) / 1024
print(f'{rnd}\t{s["delivered"]}/{s["expect"]}\t{s["deliveries_per_s"]:.0f}\t{backlog}\t{rss:.0f}', flush=True)
PY
done
