#!/usr/bin/env bash
# volley against pgbench on the same throwaway PostgreSQL cluster, the same
# query (select one account by random id from pgbench_accounts, 1M rows,
# `pgbench -i -s 10`, keys included, prepared statements on both sides), the
# same number of connections (10 and 50; one per pgbench client, one per
# volley VU with connections = "per-vu").
#
# Server pinned to core 1, generator to core 0 (docs/benchmarking.md); 3 runs per
# tool and connection count, alternating tools (and which goes first);
# medians. Like for like:
#
#   steady TPS  the median of the per-second rates once every session is up
#               (pgbench -P 1; volley --out json), first and last second
#               left out. pgbench's own "tps" leaves its connection time
#               out, while volley's VUs connect inside the run's duration:
#               at 50 connections on one busy server core that is 0.4-1 s
#               of a 10 s run, which is what made volley look 0.91x.
#   run TPS     queries over the whole run, connecting included, for both.
#   server us   the server's CPU (all postgres processes, /proc) per query
#               over a window in the middle of the run, queries counted by
#               pg_stat_statements: the work one query costs the server.
#
# Also prints both latency averages and generator CPU seconds per 100k
# queries.
#
#   scripts/bench-pg.sh                # 10 s runs
#   BENCH_SECONDS=5 BENCH_RUNS=1 BENCH_CLIENTS=50 scripts/bench-pg.sh
#   DURATION=3 BENCH_RUNS=1 BENCH_CLIENTS=50 scripts/bench-pg.sh   # a smoke check (figures mean nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${BENCH_SECONDS:-${DURATION:-10}}
RUNS=${BENCH_RUNS:-3}
CLIENTS=${BENCH_CLIENTS:-"10 50"}

if [ -z "${VOLLEY_BENCH_INNER:-}" ]; then
  cargo build --release --quiet
  export VOLLEY_BENCH_INNER=1
  # The 1M accounts and their key (~150 MB) fit in shared buffers, as for
  # any select-only pgbench: at the default 128 MB, 4-8% of page lookups went
  # to the OS cache, more for whichever tool ran first after the load.
  export VOLLEY_PG_SERVER_OPTS="-c shared_buffers=256MB ${VOLLEY_PG_SERVER_OPTS:-}"
  exec scripts/with-postgres.sh "$PWD/scripts/bench-pg.sh" "$@"
fi

: "${DATABASE_URL:?run through scripts/with-postgres.sh}"
PGBIN=$VOLLEY_PG_BIN
PORT=$VOLLEY_PG_PORT
VOLLEY=${CARGO_TARGET_DIR:-$PWD/target}/release/volley
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
# Counts each execution as it ends (scripts/with-postgres.sh preloads it).
pg -d bench -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 || true
HZ=$(getconf CLK_TCK)

# CPU seconds (user + sys) of a command, from /usr/bin/time -v.
cpu_of() {
  awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.3f", u + s}' "$1"
}

executions() {
  pg -d bench -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%FROM pgbench_accounts WHERE aid%'" 2>/dev/null || echo 0
}

# perf counts the server's context switches and system calls where the
# kernel lets it (tracepoints); without it, CPU comes from /proc alone.
PERF=""
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
  PERF=perf
fi

# While a run goes, over its middle (30% to 80% of the run, every session long
# up), per query: the server's CPU microseconds (every postgres process), its
# context switches and system calls. Prints "us ctxsw syscalls", "-" if unknown.
server_window() {
  sleep "$(awk -v s="$SECONDS_PER_RUN" 'BEGIN {print s * 0.3}')"
  local span pids a b
  span=$(awk -v s="$SECONDS_PER_RUN" 'BEGIN {print s * 0.5}')
  pids=$(pgrep -d, -P "$PM")
  a=$(executions)
  if [ -n "$PERF" ]; then
    perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$pids" \
      -o "$WORK/perf" -- sleep "$span" 2>/dev/null
    b=$(executions)
    awk -F, -v n=$((b - a)) '$3 == "task-clock" {t = $1} $3 == "context-switches" {c = $1}
      $3 == "raw_syscalls:sys_enter" {s = $1}
      END {if (n > 0) printf "%.1f %.3f %.3f\n", t * 1000 / n, c / n, s / n; else print "- - -"}' "$WORK/perf"
  else
    local t0 t1 pid
    t0=0 t1=0
    for pid in ${pids//,/ }; do t0=$((t0 + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
    sleep "$span"
    b=$(executions)
    for pid in ${pids//,/ }; do t1=$((t1 + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
    awk -v n=$((b - a)) -v t=$((t1 - t0)) -v hz="$HZ" \
      'BEGIN {if (n > 0) printf "%.1f - -\n", t / hz * 1e6 / n; else print "- - -"}'
  fi
}

# Median of a column of numbers.
median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR + 1) / 2)] : "-")}'; }

# Per-second rates on stdin, one a line: the median without the first and the
# last second (sessions still connecting, the run winding down).
steady() { awk '{a[NR]=$1} END {for (i = 2; i < NR; i++) print a[i]}' | median; }

