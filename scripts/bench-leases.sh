#!/usr/bin/env bash
# What leases cost (issue 15): the same external load (../shared/loadgen) against two builds of the service,
# interleaved, each run on a fresh database of a private PostgreSQL cluster started with pg_stat_statements.
# Per run: steady 200 events/s for 30 s, then a burst, both over HTTP at fan-out 1; CPU per process group from
# cpu_sampler.py; each statement's calls and time from pg_stat_statements (reset before each phase).
#
# Usage: scripts/bench-leases.sh BEFORE_BIN AFTER_BIN [RUNS=3] [BURST=10000]
#   LOADGEN (dir with send/recv), SAMPLER (cpu_sampler.py), OUT (results dir) may be set.
set -euo pipefail
BEFORE=$1 AFTER=$2 RUNS=${3:-3} BURST=${4:-10000}
LOADGEN=${LOADGEN:-$HOME/.cache/integration-service/loadgen/release}
SAMPLER=${SAMPLER:-$(dirname "$0")/../../shared/loadgen/cpu_sampler.py}
OUT=${OUT:-/tmp/bench-leases}
mkdir -p "$OUT"

# For what cannot report a port it bound (PostgreSQL's port names its socket; the loadgen receiver echoes its
# argument): pick one here. The service binds its own and logs it.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
PGPORT=$(free_port)
PGDIR=$(mktemp -d /tmp/bench-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDIR"
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w start \
  -o "-h 127.0.0.1 -p $PGPORT -k /tmp -c shared_preload_libraries=pg_stat_statements -c max_connections=100" >/dev/null
PGPID=$(head -1 "$PGDIR/data/postmaster.pid")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null || true
  rm -rf "$PGDIR"
}
trap cleanup EXIT
psql_() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
KEY=$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')

# Statements of this run's database: calls, total ms, rows, and the first 90 characters of the query.
statements() { # db out
  psql_ -d "$1" -F $'\t' -c "SELECT calls, round(total_exec_time::numeric, 1), rows, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$1') ORDER BY total_exec_time DESC" >"$2"
}

phase() { # label n db spid mode args...
  local label=$1 n=$2 db=$3 spid=$4 mode=$5; shift 5
  psql_ -d "$db" -c "SELECT pg_stat_statements_reset()" >/dev/null
  python3 "$SAMPLER" "$OUT/$label-$n-$mode-cpu.json" 0 0 0 1.0 --ours "$spid" --pg-ours "$PGPID" --pg-ours-db "$db" &
  local cpid=$!
  "$LOADGEN/send" "$mode" --target ss3 "$@" >"$OUT/$label-$n-$mode.json"
  kill -INT "$cpid"; wait "$cpid" || true
  statements "$db" "$OUT/$label-$n-$mode-statements.tsv"
}

run_one() { # label bin n
  local label=$1 bin=$2 n=$3 db="bench_$1_$3"
  psql_ -d postgres -c "CREATE DATABASE $db"
  psql_ -d "$db" -c "CREATE EXTENSION pg_stat_statements"
  local rport aport=""
  rport=$(free_port)
  "$LOADGEN/recv" "127.0.0.1:$rport" 1 >/dev/null 2>&1 &
  local rpid=$!
  DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/$db" SS3_ADMIN_TOKEN=tok SS3_SECRETS__MASTER_KEY="$KEY" \
    SS3_KAFKA__BROKERS= SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=error,integration_service::startup=info NO_COLOR=1 \
    "$bin" serve >"$OUT/$label-$n.log" 2>&1 &
  local spid=$!
  PIDS+=("$rpid" "$spid")
  for _ in $(seq 1 100); do
    aport=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$OUT/$label-$n.log" | sed 's/.*://') && break
    sleep 0.2
  done
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$aport/health" >/dev/null && break; sleep 0.2; done
  local api="http://127.0.0.1:$aport" recv="http://127.0.0.1:$rport" store
  store=$("$LOADGEN/send" setup --target ss3 --api "$api" --token tok --endpoints 1 --recv "$recv")
  phase "$label" "$n" "$db" "$spid" steady --api "$api" --token tok --app "$store" --rate 200 --duration 30 \
    --recv "$recv" --expect-per-msg 1 --max-inflight 256 --timeout 60
  phase "$label" "$n" "$db" "$spid" burst --api "$api" --token tok --app "$store" --n "$BURST" --conc 16 \
    --recv "$recv" --expect "$BURST" --timeout 120
  kill "$spid" "$rpid"; wait "$spid" "$rpid" 2>/dev/null || true
  psql_ -d postgres -c "DROP DATABASE $db WITH (FORCE)"
  echo "$label run $n done" >&2
}

for n in $(seq 1 "$RUNS"); do
  run_one before "$BEFORE" "$n"
  run_one after "$AFTER" "$n"
done
echo "results in $OUT" >&2
