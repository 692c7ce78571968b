#!/usr/bin/env bash
# The test command (README): formatting, lints, then every test, against real
# servers on 127.0.0.1 (the embedded target, a throwaway PostgreSQL cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Load tests share two cores: run two at a time so they do not starve each other.
threads="${VOLLEY_TEST_THREADS:-2}"
# Under nextest (.config/nextest.toml) a test that hangs is killed after 5
# minutes; cargo test has no such limit, so it is only the fallback. There
# are no doctests (nextest does not run them): add `cargo test --doc` here
# with the first one.
if cargo nextest --version >/dev/null 2>&1; then
  scripts/with-postgres.sh cargo nextest run --workspace --test-threads="$threads"
else
  echo "test.sh: cargo-nextest is not installed (cargo install cargo-nextest --locked); running cargo test, without per-test time limits" >&2
  scripts/with-postgres.sh cargo test --workspace -- --test-threads="$threads"
fi
