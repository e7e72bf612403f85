#!/usr/bin/env bash
# Noisy neighbour (issue 16, fair delivery), measured from outside the process: store B's event → receiver latency
# at a steady 50 events/s for 30 s (../shared/loadgen `send steady`, its `recv` as B's receiver), while store A's
# deliveries are stuck behind a bad receiver or a backlog. Modes (one fresh database and service each):
#   none     no store A (B's baseline)
#   slow     A has SLOW_N deliveries pending to a receiver that answers every POST after 10 s
#   timeout  A has SLOW_N deliveries pending to a receiver that never answers (the service gives up at
#            delivery.timeout_ms, 15 s by default)
#   refused  A has SLOW_N deliveries pending to a closed port
#   backlog  A has BACKLOG_N deliveries pending to a second, fast `recv`
# A's deliveries are queued by an API-only process (`serve --roles api`, no worker), which is then stopped, so
# they are all pending when the full service (`serve`, every role) starts; B's steady load starts right after.
# A's deliveries and attempts are counted in the database from the full service's start to the end of B's run
# ("A window"; B's own window is its sending and draining).
#
# Usage: scripts/bench-noisy.sh SERVICE_BIN [RUNS=1] [MODES="none slow timeout refused backlog"]
#   LOADGEN (dir with send/recv), OUT (results dir), PGURL (server, default postgres://postgres@127.0.0.1:5432),
#   SLOW_N (300), BACKLOG_N (10000), RATE (50), SECS (30) may be set.
# Prints one tab-separated line per run; the raw `send` JSON, B's per-delivery CSV (arrival and send times) and the
# service logs are kept in OUT.
set -euo pipefail
BIN=$1 RUNS=${2:-1} MODES=${3:-"none slow timeout refused backlog"}
LOADGEN=${LOADGEN:-/work/targets/loadgen/release}
OUT=${OUT:-/tmp/bench-noisy}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
SLOW_N=${SLOW_N:-300} BACKLOG_N=${BACKLOG_N:-10000} RATE=${RATE:-50} SECS=${SECS:-30}
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
psql_() { psql "$PGURL/$1" -v ON_ERROR_STOP=1 -qAt -c "$2"; }
KEY=$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Store A's bad receiver: answers every POST after DELAY seconds, one thread per connection.
cat >"$OUT/slow_recv.py" <<'PY'
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
delay = float(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(delay)
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

start_service() { # db log roles -> prints the API base URL; pid in SPID
  DATABASE_URL="$PGURL/$1" SS3_ADMIN_TOKEN=tok SS3_SECRETS__MASTER_KEY="$KEY" SS3_KAFKA__BROKERS= \
    SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=warn,integration_service::startup=info NO_COLOR=1 \
    "$BIN" serve --roles "$3" >"$2" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  local port=""
  for _ in $(seq 1 150); do
    port=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$2" | sed 's/.*://') && break
    sleep 0.2
  done
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  API="http://127.0.0.1:$port"
}

# Queue store A's deliveries to TARGET with an API-only process (no worker runs them yet).
queue_a() { # db target n log
  start_service "$1" "$4" api
  curl -fsS -o /dev/null -X POST "$API/subscriptions" -H 'authorization: Bearer tok' -H 'x-ss3-store-id: storea' \
    -H 'content-type: application/json' -d "{\"name\":\"noisy A\",\"targetUrl\":\"$2\",\"events\":[\"*\"]}"
  "$LOADGEN/send" burst --target ss3 --api "$API" --token tok --app storea --n "$3" --conc 16 \
    --recv "$RECV_B" --expect 0 --timeout 1 >/dev/null
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
}

# A's deliveries and attempts finished between two instants (SQL timestamps), and the seconds from the first
# instant to A's last delivery (how long A's backlog took to drain, when it did).
a_counts() { # db from to
  psql_ "$1" "SELECT (SELECT count(*) FROM webhook_deliveries WHERE store_id = 'storea' AND delivered_at BETWEEN '$2' AND '$3'),
                     (SELECT count(*) FROM webhook_delivery_attempts a JOIN webhook_deliveries d USING (delivery_id)
                      WHERE d.store_id = 'storea' AND a.finished_at BETWEEN '$2' AND '$3'),
                     (SELECT COALESCE(round(extract(epoch FROM max(delivered_at) - '$2'::timestamptz)::numeric, 1)::text, '-')
                      FROM webhook_deliveries WHERE store_id = 'storea' AND delivered_at BETWEEN '$2' AND '$3')" | tr '|' '\t'
}

run_one() { # mode n
  local mode=$1 n=$2 db="ss3_noisy_${1}_$2_$$" target="" count=0 spid_a=""
  psql_ postgres "CREATE DATABASE $db"
  case $mode in
    slow|timeout) local p; p=$(free_port)
      python3 "$OUT/slow_recv.py" "$p" "$([ "$mode" = slow ] && echo 10 || echo 3600)" & spid_a=$!
      target="http://127.0.0.1:$p/hook" count=$SLOW_N ;;
    refused) target="http://127.0.0.1:$(free_port)/hook" count=$SLOW_N ;;   # nothing listens there
    backlog) target="$RECV_A/ep/0" count=$BACKLOG_N ;;
  esac
  [ -n "$spid_a" ] && PIDS+=("$spid_a")
  [ "$count" -gt 0 ] && queue_a "$db" "$target" "$count" "$OUT/$mode-$n-api.log"
  local pending; pending=$(psql_ "$db" "SELECT count(*) FROM webhook_deliveries WHERE store_id = 'storea'" 2>/dev/null || echo 0)
  local a_from store from to
  a_from=$(psql_ postgres "SELECT clock_timestamp()")
  start_service "$db" "$OUT/$mode-$n.log" all
  store=$("$LOADGEN/send" setup --target ss3 --api "$API" --token tok --endpoints 1 --recv "$RECV_B" --store storeb)
  from=$(psql_ postgres "SELECT clock_timestamp()")
  "$LOADGEN/send" steady --target ss3 --api "$API" --token tok --app "$store" --rate "$RATE" --duration "$SECS" \
    --recv "$RECV_B" --expect-per-msg 1 --max-inflight 256 --timeout 60 --csv "$OUT/$mode-$n.csv" >"$OUT/$mode-$n.json"
  to=$(psql_ postgres "SELECT clock_timestamp()")
  local window a_window load a
  window=$(psql_ postgres "SELECT round(extract(epoch FROM '$to'::timestamptz - '$from'::timestamptz)::numeric, 1)")
  a_window=$(psql_ postgres "SELECT round(extract(epoch FROM '$to'::timestamptz - '$a_from'::timestamptz)::numeric, 1)")
  load=$(uptime | sed 's/.*load average: //')
  a=$(a_counts "$db" "$a_from" "$to")
  jq -r --arg mode "$mode" --arg n "$n" --arg pending "$pending" --arg a "$a" --arg w "$window" --arg aw "$a_window" \
    --arg load "$load" \
    '[$mode, $n, $pending, "\(.delivered)/\(.accepted)", .receiver.latency_ms.p50, .receiver.latency_ms.p95,
      .receiver.latency_ms.p99, .receiver.latency_ms.max, ($a | split("\t")[0]), ($a | split("\t")[1]), ($a | split("\t")[2]), $aw, $w, $load]
     | map(tostring) | join("\t")' "$OUT/$mode-$n.json"
  # Measured: no graceful drain (it would wait for A's attempts in flight, up to the 15 s timeout).
  kill -KILL "$SPID"; wait "$SPID" 2>/dev/null || true
  [ -n "$spid_a" ] && { kill "$spid_a"; wait "$spid_a" 2>/dev/null || true; }
  psql_ postgres "DROP DATABASE $db WITH (FORCE)"
}

PORT_B=$(free_port) PORT_A=$(free_port)
"$LOADGEN/recv" "127.0.0.1:$PORT_B" 1 >/dev/null 2>&1 & PIDS+=("$!")
"$LOADGEN/recv" "127.0.0.1:$PORT_A" 1 >/dev/null 2>&1 & PIDS+=("$!")
RECV_B="http://127.0.0.1:$PORT_B" RECV_A="http://127.0.0.1:$PORT_A"
sleep 0.5
printf 'mode\trun\tA pending\tB delivered\tB p50 ms\tB p95 ms\tB p99 ms\tB max ms\tA delivered\tA attempts\tA last delivery s\tA window s\tB window s\tload 1/5/15\n'
for n in $(seq 1 "$RUNS"); do
  for mode in $MODES; do run_one "$mode" "$n"; done
done
