#!/usr/bin/env bash
# Run Denwa's whole test suite: installs the real peers the tests use (sipp, baresip, PostgreSQL, ...),
# checks formatting and lints, then runs every test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/test-deps.sh

# The build needs about 1.5 GB under target/; say so up front rather than fail mid-compile.
free_mb=$(df -Pm . | awk 'NR==2 {print $4}')
if [ -n "$free_mb" ] && [ "$free_mb" -lt 2048 ]; then
  echo "test.sh: warning: only ${free_mb} MB free here; the test build needs about 1,500 MB" >&2
fi

# Incremental caches would add ~1.5 GB to a one-shot build; set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --failure-output final
else
  cargo test --workspace --locked --no-fail-fast
fi
