#!/usr/bin/env bash
# Does a fresh clone get to a report with only the README's commands?
#
#   scripts/fresh-clone.sh
#
# Clones this repository's committed HEAD (uncommitted changes are not in
# the clone: commit first) into a temporary directory, then runs there,
# exactly as written in README.md:
#   1. the "First run" block (the fenced block after the fresh-clone
#      marker): cargo install, volley serve, volley run of
#      fixtures/plans/smoke.toml, which must write smoke-report.html;
#   2. the demo command at the top (cargo run --release -- demo), which
#      must write volley-report.html.
#
# Bounded: the First run block gets BUILD_TIMEOUT seconds (3600: it builds
# volley), the demo RUN_TIMEOUT (600); each is killed with its children
# (volley serve included) when its time is up, and the script fails.
#
# Cheap: builds go to this checkout's target directory (CARGO_TARGET_DIR,
# ./target unless set), so dependencies built there before (a release
# build, or a previous run of this script) are not built again: only the
# workspace's own crates compile at the clone's path. Without a release
# build there yet, the first run builds everything once (CI: one release
# build beside the tests' debug one). `cargo install` puts volley in the
# temporary directory (CARGO_INSTALL_ROOT, first on PATH), never in
# ~/.cargo/bin. Needs port 8080 free (the README's address).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_TIMEOUT=${BUILD_TIMEOUT:-3600}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  echo "fresh-clone: port 8080 is taken; the README's commands use it" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/volley-fresh.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
git clone -q "$ROOT" "$WORK/volley"
export CARGO_INSTALL_ROOT=$WORK/root
export PATH=$WORK/root/bin:$PATH
cd "$WORK/volley"

# README's First run block: the ```sh fence after the marker line.
block=$(awk '/fresh-clone\.sh runs the commands of the next block/ { m = 1; next }
             m && /^```sh/ { b = 1; next }
             b && /^```/ { exit }
             b { print }' README.md)
[ -n "$block" ] || { echo "fresh-clone: no First run block after the marker in README.md" >&2; exit 1; }
demo=$(grep -m1 '^cargo run --release -- demo' README.md | sed 's/ *#.*$//')
[ -n "$demo" ] || { echo "fresh-clone: no demo command in README.md" >&2; exit 1; }

# Each in its own bash, which stops the jobs it started (volley serve) when
# it ends, also on failure; timeout signals the whole process group.
run() { # SECONDS WHAT COMMANDS
  echo "fresh-clone: $2" >&2
  if ! timeout --kill-after=10 "$1" bash -c "trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT
set -euo pipefail
$3"; then
    echo "fresh-clone: FAILED: $2 (in $WORK/volley)" >&2
    exit 1
  fi
}

run "$BUILD_TIMEOUT" "README First run: $(echo "$block" | grep -c .) commands" "$block"
[ -s smoke-report.html ] || { echo "fresh-clone: the First run wrote no smoke-report.html" >&2; exit 1; }
run "$RUN_TIMEOUT" "README demo: $demo" "$demo"
[ -s volley-report.html ] || { echo "fresh-clone: the demo wrote no volley-report.html" >&2; exit 1; }
echo "fresh-clone: OK: a fresh clone got to smoke-report.html and volley-report.html with the README's commands" >&2