run_pgbench() { # clients -> "steady_tps run_tps latency_ms cpu_s queries server_us ctxsw syscalls"
  local c=$1 out="$WORK/pgbench.out" tm="$WORK/pgbench.time"
  server_window >"$WORK/window" &
  local win=$!
  taskset -c 0 /usr/bin/time -v -o "$tm" \
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -S -M prepared \
    -c "$c" -j 1 -T "$SECONDS_PER_RUN" -P 1 bench >"$out" 2>&1
  wait "$win"
  local st lat n
  st=$(awk '/^progress:/ {print $4}' "$out" | steady)
  lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  n=$(awk '/number of transactions actually processed:/ {print $6; exit}' "$out")
  echo "$st $(awk -v n="$n" -v s="$SECONDS_PER_RUN" 'BEGIN {printf "%.1f", n / s}') $lat $(cpu_of "$tm") $n $(cat "$WORK/window")"
}

run_volley() { # clients -> "steady_tps run_tps latency_ms cpu_s queries server_us ctxsw syscalls"
  local c=$1 plan="$WORK/plan.toml" tm="$WORK/volley.time" sum="$WORK/summary.json"
  cat >"$plan" <<EOP
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
EOP
  server_window >"$WORK/window" &
  local win=$!
  taskset -c 0 /usr/bin/time -v -o "$tm" \
    "$VOLLEY" run "$plan" --quiet --workers 1 --summary-export "$sum" \
    --out "json=$WORK/series.json" >/dev/null
  wait "$win"
  local st
  st=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["metric"] == "pg_queries":
        print(r["count"])
' "$WORK/series.json" | steady)
  python3 - "$sum" "$st" "$(cpu_of "$tm")" "$(cat "$WORK/window")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
m = s["metrics"]
n = m["pg_queries"]["values"]["count"]
failed = m.get("pg_query_failed", {}).get("values", {}).get("passes", 0)
if failed:
    sys.exit(f"volley: {failed} queries failed")
tps = n / s["volley"]["duration_s"]
print(f'{sys.argv[2]} {tps:.1f} {m["pg_query_duration"]["values"]["avg"]:.3f} {sys.argv[3]} {int(n)} {sys.argv[4]}')
PY
}

printf '\n%-7s %10s %10s %6s %9s %9s %6s %9s %9s %8s %8s %17s %17s\n' \
  clients "pgb steady" "vol steady" ratio "pgb run" "vol run" ratio "pgb lat" "vol lat" "pgb CPU" "vol CPU" "pgb srv/q" "vol srv/q"
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
    echo "bench-pg: $c connections, run $i (steady_tps run_tps lat_ms cpu_s queries srv_us ctxsw syscalls): pgbench $(tail -1 "$WORK/p.$c") | volley $(tail -1 "$WORK/v.$c")" >&2
  done
  col() { awk -v k="$2" '$k != "-" {print $k}' "$1" | median; }
  per100k() { awk '{printf "%.3f\n", $4 / $5 * 100000}' "$1" | median; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", (b > 0 ? a / b : 0)}'; }
  p_st=$(col "$WORK/p.$c" 1); v_st=$(col "$WORK/v.$c" 1)
  # Each run's volley/pgbench ratio of steady TPS (the two ran back to back),
  # and their median: a drift in the machine's speed moves both of a pair. A
  # run without a steady figure ("-", too short) makes no pair.
  pairs=$(paste -d' ' "$WORK/v.$c" "$WORK/p.$c" | awk '$1 + 0 > 0 && $9 + 0 > 0 {printf "%.2f ", $1 / $9}')
  paired=$(echo "$pairs" | tr ' ' '\n' | grep . | median)
  p_run=$(col "$WORK/p.$c" 2); v_run=$(col "$WORK/v.$c" 2)
  srv() { echo "$(col "$1" 6)us $(col "$1" 7)cs $(col "$1" 8)sc"; }
  printf '%-7s %10.0f %10.0f %6s %9.0f %9.0f %6s %7.3fms %7.3fms %7.2fs %7.2fs %17s %17s\n' \
    "$c" "$p_st" "$v_st" "$(ratio "$v_st" "$p_st")" "$p_run" "$v_run" "$(ratio "$v_run" "$p_run")" \
    "$(col "$WORK/p.$c" 3)" "$(col "$WORK/v.$c" 3)" "$(per100k "$WORK/p.$c")" "$(per100k "$WORK/v.$c")" \
    "$(srv "$WORK/p.$c")" "$(srv "$WORK/v.$c")"
  echo "$c connections: volley/pgbench steady TPS run by run: $pairs-> median ${paired}x" >>"$WORK/pairs"
done
cat "$WORK/pairs"
echo
echo "Medians of $RUNS runs of ${SECONDS_PER_RUN}s; pgbench -S -M prepared -j 1; volley per-vu, --workers 1."
echo "steady: per-second TPS once connected; run: queries / run time, connecting included;"
echo "CPU: generator user+sys seconds per 100k queries; srv/q: per query over the middle of"
echo "the run, the server's CPU (us), context switches (cs) and system calls (sc; perf)."
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
