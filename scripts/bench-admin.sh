#!/usr/bin/env bash
# Admin panel and statistics (issue 12), measured from outside the process: a fresh database seeded in SQL with one
# store's delivery log (DELIVERIES deliveries, PER attempts each: 1,000,000 and 10 by default, i.e. 10 million
# attempt rows) and the hourly counters derived from those attempts (scripts/bench-admin-seed.sql), the release
# service with the api role only, then a Python client on one keep-alive connection times every page and the two
# statistics endpoints: a warm-up of WARMUP rounds, then N rounds, each round requesting every path once in turn
# (so a burst of machine load hits all paths alike). Prints path, p50, p95, max (ms) and the EXPLAIN (ANALYZE,
# BUFFERS) of the statements of src/db/stats.rs::daily, for one subscription and for the store, at the first and
# the seventh execution of the prepared statement (custom plan, then the plan a pooled connection keeps).
#
# Usage: scripts/bench-admin.sh SERVICE_BIN
#   PGURL (server, default postgres://postgres@127.0.0.1:5432), DB (ss3_bench_admin; dropped and recreated),
#   DELIVERIES (1000000), PER (10), SUBS (10), N (60), WARMUP (5), OUT (/tmp/bench-admin: results, service log),
#   KEEP=1 keeps the database afterwards, REUSE=1 skips the seed and measures an already seeded, kept DB; STORE (bench)
#   the store measured (`grown` for scripts/bench-growth.sh's database). PLANS=1 then requests every path once more
#   from a second `serve` whose connections load auto_explain, and prints the plan Postgres ran for each statement
#   taking PLAN_MS (0) or more (the service's own statement text and parameters; from the server log, PGLOG).
set -euo pipefail
BIN=$1
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-ss3_bench_admin}
DELIVERIES=${DELIVERIES:-1000000} PER=${PER:-10} SUBS=${SUBS:-10} N=${N:-60} WARMUP=${WARMUP:-5}
OUT=${OUT:-/tmp/bench-admin} KEEP=${KEEP:-0} REUSE=${REUSE:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
STORE=${STORE:-bench}
mkdir -p "$OUT"

psql_() { psql "$PGURL/$DB" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
SPID=""
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  if [ "$KEEP" != 1 ]; then psql "$PGURL/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; fi
}
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')"
if [ "$REUSE" != 1 ]; then
  psql "$PGURL/postgres" -v ON_ERROR_STOP=1 -qAt -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
fi

# The service (api role: it serves the reads; no worker touches the seeded rows). It migrates the fresh database.
# shellcheck source=scripts/bench-serve.sh
. "$HERE/bench-serve.sh"
start_serve "$OUT/serve.log" "$PGURL/$DB" api "$BIN" || { kill "$SERVE_PID" 2>/dev/null; exit 1; }
SPID=$SERVE_PID port=$SERVE_PORT API=$SERVE_API
op() { curl -fsS -H 'authorization: Bearer tok' -H "x-ss3-store-id: $STORE" -H 'content-type: application/json' "$@"; }

if [ "$REUSE" != 1 ]; then
  # The store's subscriptions and its API key, through the API (as an operator would create them).
  for i in $(seq 1 "$SUBS"); do
    op -o /dev/null -X POST "$API/subscriptions" \
      -d "{\"name\":\"bench $i\",\"targetUrl\":\"http://127.0.0.1:9/hook/$i\",\"events\":[\"*\"]}"
  done
  SUB_IDS="{$(psql_ "SELECT string_agg(subscription_id::text, ',' ORDER BY subscription_id) FROM webhook_subscriptions")}"
  echo "# seeding $DELIVERIES deliveries x $PER attempts over $SUBS subscriptions"
  start=$(date +%s)
  psql "$PGURL/$DB" -qAt -v store="$STORE" -v subs="$SUB_IDS" -v deliveries="$DELIVERIES" -v per="$PER" \
    -f "$HERE/bench-admin-seed.sql" >"$OUT/seed.log"
  echo "# seeded in $(($(date +%s) - start)) s"
  # What a running service holds: the retention pass (a worker's, every retention.interval_secs) has rolled the
  # hours of days before yesterday into daily rows. Nothing else is removed: the seeded log is within 30 days.
  start=$(date +%s)
  DATABASE_URL="$PGURL/$DB" SS3_SECRETS__MASTER_KEY="$SERVE_KEY" "$BIN" retention | sed 's/^/# retention pass: /'
  echo "# rolled up in $(($(date +%s) - start)) s"
  # As autovacuum does after a pass (the hourly rows it moved are dead tuples; the daily table is new).
  psql_ "VACUUM ANALYZE webhook_stats_hourly, webhook_stats_daily"
fi
psql_ "DELETE FROM api_credentials WHERE name = 'bench admin'"
API_KEY=$(op -X POST "$API/credentials" -d '{"name":"bench admin","type":"API_KEY","scopes":["webhooks:manage"]}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])')
psql_ "SELECT 'deliveries', count(*) FROM webhook_deliveries UNION ALL SELECT 'attempts', count(*) FROM webhook_delivery_attempts
       UNION ALL SELECT 'hourly stats rows', count(*) FROM webhook_stats_hourly
       UNION ALL SELECT 'daily stats rows', count(*) FROM webhook_stats_daily
       UNION ALL SELECT 'dead letters', count(*) FROM webhook_deliveries WHERE status = 'DEAD_LETTERED'" | sed 's/^/# /'
SUB=$(psql_ "SELECT subscription_id FROM webhook_subscriptions ORDER BY subscription_id LIMIT 1")
# A delivery of that subscription from the newest day (its page shows every attempt: PER of them).
DEL=$(psql_ "SELECT delivery_id FROM webhook_deliveries WHERE subscription_id = '$SUB' ORDER BY created_at DESC LIMIT 1")

cat >"$OUT/client.py" <<'PY'
# Times GET requests on one keep-alive connection per caller; prints path, n, p50, p95, max (ms), status, bytes.
import http.client, json, sys, time, urllib.parse
host, port, key, sub, dlv, n, warmup, out, store_id = sys.argv[1:10]
port, n, warmup = int(port), int(n), int(warmup)

def login(fields):
    c = http.client.HTTPConnection(host, port)
    c.request("POST", "/admin/login", urllib.parse.urlencode(fields),
              {"content-type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); r.read()
    cookie = [v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("ss3_admin=")]
    assert r.status == 303 and cookie, (r.status, r.getheaders())
    return cookie[0].split(";")[0]

store = {"cookie": login({"api_key": key})}
oper = {"cookie": login({"operator_token": "tok", "store_id": store_id})}
bearer = {"authorization": "Bearer " + key}

def cursor_of(path):
    """The nextCursor of a page, so a later page can be timed (keyset paging: a cursor deep in the log costs what
    the first page does)."""
    c = http.client.HTTPConnection(host, port)
    c.request("GET", path, headers=bearer)
    r = c.getresponse(); page = json.loads(r.read())
    assert r.status == 200 and page.get("nextCursor"), (path, r.status)
    return urllib.parse.quote(page["nextCursor"])

# Two weeks back (the middle of a 30-day log), and one day of it.
day = lambda ago: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - ago * 86400))
mid_from, mid_to = day(15), day(14)
page2 = cursor_of("/deliveries")
deep = cursor_of(f"/deliveries?to={mid_to}")
paths = [
    ("GET /deliveries", "/deliveries", bearer),
    ("GET /deliveries (page 2, cursor)", f"/deliveries?cursor={page2}", bearer),
    ("GET /deliveries (cursor two weeks back)", f"/deliveries?cursor={deep}", bearer),
    ("GET /deliveries?status=FAILED", "/deliveries?status=FAILED", bearer),
    ("GET /deliveries?status=DEAD_LETTERED", "/deliveries?status=DEAD_LETTERED", bearer),
    ("GET /deliveries?eventType=order.paid", "/deliveries?eventType=order.paid", bearer),
    ("GET /deliveries?from&to (one day, two weeks back)", f"/deliveries?from={mid_from}&to={mid_to}", bearer),
    ("GET /deliveries?subscriptionId", f"/deliveries?subscriptionId={sub}", bearer),
    ("GET /subscriptions/{id}/deliveries?status=DELIVERED&eventType=order.paid",
     f"/subscriptions/{sub}/deliveries?status=DELIVERED&eventType=order.paid", bearer),
    ("GET /subscriptions/{id}/deliveries?from&to", f"/subscriptions/{sub}/deliveries?from={mid_from}&to={mid_to}", bearer),
    ("GET /dead-letters", "/dead-letters", bearer),
    ("GET /stats?days=30", "/stats?days=30", bearer),
    ("GET /subscriptions/{id}/stats?days=30", f"/subscriptions/{sub}/stats?days=30", bearer),
    ("/admin", "/admin", store),
    ("/admin/stats", "/admin/stats", store),
    ("/admin/subscriptions/{id}", f"/admin/subscriptions/{sub}", store),
    ("/admin/subscriptions/{id}/stats", f"/admin/subscriptions/{sub}/stats", store),
    ("/admin/deliveries", "/admin/deliveries", store),
    ("/admin/deliveries?status=DEAD_LETTERED", "/admin/deliveries?status=DEAD_LETTERED", store),
    ("/admin/deliveries?event_type=order.paid", "/admin/deliveries?event_type=order.paid", store),
    ("/admin/deliveries?event_type=order.refunded (none)", "/admin/deliveries?event_type=order.refunded", store),
    ("/admin/deliveries?status=CANCELLED&event_type=customer.created",
     "/admin/deliveries?status=CANCELLED&event_type=customer.created", store),
    ("/admin/deliveries/{id}", f"/admin/deliveries/{dlv}", store),
    ("/admin/dead-letters", "/admin/dead-letters", store),
    ("/admin/event-types", "/admin/event-types", store),
    ("/admin/credentials (operator)", "/admin/credentials", oper),
    ("/admin/outbox (operator)", "/admin/outbox", oper),
    ("/admin/quarantine (operator)", "/admin/quarantine", oper),
]
conns = {}
def get(path, headers):
    c = conns.setdefault(id(headers), http.client.HTTPConnection(host, port))
    t = time.perf_counter()
    c.request("GET", path, headers=headers)
    r = c.getresponse(); body = r.read()
    return (time.perf_counter() - t) * 1000, r.status, len(body)

samples = {label: [] for label, _, _ in paths}
status = {}
for rnd in range(warmup + n):
    for label, path, headers in paths:
        ms, st, size = get(path, headers)
        status[label] = (st, size)
        if st != 200:
            sys.exit(f"{label}: HTTP {st}")
        if rnd >= warmup:
            samples[label].append(ms)

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]
print(f"| path | n | p50 ms | p95 ms | max ms | bytes |")
print(f"|---|---|---|---|---|---|")
for label, xs in samples.items():
    print(f"| {label} | {len(xs)} | {pct(xs, 50):.1f} | {pct(xs, 95):.1f} | {max(xs):.1f} | {status[label][1]} |")
