#!/usr/bin/env bash
# The Kafka path with its stage breakdown (docs/benchmarks.md, "The Kafka path, stage by stage"): for each label=bench
# pair given, a fresh in-memory tansu on 127.0.0.1:19092 and `ss3-bench --via kafka` (a 2,000-event burst, then
# RATE events/s for SECS seconds, fan-out FANOUT), printing its table rows and stages. Extra environment (e.g.
# SS3_KAFKA__FETCH_WAIT_MS=1) is passed through to the bench.
# Usage: scripts/bench-kafka-steady.sh LABEL=SS3_BENCH [LABEL=SS3_BENCH …]   (env: RATE 200, SECS 20, FANOUT 1,
#   EVENTS 2000, DATABASE_URL: any database on the server, each run makes its own)
set -euo pipefail
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ss3bench}
for run in "$@"; do
  label=${run%%=*}; bench=${run#*=}
  tansu broker --listener-url tcp://127.0.0.1:19092 --advertised-listener-url tcp://127.0.0.1:19092 \
    --storage-engine memory://tansu/ > /dev/null 2>&1 & tansu=$!
  sleep 1
  echo "## $label"
  RUST_LOG=error SS3_KAFKA__BROKERS=127.0.0.1:19092 "$bench" --via kafka --fanout "${FANOUT:-1}" \
    --events "${EVENTS:-2000}" --rate "${RATE:-200}" --latency-secs "${SECS:-20}" | grep '^|' | grep -v -- '---\|ingest | fan-out'
  kill $tansu; wait $tansu 2> /dev/null || true
done
