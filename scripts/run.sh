#!/usr/bin/env bash
# Runs the service on a fresh machine: starts the local PostgreSQL if it is down, then `integration-service serve`
# with every role. Kafka is used when SS3_KAFKA__BROKERS is set; otherwise events arrive over POST /events.
# A development operator token is set unless you provide SS3_ADMIN_TOKEN. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "[run.sh] starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
export SS3_ADMIN_TOKEN="${SS3_ADMIN_TOKEN:-dev-admin-token}"
echo "[run.sh] API on http://${SS3_LISTEN_ADDR:-127.0.0.1:8080} (docs at /docs); operator token: \$SS3_ADMIN_TOKEN" >&2
exec cargo run --release -- serve "$@"
