#!/usr/bin/env bash
# The throughput cost of ordered delivery (docs/benchmarks.md, "Ordered delivery"): the external delivery benchmark
# (as scripts/bench-counters.sh: fresh database, the loadgen's `recv`, `integration-service serve --roles
# api,worker` over HTTP ingest, `send burst` waiting for every delivery, the CPU sampler) on ONE build, with the one
# subscription set to each ordering in turn, rotating which goes first every round:
#   none      unordered (the baseline);
#   per-event ordered by `$.data.seq`: every event is its own key, so nothing waits; the cost of the lines alone;
#   keys64    ordered by `$.data.seq % 64`: 64 keys, each delivered one at a time (at most 64 in flight);
#   whole     ordered for the whole subscription: one at a time (N_WHOLE events).
# Usage: scripts/bench-ordering.sh BIN [ROUNDS=3] [VARIANTS="none per-event keys64 whole"]
#   LOADGEN, OUT (/tmp/bench-ordering), PGURL, CONC (16), N (20000), N_WHOLE (1000) may be set.
set -euo pipefail
BIN=$1 ROUNDS=${2:-3} VARIANTS=${3:-"none per-event keys64 whole"}
LOADGEN=${LOADGEN:-/work/targets/loadgen/release}
SAMPLER=${SAMPLER:-/work/shared/loadgen/cpu_sampler.py}
OUT=${OUT:-/tmp/bench-ordering}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
CONC=${CONC:-16} N=${N:-20000} N_WHOLE=${N_WHOLE:-1000}
mkdir -p "$OUT"
rm -f "$OUT"/*.row.json

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
POSTMASTER=$(pgrep -o -x postgres || pgrep -o postgres)
KEY=$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')
PIDS=()
DBS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${DBS[@]}"; do psql "$PGURL/postgres" -qAt -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

ordering_of() {
  case $1 in
    none) echo null ;;
    per-event) echo '{"key": "$.data.seq"}' ;;
    keys64) echo '{"key": "$.data.seq % 64"}' ;;
    whole) echo '{}' ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

run() { # variant round
  local v=$1 rnd=$2 n=$N
  [ "$v" = whole ] && n=$N_WHOLE
  local db=ss3_bench_ord_$$_${v//-/_}_$rnd tag=$OUT/$v-$rnd
  DBS+=("$db")
  psql "$PGURL/postgres" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE $db"
  local rport; rport=$(free_port)
  "$LOADGEN/recv" "127.0.0.1:$rport" 1 >"$tag.recv.log" 2>&1 &
  local rpid=$!
  PIDS+=("$rpid")
  DATABASE_URL="$PGURL/$db" SS3_ADMIN_TOKEN=tok SS3_SECRETS__MASTER_KEY="$KEY" SS3_KAFKA__BROKERS= \
    SS3_LISTEN_ADDR=127.0.0.1:0 RUST_LOG=warn,integration_service::startup=info NO_COLOR=1 \
    "$BIN" serve --roles api,worker >"$tag.serve.log" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  local port=""
  for _ in $(seq 1 300); do
    port=$(grep -m1 -o 'API listening addr=[0-9.:]*' "$tag.serve.log" | sed 's/.*://' || true)
    [ -n "$port" ] && break
    sleep 0.2
  done
  local api="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -fs "$api/health" >/dev/null && curl -fs "http://127.0.0.1:$rport/_stats" >/dev/null && break; sleep 0.2; done
  local store sub
  store=$("$LOADGEN/send" setup --target ss3 --api "$api" --token tok --endpoints 1 --recv "http://127.0.0.1:$rport")
  sub=$(curl -fs "$api/subscriptions" -H 'authorization: Bearer tok' -H "x-ss3-store-id: $store" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["subscriptionId"])')
  curl -fs -o /dev/null -X PATCH "$api/subscriptions/$sub" -H 'authorization: Bearer tok' \
    -H "x-ss3-store-id: $store" -H 'content-type: application/json' -d "{\"ordering\": $(ordering_of "$v")}"
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  python3 "$SAMPLER" "$tag.cpu.json" 0 0 0 1.0 --ours "$spid" --pg-ours "$POSTMASTER" --pg-ours-db "$db" &
  local cpid=$!
  "$LOADGEN/send" burst --target ss3 --api "$api" --token tok --app "$store" --n "$n" --conc "$CONC" \
    --recv "http://127.0.0.1:$rport" --expect "$n" --timeout 120 >"$tag.send.json" 2>"$tag.send.err"
  kill -INT "$cpid"; wait "$cpid" 2>/dev/null || true
  kill "$spid" "$rpid" 2>/dev/null || true
  wait "$spid" "$rpid" 2>/dev/null || true
  psql "$PGURL/postgres" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  python3 - "$tag" "$v" "$rnd" "$load" <<'PY'
import json, sys
tag, v, rnd, load = sys.argv[1:5]
s = json.load(open(tag + ".send.json")); c = json.load(open(tag + ".cpu.json"))
cpu = c["cpu_seconds"]; d = s["delivered"]
ms = (cpu["ours"] + cpu["pg_ours"]) * 1000 / d if d else float("nan")
lat = s.get("e2e_latency_ms") or {}
print(f'{v}\t{rnd}\t{d}/{s["expect"]}\t{s["deliveries_per_s"]:.0f}\t{ms:.3f}\t{c["avg_cores"]["other"]:.2f}\t{load}',
      flush=True)
json.dump({"variant": v, "round": int(rnd), "delivered": d, "expect": s["expect"], "dps": s["deliveries_per_s"],
           "cpu_ms_per_delivery": ms, "dups": s["receiver"].get("duplicates"), "api_errors": s["api_errors"]},
          open(tag + ".row.json", "w"))
PY
}

echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')"
printf 'variant\tround\tdelivered\tdeliveries/s\tCPU ms/delivery (service+pg)\tother cores\tload1\n'
read -r -a vs <<<"$VARIANTS"
for rnd in $(seq 1 "$ROUNDS"); do
  shift_by=$(( (rnd - 1) % ${#vs[@]} ))
  for i in $(seq 0 $(( ${#vs[@]} - 1 ))); do
    run "${vs[$(( (i + shift_by) % ${#vs[@]} ))]}" "$rnd"
  done
done
echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')"
python3 - "$OUT" <<'PY'
import glob, json, statistics, sys
rows = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.row.json")]
print("| ordering | runs | deliveries/s median (range) | CPU ms/delivery median (range) | duplicates |")
print("|---|---|---|---|---|")
base = None
for v in ("none", "per-event", "keys64", "whole"):
    rs = [r for r in rows if r["variant"] == v]
    if not rs: continue
    d = [r["dps"] for r in rs]; c = [r["cpu_ms_per_delivery"] for r in rs]
    dup = sum(r["dups"] or 0 for r in rs)
    print(f"| {v} | {len(rs)} | {statistics.median(d):.0f} ({min(d):.0f}–{max(d):.0f}) | "
          f"{statistics.median(c):.3f} ({min(c):.3f}–{max(c):.3f}) | {dup} |")
PY
