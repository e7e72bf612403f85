#!/usr/bin/env bash
# Idle cost: a fresh database, `serve` (api + worker, HTTP ingest) idle for 30 s; transactions and statements
# Postgres ran for it, per second.
set -euo pipefail
BIN=$1; DB=ss3_idle_$$
psql -h 127.0.0.1 -U postgres -qAt -c "CREATE DATABASE $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB SS3_ADMIN_TOKEN=tok SS3_KAFKA__BROKERS= RUST_LOG=error SS3_LISTEN_ADDR=127.0.0.1:0
export SS3_SECRETS__MASTER_KEY=$(python3 -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())')
$BIN serve > /tmp/idle-serve.log 2>&1 &
PID=$!
sleep 10
q() { psql -h 127.0.0.1 -U postgres -qAt -c "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched FROM pg_stat_database WHERE datname = '$DB'"; }
a=$(q); sleep 30; b=$(q)
kill $PID; wait $PID 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -qAt -c "DROP DATABASE $DB WITH (FORCE)"
python3 - "$a" "$b" <<'PY'
import sys
a=[int(x) for x in sys.argv[1].split('|')]; b=[int(x) for x in sys.argv[2].split('|')]
print(f"transactions/s {(b[0]-a[0])/30:.1f}  rows read/s {(b[1]-a[1])/30:.1f}")
PY
