#!/usr/bin/env bash
# Where a credential flood's CPU goes (docs/benchmarks.md, "Batched lookups"): one `serve` (roles: ROLES), the flood
# of `ss3-bench --suite flood` (1,000 connections of random keys, SECS seconds), and the loadgen's cpu_sampler.py for
# 15 s in the middle: cores of the service, of its database's Postgres backends, and of the rest ("other": the
# flood client, when nothing else runs).
# Usage: BIN=… BENCH=… SAMPLER=…/cpu_sampler.py scripts/bench-flood-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/integration-service}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-target}/release/ss3-bench}
SAMPLER=${SAMPLER:-../shared/loadgen/cpu_sampler.py}
DB=cpusplit_$$; OUT=${OUT:-/tmp/cpu-split}; mkdir -p $OUT
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB SS3_ADMIN_TOKEN=tok SS3_LISTEN_ADDR=127.0.0.1:18080 RUST_LOG=error NO_COLOR=1
$BIN serve --roles ${ROLES:-api,worker} 2>$OUT/serve.log & SVC=$!
trap 'kill $SVC 2>/dev/null; wait; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
until curl -fs http://127.0.0.1:18080/health >/dev/null; do sleep 0.2; done
PGPID=$(cat /var/lib/postgresql/*/main/postmaster.pid | head -1)
$BENCH --suite flood --api http://127.0.0.1:18080 --api-token tok --flood-connections 1000 --flood-secs ${SECS:-25} > $OUT/flood.md 2>$OUT/flood.log & FL=$!
sleep 5
python3 "$SAMPLER" $OUT/cpu.json 0 0 0 1.0 --ours $SVC --pg-ours $PGPID --pg-ours-db $DB & SAMP=$!
sleep 15; kill -INT $SAMP; wait $SAMP
wait $FL
grep -E '^\| external|^transport' $OUT/flood.md || tail -5 $OUT/flood.md
python3 -c "
import json; d=json.load(open('$OUT/cpu.json')); print({k:v for k,v in d.items() if k!='timeline'})"
