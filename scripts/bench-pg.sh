#!/usr/bin/env bash
# volley against pgbench on the same throwaway PostgreSQL cluster, the same
# query (select one account by random id from pgbench_accounts, 1M rows,
# `pgbench -i -s 10`, keys included, prepared statements on both sides), the
# same number of connections (10 and 50; one per pgbench client, one per
# volley VU with connections = "per-vu").
#
# Server pinned to core 1, generator to core 0 (docs/benchmarking.md); 3 runs per
# tool and connection count, alternating tools (and which goes first);
# medians; prints both TPS, the ratio, both latency averages and generator
# CPU seconds per 100k queries.
#
#   scripts/bench-pg.sh                # 10 s runs
#   BENCH_SECONDS=5 scripts/bench-pg.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
CLIENTS=${BENCH_CLIENTS:-"10 50"}

if [ -z "${VOLLEY_BENCH_INNER:-}" ]; then
  cargo build --release --quiet
  export VOLLEY_BENCH_INNER=1
  exec scripts/with-postgres.sh "$PWD/scripts/bench-pg.sh" "$@"
fi

: "${DATABASE_URL:?run through scripts/with-postgres.sh}"
PGBIN=$VOLLEY_PG_BIN
PORT=$VOLLEY_PG_PORT
VOLLEY=$PWD/target/release/volley
WORK=$(mktemp -d /tmp/volley-bench-pg.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

pg() { "$PGBIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

# Server on core 1: the postmaster and every backend it forks from now on.
DATA=$(pg -d postgres -c "SHOW data_directory")
PM=$(head -1 "$DATA/postmaster.pid")
taskset -a -p -c 1 "$PM" >/dev/null
for child in $(pgrep -P "$PM"); do taskset -a -p -c 1 "$child" >/dev/null; done

echo "bench-pg: pgbench -i -s 10 (1M accounts)" >&2
pg -d postgres -c "CREATE DATABASE bench"
"$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 10 -q bench >/dev/null 2>&1
URL="postgres://postgres@127.0.0.1:$PORT/bench"

# CPU seconds (user + sys) of a command, from /usr/bin/time -v.
cpu_of() {
  awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.3f", u + s}' "$1"
}

run_pgbench() { # clients -> "tps latency_ms cpu_s queries"
  local c=$1 out="$WORK/pgbench.out" tm="$WORK/pgbench.time"
  taskset -c 0 /usr/bin/time -v -o "$tm" \
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -S -M prepared \
    -c "$c" -j 1 -T "$SECONDS_PER_RUN" bench >"$out" 2>&1
  local tps lat n
  tps=$(awk '/^tps = / {print $3; exit}' "$out")
  lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  n=$(awk '/number of transactions actually processed:/ {print $6; exit}' "$out")
  echo "$tps $lat $(cpu_of "$tm") $n"
}

run_volley() { # clients -> "tps latency_ms cpu_s queries"
  local c=$1 plan="$WORK/plan.toml" tm="$WORK/volley.time" sum="$WORK/summary.json"
  cat >"$plan" <<EOF
[scenarios.select]
driver = "postgres"
database_url = "$URL"
connections = "per-vu"
executor = "constant-vus"
vus = $c
duration = "${SECONDS_PER_RUN}s"
sample_activity = false

[[scenarios.select.queries]]
name = "account"
sql = "SELECT abalance FROM pgbench_accounts WHERE aid = \$1"
params = ["{{ rand_int(1, 1000000) }}"]
EOF
  taskset -c 0 /usr/bin/time -v -o "$tm" \
    "$VOLLEY" run "$plan" --quiet --workers 1 --summary-export "$sum" >/dev/null
  python3 - "$sum" "$(cpu_of "$tm")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
m = s["metrics"]
n = m["pg_queries"]["values"]["count"]
failed = m.get("pg_query_failed", {}).get("values", {}).get("passes", 0)
if failed:
    sys.exit(f"volley: {failed} queries failed")
tps = n / s["volley"]["duration_s"]
print(f'{tps:.1f} {m["pg_query_duration"]["values"]["avg"]:.3f} {sys.argv[2]} {int(n)}')
PY
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

printf '\n%-8s %12s %12s %7s %13s %13s %15s %15s\n' \
  clients "pgbench TPS" "volley TPS" ratio "pgbench lat" "volley lat" "pgbench CPU/100k" "volley CPU/100k"
for c in $CLIENTS; do
  : >"$WORK/p.$c"
  : >"$WORK/v.$c"
  for i in $(seq "$RUNS"); do
    # Alternate which tool goes first, so a drift in machine load favours neither.
    if [ $((i % 2)) = 1 ]; then
      run_pgbench "$c" >>"$WORK/p.$c"
      run_volley "$c" >>"$WORK/v.$c"
    else
      run_volley "$c" >>"$WORK/v.$c"
      run_pgbench "$c" >>"$WORK/p.$c"
    fi
    echo "bench-pg: $c connections, run $i: pgbench $(tail -1 "$WORK/p.$c") | volley $(tail -1 "$WORK/v.$c")" >&2
  done
  col() { awk -v k="$2" '{print $k}' "$1" | median; }
  per100k() { awk '{printf "%.3f\n", $3 / $4 * 100000}' "$1" | median; }
  p_tps=$(col "$WORK/p.$c" 1); v_tps=$(col "$WORK/v.$c" 1)
  p_lat=$(col "$WORK/p.$c" 2); v_lat=$(col "$WORK/v.$c" 2)
  p_cpu=$(per100k "$WORK/p.$c"); v_cpu=$(per100k "$WORK/v.$c")
  printf '%-8s %12.0f %12.0f %6.2fx %11.3fms %11.3fms %14.2fs %14.2fs\n' \
    "$c" "$p_tps" "$v_tps" "$(awk -v a="$v_tps" -v b="$p_tps" 'BEGIN {print a / b}')" \
    "$p_lat" "$v_lat" "$p_cpu" "$v_cpu"
done
echo
echo "TPS and latency: medians of $RUNS runs of ${SECONDS_PER_RUN}s; pgbench -S -M prepared -j 1;"
echo "volley per-vu, --workers 1. CPU: generator user+sys seconds per 100k queries."
