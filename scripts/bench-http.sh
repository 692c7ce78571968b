#!/usr/bin/env bash
# volley against wrk, same loopback server, same connection count, in one run.
#
#   scripts/bench-http.sh [CONNECTIONS] [SECONDS] [RUNS]
#
# The server (volley serve, one thread) is pinned to core 1, the generator to
# core 0 (see docs/benchmarking.md). Each tool runs RUNS times, alternating;
# medians are printed with the ratio. volley records every request into its
# histograms (nothing is sampled away). Also prints peak RSS, generator CPU
# seconds per 100k requests, and the memory cost of one more VU (50 vs 1000).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${1:-50}
SECS=${2:-10}
RUNS=${3:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release -q
BIN=$PWD/target/release/volley
WORK=$(mktemp -d /tmp/volley-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT/api/v1/health"

taskset -c 1 "$BIN" serve --addr "127.0.0.1:$PORT" --threads 1 >"$WORK/serve.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
for _ in $(seq 50); do curl -sf "$URL" >/dev/null 2>&1 && break; sleep 0.1; done

plan() { # VUS SECS THINK
  cat >"$WORK/plan-$1.toml" <<EOF
[scenarios.bench]
driver = "http"
executor = "constant-vus"
vus = $1
duration = "${2}s"
graceful_stop = "2s"
${3:+think_time = \"$3\"}

[[scenarios.bench.requests]]
url = "$URL"
EOF
  echo "$WORK/plan-$1.toml"
}

# /usr/bin/time -v fields -> "cpu_seconds peak_rss_kb"
usage() {
  awk -F': ' '/User time/{u=$2} /System time/{s=$2} /Maximum resident/{r=$2} END{printf "%.2f %d\n", u+s, r}' "$1"
}

run_wrk() {
  /usr/bin/time -v -o "$WORK/time" taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$URL" >"$WORK/wrk.out"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.out")
  # wrk prints latency percentiles with units (us, ms, s): normalise to ms.
  p50=$(awk '$1=="50%"{print $2}' "$WORK/wrk.out")
  p99=$(awk '$1=="99%"{print $2}' "$WORK/wrk.out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $(usage "$WORK/time")"
}

to_ms() {
  python3 -c "import re,sys; v=sys.argv[1]; n,u=re.match(r'([0-9.]+)(\w+)',v).groups(); print(round(float(n)*{'us':0.001,'ms':1,'s':1000}[u],3))" "$1"
}

run_volley() { # VUS [THINK]
  local p
  p=$(plan "$1" "$SECS" "${2:-}")
  /usr/bin/time -v -o "$WORK/time" taskset -c 0 "$BIN" run "$p" --quiet --workers 1 \
    --summary-export "$WORK/v.json" >/dev/null
  python3 - "$WORK/v.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
m = s["metrics"]
d = m["http_req_duration"]["values"]
print(f'{m["http_reqs"]["values"]["rate"]:.0f} {d["med"]:.3f} {d["p(99)"]:.3f}', end=" ")
EOF
  usage "$WORK/time"
}

median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "server: volley serve (1 thread, core 1); generators on core 0; $CONNS connections, ${SECS}s, $RUNS runs each"
: >"$WORK/wrk.rows"; : >"$WORK/volley.rows"
for i in $(seq "$RUNS"); do
  run_wrk | tee -a "$WORK/wrk.rows" | sed "s/^/  wrk    run $i: req\/s p50ms p99ms cpu_s rss_kb = /"
  run_volley "$CONNS" | tee -a "$WORK/volley.rows" | sed "s/^/  volley run $i: req\/s p50ms p99ms cpu_s rss_kb = /"
done

col() { awk -v c="$2" '{print $c}' "$1" | median; }
W_RPS=$(col "$WORK/wrk.rows" 1); V_RPS=$(col "$WORK/volley.rows" 1)
W_CPU=$(col "$WORK/wrk.rows" 4); V_CPU=$(col "$WORK/volley.rows" 4)
python3 - "$W_RPS" "$V_RPS" "$W_CPU" "$V_CPU" "$SECS" \
  "$(col "$WORK/wrk.rows" 2)" "$(col "$WORK/wrk.rows" 3)" "$(col "$WORK/volley.rows" 2)" "$(col "$WORK/volley.rows" 3)" \
  "$(col "$WORK/wrk.rows" 5)" "$(col "$WORK/volley.rows" 5)" <<'EOF'
import sys
w, v, wc, vc, secs, wp50, wp99, vp50, vp99, wrss, vrss = map(float, sys.argv[1:])
per = lambda cpu, rps: cpu / (rps * secs) * 1e5
print(f"\nmedians          {'wrk':>10} {'volley':>10}")
print(f"req/s            {w:>10.0f} {v:>10.0f}   ratio volley/wrk = {v / w:.2f}")
print(f"p50 ms           {wp50:>10.3f} {vp50:>10.3f}")
print(f"p99 ms           {wp99:>10.3f} {vp99:>10.3f}")
print(f"CPU s / 100k req {per(wc, w):>10.2f} {per(vc, v):>10.2f}   ratio = {per(vc, v) / per(wc, w):.2f}")
print(f"peak RSS MB      {wrss / 1024:>10.1f} {vrss / 1024:>10.1f}")
EOF

# Memory per VU: 50 vs 1000 VUs (each VU holds a keep-alive connection).
R50=$(run_volley 50 "50ms" | awk '{print $5}')
R1K=$(run_volley 1000 "50ms" | awk '{print $5}')
python3 -c "import sys; a,b=int(sys.argv[1]),int(sys.argv[2]); print(f'peak RSS: 50 VUs {a/1024:.1f} MB, 1000 VUs {b/1024:.1f} MB -> {(b-a)/950:.1f} KB per added VU')" "$R50" "$R1K"

# 10,000 VUs, each a keep-alive connection making a request a second.
cat >"$WORK/plan-10k.toml" <<EOF2
[scenarios.many]
driver = "http"
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "5s", target = 10000 }, { duration = "10s", target = 10000 }]
graceful_stop = "5s"
think_time = "1s"

[[scenarios.many.requests]]
url = "$URL"
EOF2
/usr/bin/time -v -o "$WORK/time" "$BIN" run "$WORK/plan-10k.toml" --quiet --summary-export "$WORK/10k.json" >/dev/null
python3 - "$WORK/10k.json" "$(usage "$WORK/time" | awk '{print $2}')" <<'EOF2'
import json, sys
s = json.load(open(sys.argv[1]))["metrics"]
print(f'10,000 VUs: peak VUs {s["vus"]["values"]["max"]:.0f}, {s["http_reqs"]["values"]["count"]:.0f} requests, '
      f'{s["http_req_failed"]["values"]["passes"]:.0f} failed, peak RSS {int(sys.argv[2]) / 1024:.0f} MB')
EOF2
