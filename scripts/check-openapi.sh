#!/usr/bin/env bash
# docs/openapi.json must be the document the service serves (`integration-service openapi`): clients and
# schemathesis read the committed file, so a handler change without a regenerated document fails CI here.
set -euo pipefail
cd "$(dirname "$0")/.."
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
cargo run --quiet --bin integration-service -- openapi > "$generated"
if ! diff -u docs/openapi.json "$generated"; then
    echo "check-openapi: docs/openapi.json is stale; regenerate it:" >&2
    echo "    cargo run --bin integration-service -- openapi > docs/openapi.json" >&2
    exit 1
fi
echo "check-openapi: docs/openapi.json matches integration-service openapi"
