# One external delivery burst, shared by the A/B and variant benches (sourced, not run): a fresh database, the
# loadgen's `recv` (one worker thread), `integration-service serve --roles api,worker` (HTTP ingest, no Kafka, default
# configuration), `send setup`, an optional hook on the store, then `send burst` waiting for every delivery while the
# CPU sampler runs (service process, its database's Postgres backends, everything else on the machine); once the
# service stopped, the database's row writes (TAG.writes: inserts + updates + deletes, and finished jobs left to sweep).
# Needs LOADGEN, SAMPLER, PGURL, CONC set by the caller; with BURST_REUSE_DB=1 the database DB already exists (a
# seeded one) and is neither created nor dropped. BURST_PAD (bytes of padding in each event's data, default 0) and
# BURST_AFTER (a command called as `BURST_AFTER SERVICE_PID DB TAG` once the burst is over, before the service stops)
# may be set too.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
BURST_POSTMASTER=$(pgrep -o -x postgres || pgrep -o postgres)
BURST_KEY=$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')
BURST_PIDS=()
BURST_DBS=()
burst_cleanup() {
  for p in "${BURST_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${BURST_DBS[@]}"; do psql "$PGURL/postgres" -qAt -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap burst_cleanup EXIT

# burst BIN DB TAG ENDPOINTS N EXPECT TIMEOUT [HOOK]: TAG.send.json, TAG.cpu.json, TAG.serve.log, TAG.recv.log are
# written; HOOK, when given, is called as `HOOK API STORE` after set-up. Sets BURST_LOAD (1-minute load before).
burst() {
  local bin=$1 db=$2 tag=$3 eps=$4 n=$5 expect=$6 timeout=$7 hook=${8:-} reuse=${BURST_REUSE_DB:-0}
  if [ "$reuse" != 1 ]; then
    BURST_DBS+=("$db")
    psql "$PGURL/postgres" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE $db"
  fi
  local rport; rport=$(free_port)
  "$LOADGEN/recv" "127.0.0.1:$rport" 1 >"$tag.recv.log" 2>&1 &
  local rpid=$!
  BURST_PIDS+=("$rpid")
  : >"$tag.serve.log"
  # A padded event may exceed the default 1 MiB limit of an event; `env` execs the service, so $! is its pid.
  env ${BURST_PAD:+SS3_KAFKA__MAX_MESSAGE_BYTES=$((1048576 + ${BURST_PAD:-0}))} \
    DATABASE_URL="$PGURL/$db" SS3_ADMIN_TOKEN=tok SS3_SECRETS__MASTER_KEY="$BURST_KEY" SS3_KAFKA__BROKERS= \
    SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=warn,integration_service::startup=info NO_COLOR=1 \
    "$bin" serve --roles api,worker >"$tag.serve.log" 2>&1 &
  local spid=$!
  BURST_PIDS+=("$spid")
  local port=""
  for _ in $(seq 1 300); do
    port=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$tag.serve.log" | sed 's/.*://' || true)
    [ -n "$port" ] && break
    sleep 0.2
  done
  local api="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -fs "$api/health" >/dev/null && curl -fs "http://127.0.0.1:$rport/_stats" >/dev/null && break; sleep 0.2; done
  local store
  store=$("$LOADGEN/send" setup --target ss3 --api "$api" --token tok --endpoints "$eps" --recv "http://127.0.0.1:$rport")
  if [ -n "$hook" ]; then "$hook" "$api" "$store"; fi
  BURST_LOAD=$(cut -d' ' -f1 /proc/loadavg)
  python3 "$SAMPLER" "$tag.cpu.json" 0 0 0 1.0 --ours "$spid" --pg-ours "$BURST_POSTMASTER" --pg-ours-db "$db" &
  local cpid=$!
  "$LOADGEN/send" burst --target ss3 --api "$api" --token tok --app "$store" --n "$n" --conc "$CONC" \
    --recv "http://127.0.0.1:$rport" --expect "$expect" --timeout "$timeout" --pad "${BURST_PAD:-0}" \
    >"$tag.send.json" 2>"$tag.send.err"
  kill -INT "$cpid"; wait "$cpid" 2>/dev/null || true
  if [ -n "${BURST_AFTER:-}" ]; then "$BURST_AFTER" "$spid" "$db" "$tag"; fi
  kill "$spid" "$rpid" 2>/dev/null || true
  wait "$spid" "$rpid" 2>/dev/null || true
  if [ "$reuse" != 1 ]; then
    # Row writes of the whole run (set-up included: a few dozen rows), reported by each backend as it exited, and
    # finished jobs still in apalis.jobs (each a delete the sweep will write later): "writes deferred".
    sleep 1
    psql "$PGURL/$db" -qAt -F ' ' -c "SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)
        FROM pg_stat_all_tables WHERE schemaname IN ('public', 'apalis')),
      (SELECT count(*) FROM apalis.jobs WHERE status = 'Done')" >"$tag.writes" || true
  fi
  if [ "$reuse" != 1 ]; then psql "$PGURL/postgres" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; fi
}
