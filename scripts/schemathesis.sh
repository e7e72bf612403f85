#!/usr/bin/env bash
# Property-based API testing with schemathesis (PyPI, major version 4): it reads /openapi.json, sends requests that
# are valid and invalid under it, and runs every check (no 5xx, statuses/content types/headers/bodies as documented,
# invalid data refused, valid data accepted, auth enforced, allowed methods) as three identities:
#   operator   (operator token + X-SS3-Store-Id), store    (an API key with every scope), anonymous (no credentials).
# Starts the built binary on a fresh database (dropped afterwards), API role only, embedded secrets, no Kafka.
# Exits non-zero on any failure. About 2 minutes on 2 cores (1m37s to 2m10s measured). scripts/test.sh runs it after the tests (and so does CI).
# Usage: scripts/schemathesis.sh [extra `st run` arguments, e.g. --include-path /subscriptions]
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SS3_CACHE_DIR:-$HOME/.cache/integration-service}"
mkdir -p "$CACHE"
log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
random_b64() { python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'; }

# Pinned, so a new release cannot change CI's verdict on an unchanged tree; bump it deliberately.
ST_VERSION=4.32.5
ST="$CACHE/schemathesis-venv/bin/st"
if ! "$ST" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  log "installing schemathesis $ST_VERSION from PyPI"
  python3 -m venv "$CACHE/schemathesis-venv"
  "$CACHE/schemathesis-venv/bin/pip" install -q "schemathesis==$ST_VERSION"
fi

BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/integration-service"
cargo build --bin integration-service

PG="postgres://postgres@127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
DB="ss3_schemathesis_$$"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN="st-operator-$(random_b64 | tr -dc 'A-Za-z0-9' | head -c 24)"
STORE=st-store
# The key lives in another store, so the operator run (which deletes and rotates what it finds) cannot touch it.
KEY_STORE=st-key-store
REPORTS="$CACHE/schemathesis-reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"

cleanup() {
  [ -n "${SERVICE_PID:-}" ] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null

# API role only: the worker would POST to the random target URLs schemathesis creates, i.e. to the internet.
# A 5 ms failure floor (500 ms by default): every fuzzed key or client secret fails, and at the default the
# anonymous identity's run outlasts its time bound; the answers are the same, only later.
DATABASE_URL="$PG/$DB" SS3_LISTEN_ADDR="127.0.0.1:$PORT" SS3_ADMIN_TOKEN="$ADMIN_TOKEN" \
  SS3_SECRETS__MASTER_KEY="$(random_b64)" SS3_KAFKA__BROKERS="" SS3_MODE=development RUST_LOG=warn \
  SS3_CREDENTIALS__FAILURE_DELAY_MS=5 \
  "$BIN" serve --roles api >"$REPORTS/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 300); do
  curl -fsS "$BASE/health" >/dev/null 2>&1 && break
  kill -0 "$SERVICE_PID" 2>/dev/null || { log "the service exited:"; cat "$REPORTS/service.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$BASE/health" >/dev/null || { log "the service did not answer /health"; exit 1; }

# The store identity: an API key with every scope, issued through the API like any other.
SCOPES=$(curl -fsS "$BASE/scopes" | python3 -c 'import json,sys; print(json.dumps([s["scope"] for s in json.load(sys.stdin)]))')
API_KEY=$(curl -fsS -X POST "$BASE/credentials" -H "Authorization: Bearer $ADMIN_TOKEN" -H "X-SS3-Store-Id: $KEY_STORE" \
  -H 'Content-Type: application/json' -d "{\"name\":\"schemathesis\",\"type\":\"API_KEY\",\"scopes\":$SCOPES}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])')

# Why each flag:
#   --checks all                 every check schemathesis has (issue 9 asks for all of them).
#   --phases examples,coverage,fuzzing,stateful
#                                coverage derives boundary and invalid values from each schema (lengths, enums,
#                                patterns, missing fields); fuzzing adds random ones; stateful follows the document's
#                                links (create → get/patch/delete/… of what was created), which is what gives the
#                                `{id}` routes real ids and runs use_after_free and ensure_resource_availability.
#   --max-examples 25            fuzzing cases per operation and mode; keeps the three runs to about 3 minutes.
#   --seed / --generation-database none
#                                the same cases every run: CI fails on a change to the code, not on luck.
#   no --max-time                with a time budget schemathesis repeats fuzzing until it is spent, so how many
#                                cases run (and which failures appear) would depend on the machine's speed; each
#                                phase runs once instead, and `timeout 180` bounds an identity if the service hangs.
#   --request-timeout 10         a hung request is a failure, not a hang.
#   --workers 1                  schemathesis 4.32 under Python 3.11 hit internal errors (SystemError in `ast`) with 2.
#   --config-file scripts/schemathesis.toml
#                                the few routes whose rules JSON Schema cannot state (each named there) may answer
#                                valid-looking data with 422; every check still runs on them.
#   --suppress-health-check too_slow,filter_too_much
#                                patterned strings with length bounds are slow to generate; that is not an API fault.
run() { # name, headers…
  local name=$1; shift
  log "identity: $name"
  timeout 180 "$ST" --config-file scripts/schemathesis.toml run "$BASE/openapi.json" --checks all --phases examples,coverage,fuzzing,stateful --max-examples 25 \
    --seed 20261128 --generation-database none --request-timeout 10 --workers 1 \
    --suppress-health-check too_slow,filter_too_much --no-color \
    --report junit --report-junit-path "$REPORTS/$name.xml" "$@"
}
status=0
run operator -H "Authorization: Bearer $ADMIN_TOKEN" -H "X-SS3-Store-Id: $STORE" "$@" || status=1
run store -H "Authorization: Bearer $API_KEY" "$@" || status=1
run anonymous "$@" || status=1
if [ "$status" -ne 0 ]; then
  log "failures above (JUnit reports and the service log in $REPORTS)"
fi
exit "$status"
