#!/usr/bin/env bash
# Flat with growth (issue 11): the external delivery burst of scripts/bench-counters.sh on an empty database (A)
# and on a grown one (B), runs interleaved, the same release build. The grown database holds, in another store
# than the burst's, DELIVERED deliveries in the log (each with its attempt; the last 7 days' ingested events too)
# and RETRIES deliveries waiting for their second attempt, queued in apalis 1 to 3 hours ahead, over SUBS
# subscriptions (scripts/bench-growth-seed.sql). It is seeded once and kept between B's runs (each adds its burst's
# deliveries to it, a fraction of a percent). Measure within an hour of seeding: after that the seeded retries come
# due, and a process without the seed's master key cannot read their subscriptions' secrets (it defers them).
#
# Usage: scripts/bench-growth.sh BIN [ROUNDS=3] [SCENARIOS="fo1 fo10"]
#   DELIVERED (10000000), RETRIES (1000000), SUBS (1000), GROWN_DB (ss3_bench_grown), REUSE=1 skips the seed and
#   uses a grown database kept from before, KEEP=1 keeps it afterwards; LOADGEN, SAMPLER, OUT, PGURL, CONC as for
#   scripts/bench-counters.sh.
set -euo pipefail
BIN=$1 ROUNDS=${2:-3} SCENARIOS=${3:-"fo1 fo10"}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DELIVERED=${DELIVERED:-10000000} RETRIES=${RETRIES:-1000000} SUBS=${SUBS:-1000}
GROWN_DB=${GROWN_DB:-ss3_bench_grown} REUSE=${REUSE:-0} KEEP=${KEEP:-0}
OUT=${OUT:-/tmp/bench-growth}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
psql_() { psql "$PGURL/$GROWN_DB" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
SPID=""
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  if [ "$KEEP" != 1 ]; then psql "$PGURL/postgres" -qAt -c "DROP DATABASE IF EXISTS $GROWN_DB WITH (FORCE)" || true; fi
}
trap cleanup EXIT

if [ "$REUSE" != 1 ]; then
  psql "$PGURL/postgres" -v ON_ERROR_STOP=1 -qAt -c "DROP DATABASE IF EXISTS $GROWN_DB WITH (FORCE)" \
    -c "CREATE DATABASE $GROWN_DB"
  # The service (api role) migrates the database; the store's subscriptions are created through its API.
  # shellcheck source=scripts/bench-serve.sh
  . "$HERE/bench-serve.sh"
  start_serve "$OUT/seed-serve.log" "$PGURL/$GROWN_DB" api "$BIN" || { kill "$SERVE_PID" 2>/dev/null; exit 1; }
  SPID=$SERVE_PID port=$SERVE_PORT
  for i in $(seq 1 "$SUBS"); do
    curl -fsS -o /dev/null -H 'authorization: Bearer tok' -H 'x-ss3-store-id: grown' -H 'content-type: application/json' \
      -X POST "http://127.0.0.1:$port/subscriptions" \
      -d "{\"name\":\"grown $i\",\"targetUrl\":\"http://127.0.0.1:9/hook/$i\",\"events\":[\"*\"]}"
  done
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""
  SUB_IDS="{$(psql_ "SELECT string_agg(subscription_id::text, ',') FROM webhook_subscriptions WHERE store_id = 'grown'")}"
  echo "# $(date -u +%FT%TZ) seeding $DELIVERED delivered and $RETRIES waiting retries over $SUBS subscriptions"
  start=$(date +%s)
  psql "$PGURL/$GROWN_DB" -qAt -v store=grown -v subs="$SUB_IDS" -v delivered="$DELIVERED" -v retries="$RETRIES" \
    -f "$HERE/bench-growth-seed.sql" >"$OUT/seed.log"
  psql "$PGURL/$GROWN_DB" -qAt -c CHECKPOINT
  echo "# seeded in $(($(date +%s) - start)) s"
fi
psql_ "SELECT 'deliveries ' || count(*) FROM webhook_deliveries UNION ALL
       SELECT 'attempts ' || count(*) FROM webhook_delivery_attempts UNION ALL
       SELECT 'ingested events ' || count(*) FROM ingested_events UNION ALL
       SELECT 'jobs waiting ' || count(*) FROM apalis.jobs WHERE status = 'Pending' UNION ALL
       SELECT 'database ' || pg_size_pretty(pg_database_size(current_database()))" | sed 's/^/# /'

DB_B=$GROWN_DB OUT=$OUT "$HERE/bench-counters.sh" "$BIN" "$BIN" "$ROUNDS" "$SCENARIOS"
