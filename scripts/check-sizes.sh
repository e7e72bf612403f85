#!/usr/bin/env bash
# Production files stay under ~400 lines of production code (split by concern); an inline `#[cfg(test)] mod tests`
# at the end does not count. A file that may not is listed here with its reason.
# Functions over 60 lines are clippy's `too_many_lines` (clippy.toml), denied by .ci/run's clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=420
declare -A REASON=(
)
status=0
while IFS= read -r file; do
  lines=$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n+0 }' "$file")
  if [ "$lines" -gt "$LIMIT" ] && [ -z "${REASON[$file]:-}" ]; then
    echo "check-sizes: $file has $lines lines (limit $LIMIT): split it by concern, or list it here with a reason" >&2
    status=1
  fi
done < <(git ls-files '*.rs' | grep -Ev '^(tests/|vendor/)|/tests\.rs$|/tests/')
exit $status
