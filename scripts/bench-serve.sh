# Start one `serve` for a bench script (sourced, not run): `start_serve LOG DATABASE_URL ROLES BIN` starts
# `BIN serve --roles ROLES` on a free port (operator token `tok`, HTTP ingest, no Kafka, the master key SERVE_KEY
# shared by every process the script starts), waits until it answers /health, and sets SERVE_PID, SERVE_PORT and
# SERVE_API. Returns 1, after printing the log, if the process exits first.
SERVE_KEY=${SERVE_KEY:-$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')}
start_serve() {
  local log=$1 url=$2 roles=$3 bin=$4
  : >"$log" # truncated here, not by the child's redirection, so the wait below never reads an old address
  DATABASE_URL="$url" SS3_ADMIN_TOKEN=tok SS3_SECRETS__MASTER_KEY="$SERVE_KEY" SS3_KAFKA__BROKERS= \
    SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=warn,integration_service::startup=info NO_COLOR=1 \
    "$bin" serve --roles "$roles" >"$log" 2>&1 &
  SERVE_PID=$!
  SERVE_PORT=""
  for _ in $(seq 1 300); do
    SERVE_PORT=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$log" | sed 's/.*://' || true)
    [ -n "$SERVE_PORT" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$log"; return 1; }
    sleep 0.2
  done
  SERVE_API="http://127.0.0.1:$SERVE_PORT"
  for _ in $(seq 1 100); do curl -fs "$SERVE_API/health" >/dev/null && return 0; sleep 0.2; done
  return 1
}