json.dump(samples, open(out, "w"))
PY

echo "# load before timing: $(uptime | sed 's/.*load average: //')"
python3 "$OUT/client.py" 127.0.0.1 "$port" "$API_KEY" "$SUB" "$DEL" "$N" "$WARMUP" "$OUT/samples.json" "$STORE" | tee "$OUT/table.md"
echo "# load after timing: $(uptime | sed 's/.*load average: //')"

# The statement of db::stats::daily as the service runs it (the window of db::stats::counters, 30 days), for one
# subscription and for the store: EXPLAIN of the first execution of the prepared statement (Postgres' custom plan
# for these values) and of the seventh (plan_cache_mode auto: from the sixth on, Postgres may switch to the generic
# plan, and a pooled connection of the service keeps that one).
WINDOW_SUBSCRIPTION="subscription_id = \$4 AND {T} >= \$2 AND {T} < \$3 AND store_id = \$1"
WINDOW_STORE="store_id = \$1 AND {T} >= \$2 AND {T} < \$3"
COLUMNS="subscription_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors"
# Both counter tables within the window (db::stats::counters): {WH} and {WD}, the window on hour and on day.
COUNTERS="(SELECT hour AS t, $COLUMNS FROM webhook_stats_hourly WHERE {WH} UNION ALL SELECT day, $COLUMNS FROM webhook_stats_daily WHERE {WD}) AS c"
# The latency histogram's 13 buckets (workflows::stats::LATENCY_BUCKETS), summed one by one.
BUCKETS=$(for i in $(seq 1 13); do printf 'COALESCE(sum(latency[%s]), 0), ' "$i"; done)
STATEMENTS=(
  "SELECT date_trunc('day', t, 'UTC'), sum(delivered_first)::bigint, sum(delivered_retry)::bigint, sum(dead_lettered)::bigint, sum(retrying)::bigint, ARRAY[${BUCKETS%, }]::bigint[], array_agg(errors) FILTER (WHERE errors <> '{}') FROM $COUNTERS GROUP BY 1"
)
{
  echo "SET TimeZone = 'UTC';"
  for q in "${STATEMENTS[@]}"; do
    for scope in subscription store; do
      if [ $scope = subscription ]; then w=$WINDOW_SUBSCRIPTION id="'$SUB'"; else w=$WINDOW_STORE id=NULL; fi
      args="'$STORE', date_trunc('day', now()) - interval '29 days', now(), $id"
      wh=${w//\{T\}/hour} wd=${w//\{T\}/day}
      stmt=${q//\{WH\}/$wh}
      stmt=${stmt//\{WD\}/$wd}
      echo "PREPARE q(text, timestamptz, timestamptz, uuid) AS $stmt;"
      echo "\\echo '=== $scope ($id): ${q:0:70}…'"
      echo "\\echo '--- first execution'"
      echo "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q($args);"
      echo "\\o /dev/null"
      for _ in 1 2 3 4 5; do echo "EXECUTE q($args);"; done
      echo "\\o"
      echo "\\echo '--- seventh execution'"
      echo "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q($args);"
      echo "DEALLOCATE q;"
    done
  done
} >"$OUT/explain.sql"
psql "$PGURL/$DB" -v ON_ERROR_STOP=1 -qAt -f "$OUT/explain.sql" | tee "$OUT/explain.txt"

if [ "${PLANS:-0}" = 1 ]; then
  # The plans of the very statements the service sends, with its parameters: a second api process whose
  # connections load auto_explain (superuser connection options), one round of the client, the log read back.
  PGLOG=${PGLOG:-/var/log/postgresql/postgresql-15-main.log}
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  OPTS="options=-c%20session_preload_libraries%3Dauto_explain%20-c%20auto_explain.log_min_duration%3D${PLAN_MS:-0}%20-c%20auto_explain.log_analyze%3Don%20-c%20auto_explain.log_buffers%3Don%20-c%20auto_explain.log_timing%3Doff"
  start_serve "$OUT/serve-plans.log" "$PGURL/$DB?$OPTS" api "$BIN" || { kill "$SERVE_PID" 2>/dev/null; exit 1; }
  SPID=$SERVE_PID port=$SERVE_PORT
  from=$(stat -c %s "$PGLOG")
  python3 "$OUT/client.py" 127.0.0.1 "$port" "$API_KEY" "$SUB" "$DEL" 1 0 "$OUT/samples-plans.json" "$STORE" >/dev/null
  tail -c +"$((from + 1))" "$PGLOG" | tee "$OUT/plans.txt"
fi
