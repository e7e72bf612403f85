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

# shellcheck source=scripts/bench-burst.sh
. "$(dirname "$0")/bench-burst.sh"

ordering_of() {
  case $1 in
    none) echo null ;;
    per-event) echo '{"key": "$.data.seq"}' ;;
    keys64) echo '{"key": "$.data.seq % 64"}' ;;
    whole) echo '{}' ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

# Set the one subscription of store $2 (API $1) to the ordering of $VARIANT.
set_ordering() {
  local sub
  sub=$(curl -fs "$1/subscriptions" -H 'authorization: Bearer tok' -H "x-ss3-store-id: $2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["subscriptionId"])')
  curl -fs -o /dev/null -X PATCH "$1/subscriptions/$sub" -H 'authorization: Bearer tok' \
    -H "x-ss3-store-id: $2" -H 'content-type: application/json' -d "{\"ordering\": $(ordering_of "$VARIANT")}"
}

run() { # variant round
  local v=$1 rnd=$2 n=$N
  [ "$v" = whole ] && n=$N_WHOLE
  local tag=$OUT/$v-$rnd
  VARIANT=$v burst "$BIN" "ss3_bench_ord_$$_${v//-/_}_$rnd" "$tag" 1 "$n" "$n" 120 set_ordering
  local load=$BURST_LOAD
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
