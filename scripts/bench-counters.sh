#!/usr/bin/env bash
# The cost of the hourly delivery counters (issue 12): the same external delivery benchmark against two release
# builds, A (without the counters) and B (with them), runs interleaved A B, B A, A B, ... Each run: a fresh
# database, the loadgen's `recv` (one worker thread), `integration-service serve --roles api,worker` (HTTP ingest,
# no Kafka, default configuration), `send setup` (ENDPOINTS subscriptions to `recv`), `send burst` of N events
# over CONC keep-alive connections, waiting for every delivery; the CPU sampler runs meanwhile (service process,
# its database's Postgres backends, everything else on the machine).
# Scenarios: fo1 = 20,000 events to 1 subscription; fo10 = 2,000 events to 10 subscriptions (20,000 deliveries).
#
# Usage: scripts/bench-counters.sh BIN_A BIN_B [ROUNDS=3] [SCENARIOS="fo1 fo10"]
#   LOADGEN (dir with send/recv, default /work/targets/loadgen/release), OUT (results dir, /tmp/bench-counters),
#   PGURL (server, default postgres://postgres@127.0.0.1:5432), CONC (16), N_FO1 (20000), N_FO10 (2000) may be set;
#   DB_B names an existing database B's runs use instead of a fresh one (kept: scripts/bench-growth.sh's seeded one).
# Prints one tab-separated line per run (build, scenario, round, deliveries, deliveries/s, service + its Postgres
# CPU ms per delivery, other processes' average cores, 1-minute load, row writes per delivery counting finished
# jobs left for the sweep) and then medians and ranges per build and scenario; each run's `send` JSON, CPU summary
# and service log are kept in OUT.
set -euo pipefail
BIN_A=$1 BIN_B=$2 ROUNDS=${3:-3} SCENARIOS=${4:-"fo1 fo10"}
LOADGEN=${LOADGEN:-/work/targets/loadgen/release}
SAMPLER=${SAMPLER:-/work/shared/loadgen/cpu_sampler.py}
OUT=${OUT:-/tmp/bench-counters}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
CONC=${CONC:-16} N_FO1=${N_FO1:-20000} N_FO10=${N_FO10:-2000}
mkdir -p "$OUT"

# shellcheck source=scripts/bench-burst.sh
. "$(dirname "$0")/bench-burst.sh"

run() { # build(A|B) bin scenario round
  local build=$1 bin=$2 sc=$3 rnd=$4 n eps expect
  case $sc in
    fo1) n=$N_FO1 eps=1 expect=$N_FO1 ;;
    fo10) n=$N_FO10 eps=10 expect=$((N_FO10 * 10)) ;;
    *) echo "unknown scenario $sc" >&2; exit 2 ;;
  esac
  local tag=$OUT/$build-$sc-$rnd
  if [ "$build" = B ] && [ -n "${DB_B:-}" ]; then
    BURST_REUSE_DB=1 burst "$bin" "$DB_B" "$tag" "$eps" "$n" "$expect" 60
  else
    burst "$bin" "ss3_bench_ctr_$$_${build,,}_${sc}_$rnd" "$tag" "$eps" "$n" "$expect" 60
  fi
  local load=$BURST_LOAD
  python3 - "$tag" "$build" "$sc" "$rnd" "$load" <<'PY'
import json, sys
tag, build, sc, rnd, load = sys.argv[1:6]
s = json.load(open(tag + ".send.json")); c = json.load(open(tag + ".cpu.json"))
cpu = c["cpu_seconds"]; d = s["delivered"]
ms = (cpu["ours"] + cpu["pg_ours"]) * 1000 / d if d else float("nan")
try:
    written, deferred = (int(x) for x in open(tag + ".writes").read().split())
    writes = (written + deferred) / d if d else float("nan")
except (OSError, ValueError):
    writes = float("nan")
print(f'{build}\t{sc}\t{rnd}\t{d}/{s["expect"]}\t{s["deliveries_per_s"]:.0f}\t{ms:.3f}\t{c["avg_cores"]["other"]:.2f}\t{load}\t{writes:.2f}',
      flush=True)
json.dump({"build": build, "scenario": sc, "round": int(rnd), "delivered": d, "expect": s["expect"],
           "dps": s["deliveries_per_s"], "cpu_ms_per_delivery": ms, "other_cores": c["avg_cores"]["other"],
           "load1": float(load), "writes_per_delivery": writes, "dups": s["receiver"].get("duplicates"), "api_errors": s["api_errors"]},
          open(tag + ".row.json", "w"))
PY
}

echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')"
printf 'build\tscenario\tround\tdelivered\tdeliveries/s\tCPU ms/delivery (service+pg)\tother cores\tload1\trow writes/delivery\n'
for rnd in $(seq 1 "$ROUNDS"); do
  for sc in $SCENARIOS; do
    if [ $((rnd % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for b in $order; do
      if [ "$b" = A ]; then run A "$BIN_A" "$sc" "$rnd"; else run B "$BIN_B" "$sc" "$rnd"; fi
    done
  done
done
echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')"
python3 - "$OUT" <<'PY'
import glob, json, statistics, sys
rows = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.row.json")]
print("| scenario | build | runs | deliveries/s median (range) | CPU ms/delivery median (range) | row writes/delivery |")
print("|---|---|---|---|---|---|")
med = {}
for sc in sorted({r["scenario"] for r in rows}):
    for b in ("A", "B"):
        rs = [r for r in rows if r["scenario"] == sc and r["build"] == b]
        if not rs: continue
        d = [r["dps"] for r in rs]; c = [r["cpu_ms_per_delivery"] for r in rs]
        w = [r.get("writes_per_delivery", float("nan")) for r in rs]
        med[sc, b] = (statistics.median(d), statistics.median(c))
        print(f"| {sc} | {b} | {len(rs)} | {statistics.median(d):.0f} ({min(d):.0f}–{max(d):.0f}) | "
              f"{statistics.median(c):.3f} ({min(c):.3f}–{max(c):.3f}) | {statistics.median(w):.2f} |")
for sc in sorted({k[0] for k in med}):
    if (sc, "A") in med and (sc, "B") in med:
        (da, ca), (db, cb) = med[sc, "A"], med[sc, "B"]
        print(f"# {sc}: deliveries/s B vs A {100 * (db - da) / da:+.1f} %, CPU per delivery B vs A {100 * (cb - ca) / ca:+.1f} %")
PY
