#!/usr/bin/env bash
# What an idle Kafka consumer costs, by kafka.fetch_wait_ms (docs/benchmarks.md, "The Kafka path, stage by stage"):
# for each value given, a fresh in-memory tansu on 127.0.0.1:19092 with one topic of 4 partitions matching the
# ingest regex, a fresh database, one `serve` consuming it with nothing produced; after 8 s, the CPU of tansu and of
# the service over 20 s, from /proc.
# Usage: scripts/bench-kafka-idle.sh BIN FETCH_MS [FETCH_MS …]   (PGURL: server, default postgres://postgres@127.0.0.1:5432)
set -euo pipefail
BIN=$1; shift
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cores() { python3 -c "import os; print(f'{($2 - $1) / os.sysconf(\"SC_CLK_TCK\") / 20:.3f}')" ; }
for fetch in "$@"; do
  db="kafka_idle_$$"
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  tansu broker --listener-url tcp://127.0.0.1:19092 --advertised-listener-url tcp://127.0.0.1:19092 \
    --storage-engine memory://tansu/ > /dev/null 2>&1 & tansu=$!
  sleep 1
  tansu topic create --broker tcp://127.0.0.1:19092 --partitions 4 ss3.idle > /dev/null 2>&1
  env RUST_LOG=error SS3_ADMIN_TOKEN=idle SS3_KAFKA__BROKERS=127.0.0.1:19092 SS3_KAFKA__FETCH_WAIT_MS="$fetch" \
    SS3_LISTEN_ADDR=127.0.0.1:18080 DATABASE_URL="$PGURL/$db" "$BIN" serve > /dev/null 2>&1 & serve=$!
  sleep 8
  t0=$(ticks $tansu); s0=$(ticks $serve); sleep 20; t1=$(ticks $tansu); s1=$(ticks $serve)
  echo "fetch_wait_ms=$fetch: tansu $(cores "$t0" "$t1") cores, service $(cores "$s0" "$s1") cores"
  kill $serve; sleep 1; kill $tansu; wait 2> /dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
done
