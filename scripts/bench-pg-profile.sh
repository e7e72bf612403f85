#!/usr/bin/env bash
# Where Postgres' CPU goes at a steady rate (docs/benchmarks.md, "Nothing loaded back"): one `serve` on a fresh
# database, the loadgen's `send steady` (RATE events/s for SECS s, fan-out 1, over HTTP), and over 20 s from the 5th
# second: each Postgres process's user and system CPU, summed by application_name (our pools name their roles) or
# backend type. PSS=1 also prints that window's pg_stat_statements of the database (the server must preload it and
# the postgres database have the extension; remove both afterwards); PERF=1 records `perf` samples of every Postgres
# process into OUT/perf.data. Usage: scripts/bench-pg-profile.sh BIN   (env: LOADGEN, OUT, RATE, SECS, EXTRA_ENV)
set -euo pipefail
BIN=$1; OUT=${OUT:-/tmp/pgprof}; mkdir -p $OUT
LOADGEN=${LOADGEN:-/work/targets/loadgen/release}
RATE=${RATE:-200}; SECS=${SECS:-30}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
db="prof_$RANDOM"; port=$(free_port); rp=$(free_port)
$LOADGEN/recv 127.0.0.1:$rp 1 2>$OUT/recv.log & recv=$!
trap 'kill $recv ${svc:-} 2>/dev/null' EXIT
env DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db SS3_ADMIN_TOKEN=tok SS3_LISTEN_ADDR=127.0.0.1:$port RUST_LOG=error ${EXTRA_ENV:-} "$BIN" serve 2>$OUT/serve.log & svc=$!
until curl -fs http://127.0.0.1:$port/health >/dev/null; do sleep 0.2; done
store=$($LOADGEN/send setup --target ss3 --api http://127.0.0.1:$port --token tok --endpoints 1 --recv http://127.0.0.1:$rp)
$LOADGEN/send steady --target ss3 --api http://127.0.0.1:$port --token tok --app "$store" --rate $RATE --duration $SECS --recv http://127.0.0.1:$rp --expect-per-msg 1 --max-inflight 256 --timeout 60 > $OUT/send.json & send=$!
sleep 5
snap() { psql -qAt -h 127.0.0.1 -U postgres -d postgres -F' ' -c "SELECT pid, replace(coalesce(nullif(application_name,''),backend_type),' ','_') FROM pg_stat_activity" | while read pid app; do [ -r /proc/$pid/stat ] && echo "$pid $app $(awk '{print $14, $15}' /proc/$pid/stat)"; done; }
[ "${PSS:-0}" = 0 ] || psql -qAt -h 127.0.0.1 -U postgres -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
snap > $OUT/a; t0=$(date +%s.%N)
if [ "${PERF:-0}" = 1 ]; then perf record -F 499 -g -o $OUT/perf.data -p $(pgrep -d, postgres) -- sleep 20 2>/dev/null >/dev/null; else sleep 20; fi
snap > $OUT/b; t1=$(date +%s.%N)
if [ "${PSS:-0}" = 1 ]; then psql -h 127.0.0.1 -U postgres -d postgres -v db=$db > $OUT/pss.txt <<'SQL' || true
SELECT calls, round(total_exec_time::numeric,1) exec_ms, round(total_plan_time::numeric,1) plan_ms, round((total_exec_time/greatest(calls,1))::numeric,3) per_call, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 120) q FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :'db' ORDER BY total_exec_time + total_plan_time DESC LIMIT 45;
SQL
cat $OUT/pss.txt; fi
trap - EXIT; wait $send; kill $svc $recv; wait $svc $recv 2>/dev/null || true
python3 - $OUT/a $OUT/b $t0 $t1 $OUT/send.json <<'PY'
import sys, json, collections
a={l.split()[0]:l.split() for l in open(sys.argv[1])}; b=[l.split() for l in open(sys.argv[2])]
dt=float(sys.argv[4])-float(sys.argv[3]); hz=100
agg=collections.defaultdict(lambda:[0,0,0])
for pid,app,u,s in b:
    u0,s0=(int(a[pid][2]),int(a[pid][3])) if pid in a else (0,0)
    g=agg[app]; g[0]+=int(u)-u0; g[1]+=int(s)-s0; g[2]+=1
tu=ts=0
for app,(u,s,n) in sorted(agg.items(), key=lambda x:-(x[1][0]+x[1][1])):
    print(f"{app:40s} n={n:2d} user {u/hz/dt:.3f} sys {s/hz/dt:.3f} cores"); tu+=u; ts+=s
print(f"{'TOTAL':40s}       user {tu/hz/dt:.3f} sys {ts/hz/dt:.3f}")
d=json.load(open(sys.argv[5])); l=d['receiver']['latency_ms']; print('delivered',d['delivered'],'p50',l['p50'],'p99',l['p99'])
PY
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
