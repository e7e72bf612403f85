#!/usr/bin/env bash
# vendor/sqlx-core must be the registry's sqlx-core 0.9.0 plus the TCP_NODELAY hunk of vendor/sqlx-core.patch, and
# nothing else: a stray edit to the 17k vendored lines fails CI. See vendor/README.md for when to drop the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.9.0
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
find_upstream() { ls -d "$registry"/*/sqlx-core-"$version" 2>/dev/null | head -n 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
upstream=$(find_upstream || true)
if [ -z "$upstream" ]; then
    # The patch means cargo never downloads the published crate for this workspace: fetch it in a scratch one.
    mkdir -p "$work/fetch/src"
    : > "$work/fetch/src/lib.rs"
    printf '[package]\nname = "fetch-sqlx-core"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nsqlx-core = "=%s"\n' \
        "$version" > "$work/fetch/Cargo.toml"
    (cd "$work/fetch" && cargo fetch --quiet)
    upstream=$(find_upstream || true)
fi
if [ -z "$upstream" ]; then
    echo "check-vendor: cannot find sqlx-core $version in $registry" >&2
    exit 2
fi
ln -s "$upstream" "$work/a"
ln -s "$PWD/vendor/sqlx-core" "$work/b"
# Files cargo adds when it unpacks a crate are not part of it.
(cd "$work" && diff -ru --exclude=.cargo_vcs_info.json --exclude=.cargo-ok --exclude=Cargo.lock a b || true) |
    sed -E 's/^((---|\+\+\+) [^\t]+)\t.*/\1/' > "$work/actual.patch"
if ! diff -u vendor/sqlx-core.patch "$work/actual.patch"; then
    echo "check-vendor: vendor/sqlx-core differs from sqlx-core $version by more (or less) than vendor/sqlx-core.patch" >&2
    exit 1
fi
echo "check-vendor: vendor/sqlx-core is sqlx-core $version plus vendor/sqlx-core.patch only"
