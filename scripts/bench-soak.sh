#!/usr/bin/env bash
# Soak (docs/benchmarks.md, "Soak"): one `serve` (all roles, HTTP ingest, default configuration) on a fresh database,
# the loadgen's `send steady` at RATE events/s for SECS seconds, fan-out 1, to the loadgen's `recv`. While it runs,
# the serve process's RSS is read every 10 s and `cpu_sampler.py` takes the CPU of the service and of its database's
# Postgres backends every 10 s. At the end, per minute: events accepted and delivered per second, latency p50/p99
# (send → receiver, from the receiver's CSV), RSS, CPU; a markdown table on stdout and a PNG plot (PLOT).
# Usage: BIN=… LOADGEN=… SAMPLER=… PY=<python with matplotlib> scripts/bench-soak.sh
#        (env RATE=500 SECS=1800 OUT=/tmp/bench-soak PLOT=$OUT/soak.png; SOAK_DB=<name> soaks an existing database,
#        e.g. scripts/bench-growth.sh's grown one, and keeps it)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/integration-service}
LOADGEN=${LOADGEN:-$HOME/.cache/integration-service/loadgen/release}
SAMPLER=${SAMPLER:-../shared/loadgen/cpu_sampler.py}
PY=${PY:-python3}
RATE=${RATE:-500}
SECS=${SECS:-1800}
OUT=${OUT:-/tmp/bench-soak}
PLOT=${PLOT:-$OUT/soak.png}
mkdir -p "$OUT"
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RECV=http://127.0.0.1:$RECV_PORT
DB=${SOAK_DB:-soak_$$}
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB SS3_ADMIN_TOKEN=soak-token SS3_LISTEN_ADDR=127.0.0.1:0 \
  RUST_LOG=error,integration_service::startup=info NO_COLOR=1
"$LOADGEN/recv" "127.0.0.1:$RECV_PORT" 1 2>"$OUT/recv.log" &
RECV_PID=$!
"$BIN" serve 2>"$OUT/serve.log" &
SVC=$!
PIDS=("$RECV_PID" "$SVC")
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -z "${SOAK_DB:-}" ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
  fi
}
trap cleanup EXIT
# shellcheck source=scripts/bench-api.sh
. "$(dirname "$0")/bench-api.sh"
wait_api "$OUT/serve.log" "$SVC"
STORE=$("$LOADGEN/send" setup --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --endpoints 1 --recv "$RECV")

PGPID=$(head -1 /var/lib/postgresql/*/main/postmaster.pid)
python3 "$SAMPLER" "$OUT/cpu.json" 0 0 0 10 --ours "$SVC" --pg-ours "$PGPID" --pg-ours-db "$DB" &
SAMPLER_PID=$!
PIDS+=("$SAMPLER_PID")
START_NS=$(date +%s%N)
(
  while kill -0 "$SVC" 2>/dev/null; do
    echo "$(( ($(date +%s%N) - START_NS) / 1000000000 )) $(awk '/VmRSS/ {print $2}' "/proc/$SVC/status")"
    sleep 10
  done
) >"$OUT/rss.txt" &
PIDS+=("$!")
"$LOADGEN/send" steady --target ss3 --api "$API" --token "$SS3_ADMIN_TOKEN" --app "$STORE" --rate "$RATE" \
  --duration "$SECS" --recv "$RECV" --expect-per-msg 1 --max-inflight 256 --timeout 120 >"$OUT/steady.json"
kill -INT "$SAMPLER_PID"
wait "$SAMPLER_PID" || true
curl -fs "$RECV/_report?csv=$OUT/deliveries.csv" >"$OUT/report.json"

"$PY" - "$OUT" "$START_NS" "$PLOT" "$SECS" <<'EOF'
import csv, json, sys
out, start_ns, plot, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
steady, report = json.load(open(f"{out}/steady.json")), json.load(open(f"{out}/report.json"))
minutes = {}
for r in csv.DictReader(open(f"{out}/deliveries.csv")):
    m = (int(r["arrival_ns"]) - start_ns) // 60_000_000_000
    minutes.setdefault(m, []).append((int(r["arrival_ns"]) - int(r["send_ns"])) / 1e6)
rss = {}
for line in open(f"{out}/rss.txt"):
    t, kb = line.split()
    rss.setdefault(int(t) // 60, []).append(int(kb) / 1024)
cpu = {}
for s in json.load(open(f"{out}/cpu.json"))["timeline"]:
    cpu.setdefault(int(s["t"]) // 60, []).append((s["ours"], s["pg_ours"]))
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
rows = []
print("| minute | deliveries/s | p50 ms | p99 ms | max ms | RSS MB (max) | service cores | Postgres cores |")
print("|---|---|---|---|---|---|---|---|")
for m in sorted(minutes):
    if m >= secs // 60:  # the tail after the last whole minute of sending
        continue
    lat = minutes[m]
    c = cpu.get(m, [(0, 0)])
    row = (m + 1, len(lat) / 60, pct(lat, 0.5), pct(lat, 0.99), max(lat), max(rss.get(m, [0])),
           sum(x for x, _ in c) / len(c), sum(y for _, y in c) / len(c))
    rows.append(row)
    print("| %d | %.0f | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f |" % row)
print(f"\nsent {steady['n']}, accepted {steady['accepted']}, API errors {steady['api_errors']}, "
      f"delivered {report['count']}, duplicates {report.get('duplicates')}, "
      f"overall latency ms {report.get('latency_ms')}")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
full = [r for r in rows if r[1] > 0]
x = [r[0] for r in full]
fig, ax = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
ax[0].plot(x, [r[1] for r in full], marker="o"); ax[0].set_ylabel("deliveries/s")
ax[1].plot(x, [r[2] for r in full], marker="o", label="p50"); ax[1].plot(x, [r[3] for r in full], marker="o", label="p99")
ax[1].set_ylabel("latency ms"); ax[1].legend()
ax[2].plot(x, [r[5] for r in full], marker="o"); ax[2].set_ylabel("RSS MB"); ax[2].set_xlabel("minute")
for a in ax: a.set_ylim(bottom=0); a.grid(alpha=0.3)
fig.suptitle(f"soak: {steady['rate']:.0f} events/s for {steady['duration']/60:.0f} min, fan-out 1, over HTTP")
fig.tight_layout(); fig.savefig(plot, dpi=80)
print(f"plot: {plot}")
EOF
