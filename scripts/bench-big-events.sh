#!/usr/bin/env bash
# Big events (issue 11, "Memory"): events of PAD bytes (1 MiB by default) fanned out to ENDPOINTS subscriptions (100),
# against release builds A and B, interleaved A B, B A, ... Each run is scripts/bench-burst.sh's external burst
# (fresh database, the loadgen's `recv`, `serve --roles api,worker`, `send burst` of N events over CONC connections,
# waiting for every delivery, CPU sampled); once every delivery has arrived, before the service stops, it reads the
# service's peak RSS (VmHWM) and what the database holds: rows carrying a body, the bodies' bytes as JSON text, and
# the on-disk size (TOAST included) of the tables that hold them.
#
# Usage: scripts/bench-big-events.sh BIN_A BIN_B [ROUNDS=2]
#   N (10), ENDPOINTS (100), PAD (1048576), CONC (4), LOADGEN, OUT (/tmp/bench-big), PGURL may be set.
# The loadgen's padding is one repeated character, which Postgres compresses to almost nothing on disk: the bodies'
# text bytes and the rows carrying one are the figures that count copies; the on-disk size is shown beside them.
set -euo pipefail
BIN_A=$1 BIN_B=$2 ROUNDS=${3:-2}
LOADGEN=${LOADGEN:-/work/targets/loadgen/release}
SAMPLER=${SAMPLER:-/work/shared/loadgen/cpu_sampler.py}
OUT=${OUT:-/tmp/bench-big}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
CONC=${CONC:-4} N=${N:-10} ENDPOINTS=${ENDPOINTS:-100}
export BURST_PAD=${PAD:-1048576}
mkdir -p "$OUT"

# shellcheck source=scripts/bench-burst.sh
. "$(dirname "$0")/bench-burst.sh"

after() { # SERVICE_PID DB TAG: peak RSS, and where the bodies are (the column moved from the rows to the event)
  local pid=$1 db=$2 tag=$3
  grep VmHWM "/proc/$pid/status" | awk '{print $2}' >"$tag.rss_kb"
  local q="$PGURL/$db" bodies
  if [ "$(psql "$q" -qAt -c "SELECT count(*) FROM information_schema.columns
                             WHERE table_name = 'webhook_deliveries' AND column_name = 'event_payload'")" = 1 ]; then
    bodies="SELECT count(*) || ' ' || coalesce(sum(octet_length(event_payload::text)), 0) FROM webhook_deliveries"
  else
    bodies="SELECT count(payload) || ' ' || coalesce(sum(octet_length(payload::text)), 0) FROM ingested_events"
  fi
  psql "$q" -qAt -F ' ' -c "SELECT ($bodies), pg_total_relation_size('webhook_deliveries')
                                              + pg_total_relation_size('ingested_events')" >"$tag.db"
}
BURST_AFTER=after

printf 'build\tround\tdelivered\tdeliveries/s\tCPU ms/delivery service\tPostgres\tpeak RSS MB\trows with a body\tbody text MB\ton disk MB\n'
for rnd in $(seq 1 "$ROUNDS"); do
  order="A B"; [ $((rnd % 2)) = 0 ] && order="B A"
  for build in $order; do
    bin=$BIN_A; [ "$build" = B ] && bin=$BIN_B
    tag=$OUT/$build-$rnd
    burst "$bin" "ss3_bench_big_$$_${build,,}_$rnd" "$tag" "$ENDPOINTS" "$N" "$((N * ENDPOINTS))" 300
    python3 - "$tag" "$build" "$rnd" <<'PY'
import json, sys
tag, build, rnd = sys.argv[1:4]
s = json.load(open(tag + ".send.json")); c = json.load(open(tag + ".cpu.json"))["cpu_seconds"]
d = s["delivered"]
rows, text, disk = open(tag + ".db").read().split()
rss = int(open(tag + ".rss_kb").read()) / 1024
print(f'{build}\t{rnd}\t{d}/{s["expect"]}\t{s["deliveries_per_s"]:.0f}\t{c["ours"] * 1000 / d:.2f}\t'
      f'{c["pg_ours"] * 1000 / d:.2f}\t{rss:.0f}\t{rows}\t{int(text) / 2**20:.0f}\t{int(disk) / 2**20:.1f}', flush=True)
PY
  done
done
