#!/usr/bin/env bash
# Steady load, fan-out 1, over HTTP, with the CPU split (docs/benchmarks.md, "Ping only idle connections"): for each
# binary given, in turn, ROUNDS times: a fresh database, one `serve` (all roles), the loadgen receiver, `send steady`
# at RATE events/s for SECS seconds, and cpu_sampler.py over the middle SAMPLE seconds (service process and its
# database's Postgres backends). Prints latency, cores and the database's transactions per delivery per run.
# DB_QUERY is appended to the database URL (e.g. `?options=-c%20plan_cache_mode%3Dforce_generic_plan`).
# BREAKDOWN=1 keeps finished jobs for 10 minutes (else the build's default applies) and, after the run, prints where each delivery's time went, from what
# the database recorded (latency breakdown, docs/benchmarks.md): the loadgen's send time (`ts` in the payload), the
# ingest transaction's start (the delivery's created_at), the claim transaction's start (the job's lock_at: now() of
# that transaction), the attempt's start and end,
# and the acknowledgement (the job's done_at).
# Usage: scripts/bench-steady-cpu.sh ROUNDS BIN_A [BIN_B …]   (env: LOADGEN, SAMPLER, RATE, SECS, SAMPLE, DB_QUERY,
#   BREAKDOWN, OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1; shift
LOADGEN=${LOADGEN:-$HOME/.cache/integration-service/loadgen/release}
SAMPLER=${SAMPLER:-../shared/loadgen/cpu_sampler.py}
RATE=${RATE:-200}; SECS=${SECS:-30}; SAMPLE=${SAMPLE:-20}
OUT=${OUT:-/tmp/bench-steady-cpu}; mkdir -p "$OUT"
PGPID=$(head -1 /var/lib/postgresql/*/main/postmaster.pid)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # BIN LABEL
  local db="steady_$$_$RANDOM" port recv_port
  port=$(free_port); recv_port=$(free_port)
  "$LOADGEN/recv" "127.0.0.1:$recv_port" 1 2>"$OUT/$2-recv.log" & local recv=$!
  local keep=""; if [ "${BREAKDOWN:-0}" = 1 ]; then keep=600; fi
  # `env` execs the service, so $! is its pid.
  env ${keep:+SS3_WORKER__JOB_RETENTION_SECS=$keep} \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db${DB_QUERY:-}" SS3_ADMIN_TOKEN=tok SS3_LISTEN_ADDR=127.0.0.1:$port \
    RUST_LOG=error "$1" serve 2>"$OUT/$2-serve.log" & local svc=$!
  until curl -fs "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done
  local store
  store=$("$LOADGEN/send" setup --target ss3 --api "http://127.0.0.1:$port" --token tok --endpoints 1 \
    --recv "http://127.0.0.1:$recv_port")
  "$LOADGEN/send" steady --target ss3 --api "http://127.0.0.1:$port" --token tok --app "$store" --rate "$RATE" \
    --duration "$SECS" --recv "http://127.0.0.1:$recv_port" --expect-per-msg 1 --max-inflight 256 --timeout 60 \
    >"$OUT/$2.json" & local send=$!
  sleep $(( (SECS - SAMPLE) / 2 ))
  python3 "$SAMPLER" "$OUT/$2-cpu.json" 0 0 0 1.0 --ours "$svc" --pg-ours "$PGPID" --pg-ours-db "$db" & local samp=$!
  sleep "$SAMPLE"; kill -INT "$samp"; wait "$samp"
  wait "$send"
  kill "$svc" "$recv"; wait "$svc" "$recv" 2>/dev/null || true
  # Transactions of the whole run (set-up included; each statement outside a transaction is one), as each backend
  # reported them when it exited.
  sleep 1
  psql -qAt -h 127.0.0.1 -U postgres -d postgres \
    -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'" >"$OUT/$2.xacts"
  if [ "${BREAKDOWN:-0}" = 1 ]; then breakdown "$db" | tee "$OUT/$2-breakdown.md"; fi
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  python3 - "$OUT/$2.json" "$OUT/$2-cpu.json" "$2" "$OUT/$2.xacts" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))["avg_cores"]
lat = d["receiver"]["latency_ms"]
xacts = int(open(sys.argv[4]).read().strip() or 0)
print(f"{sys.argv[3]}: delivered {d['delivered']}, dup {d['receiver']['duplicates']}, p50 {lat['p50']:.2f} "
      f"p95 {lat['p95']:.2f} p99 {lat['p99']:.2f} ms; cores: service {c['ours']:.3f}, postgres {c['pg_ours']:.3f}; "
      f"transactions/delivery {xacts / max(d['delivered'], 1):.2f}")
PY
}
breakdown() { # DB: percentiles of each stage of the first attempts, in ms
  psql -qAt -F ' | ' -h 127.0.0.1 -U postgres -d "$1" <<'SQL'
WITH t AS (
  SELECT to_timestamp((e.payload -> 'data' ->> 'ts')::numeric / 1e9) AS sent, d.created_at AS ingested,
         j.lock_at AS claimed, a.started_at, a.finished_at, j.done_at
  FROM webhook_deliveries d JOIN ingested_events e USING (event_id)
  JOIN webhook_delivery_attempts a ON a.delivery_id = d.delivery_id AND a.dispatch_seq = 1
  JOIN apalis.jobs j ON j.idempotency_key = 'delivery:' || d.delivery_id || ':attempt:1'
), s(n, stage, ms) AS (
  SELECT 1, 'send → ingest transaction begins', extract(epoch FROM ingested - sent) * 1000 FROM t UNION ALL
  SELECT 2, 'ingest begins → claim transaction begins (fan-out, commit, wake-up)', extract(epoch FROM claimed - ingested) * 1000 FROM t UNION ALL
  SELECT 3, 'claim begins → POST starts (claim, load, sign)', extract(epoch FROM started_at - claimed) * 1000 FROM t UNION ALL
  SELECT 4, 'POST → answer read', extract(epoch FROM finished_at - started_at) * 1000 FROM t UNION ALL
  SELECT 5, 'answer → job acknowledged (the flush)', extract(epoch FROM done_at - finished_at) * 1000 FROM t UNION ALL
  SELECT 6, 'send → answer read', extract(epoch FROM finished_at - sent) * 1000 FROM t
)
SELECT '| ' || stage, count(*),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' |'
FROM s GROUP BY n, stage ORDER BY n;
SQL
}
for round in $(seq 1 "$ROUNDS"); do
  i=0
  for bin in "$@"; do i=$((i + 1)); run "$bin" "r$round-b$i-$(basename "$bin")"; done
done
