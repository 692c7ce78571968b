#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster on 127.0.0.1:
#   scripts/with-postgres.sh cargo test
# Exports DATABASE_URL (superuser, trust auth) and VOLLEY_PG_BIN; the cluster
# and its files are removed when the command ends, also on failure.
set -euo pipefail

find_bin() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

PGBIN=$(find_bin || true)
if [ -z "$PGBIN" ]; then
  echo "with-postgres: PostgreSQL server binaries not found; installing them with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  PGBIN=$(find_bin)
fi

# The server may come from elsewhere (VOLLEY_PG_SERVER_BIN: initdb, pg_ctl and
# postgres, as scripts/fetch-postgres.sh unpacks them); clients (psql,
# pgbench) stay the machine's.
SERVER_BIN=${VOLLEY_PG_SERVER_BIN:-$PGBIN}
for b in initdb pg_ctl postgres; do
  [ -x "$SERVER_BIN/$b" ] || { echo "with-postgres: $SERVER_BIN/$b not found: VOLLEY_PG_SERVER_BIN must name a PostgreSQL bin directory (scripts/fetch-postgres.sh prints one)" >&2; exit 2; }
done
SERVER_ENV=()
if [ -d "$SERVER_BIN/../lib" ] && [ "$SERVER_BIN" != "$PGBIN" ]; then
  SERVER_ENV=(env "LD_LIBRARY_PATH=$SERVER_BIN/../lib")
fi

DIR=$(mktemp -d /tmp/volley-pg.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# initdb and postgres refuse to run as root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "${SERVER_ENV[@]}" "$@"; else "${SERVER_ENV[@]}" "$@"; fi
}
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --create-home postgres
  chown postgres "$DIR"
fi

cleanup() {
  as_pg "$SERVER_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

as_pg "$SERVER_BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$SERVER_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=${VOLLEY_PG_MAX_CONNECTIONS:-200} -c fsync=off -c synchronous_commit=off -c shared_preload_libraries=pg_stat_statements ${VOLLEY_PG_SERVER_OPTS:-}" \
  start >/dev/null

export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
export VOLLEY_PG_BIN="$PGBIN"
export VOLLEY_PG_PORT="$PORT"
echo "with-postgres: throwaway cluster at $DATABASE_URL" >&2
"$@"
