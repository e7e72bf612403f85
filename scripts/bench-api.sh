# Sourced by the bench scripts, not run: wait for an `integration-service serve` with the api role to answer.
# The service binds a free port itself (SS3_LISTEN_ADDR=127.0.0.1:0) and logs it ("API listening addr=...").

# wait_api LOG PID: sets API to the base URL logged in LOG once /health answers; exits with the log if PID dies first.
wait_api() {
  local addr
  until addr=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$1" 2>/dev/null); do
    kill -0 "$2" || { cat "$1" >&2; exit 1; }
    sleep 0.1
  done
  API=http://${addr#API listening addr=}
  until curl -fs "$API/health" >/dev/null; do sleep 0.1; done
}
