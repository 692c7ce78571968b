#!/usr/bin/env bash
# The test command (README): formatting, lints, then every test, against real
# servers on 127.0.0.1 (the embedded target, a throwaway PostgreSQL cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Load tests share two cores: run two at a time so they do not starve each other.
scripts/with-postgres.sh cargo test --workspace -- --test-threads="${VOLLEY_TEST_THREADS:-2}"
