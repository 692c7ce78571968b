#!/usr/bin/env bash
# WebSocket chat at scale: 10,000 concurrent sessions against the embedded
# chat server for 30 s (after a 10 s ramp), server pinned to core 1, volley
# to core 0. Prints sessions held, messages/s, volley's peak RSS and CPU, and
# memory per session (whole process, and the marginal cost from a second,
# 100-session run). Aim: < 64 KB per session, and no drops caused by volley.
#
# Figures move with the machine's load (printed): on a shared machine, other
# processes' CPU shows up as latency and, at worst, as pong timeouts.
#
#   scripts/bench-ws.sh                # SESSIONS=10000 HOLD=30s RAMP=10s RATE=12
#   SESSIONS=2000 HOLD=10s scripts/bench-ws.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-10000}
SMALL=${SMALL:-100}
HOLD=${HOLD:-30s}
RAMP=${RAMP:-10s}
RATE=${RATE:-12}        # messages per minute per participant
ROOM=${ROOM:-5}
PORT=${PORT:-18480}

cargo build --release --quiet
BIN=$PWD/target/release/volley
ulimit -n "$(ulimit -Hn)"
need=$((SESSIONS + 512))
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "the open-file limit is $(ulimit -n); $SESSIONS sessions need about $need (raise ulimit -Hn)" >&2
  exit 1
fi

tmp=$(mktemp -d)
SERVER=""
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

stats() { curl -s "http://127.0.0.1:$PORT/__volley/stats"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

start_server() {
  taskset -c 1 "$BIN" serve --addr "127.0.0.1:$PORT" --threads 1 >"$tmp/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    stats >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$tmp/serve.log" >&2
  exit 1
}

stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

# run N: one volley run of N participants; leaves time -v output, summary and the most sessions the server held.
run() {
  local n=$1
  cat >"$tmp/plan.toml" <<EOF
[scenarios.chat]
driver = "websocket"
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "$RAMP", target = $n }, { duration = "$HOLD", target = $n }]
url = "ws://127.0.0.1:$PORT/ws/chat"
room_size = $ROOM
messages_per_minute = $RATE
deadline = "2s"
connect_timeout = "20s"
EOF
  start_server
  echo 0 >"$tmp/held.$n"
  (
    max=0
    while sleep 1; do
      open=$(stats 2>/dev/null | field '["chat"]["open"]' 2>/dev/null || echo 0)
      if [ "$open" -gt "$max" ]; then max=$open; echo "$max" >"$tmp/held.$n"; fi
    done
  ) &
  SAMPLER=$!
  taskset -c 0 /usr/bin/time -v "$BIN" run "$tmp/plan.toml" --quiet --workers 1 \
    --summary-export "$tmp/summary.$n.json" >"$tmp/out.$n" 2>"$tmp/time.$n" || true
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SAMPLER=""
  stats >"$tmp/server.$n.json"
  # Server CPU seconds (utime + stime), to tell which side was the bottleneck.
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$SERVER/stat" >"$tmp/server_cpu.$n" || true
  stop_server
}

rss_kb() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tmp/time.$1"; }
cpu_s() { awk -F: '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$tmp/time.$1"; }
metric() { python3 -c "import json; m=json.load(open('$tmp/summary.$1.json'))['metrics']; print(m.get('$2', {}).get('values', {}).get('$3', 0))"; }

echo "volley websocket bench: $SESSIONS sessions (ramp $RAMP, hold $HOLD), rooms of $ROOM, $RATE msgs/min each"
echo "server: volley serve --threads 1 on core 1; volley: --workers 1 on core 0"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run "$SMALL"
run "$SESSIONS"

n=$SESSIONS
held=$(cat "$tmp/held.$n")
sessions=$(metric "$n" ws_sessions count)
drops=$(metric "$n" ws_drop_rate passes)
lost=$(metric "$n" ws_msgs_lost count)
sent_rate=$(metric "$n" ws_msgs_sent rate)
recv_rate=$(metric "$n" ws_msgs_received rate)
p95=$(metric "$n" ws_msg_latency 'p(95)')
server_drops=$(field '["chat"]["drops"]' <"$tmp/server.$n.json")
rss_big=$(rss_kb "$n")
rss_small=$(rss_kb "$SMALL")

printf '\n%-34s %s\n' "sessions held (server, peak):" "$held"
printf '%-34s %.0f (dropped or failed: %.0f; dropped by the server: %s)\n' "sessions opened (volley):" "$sessions" "$drops" "$server_drops"
printf '%-34s sent %.0f/s, received %.0f/s (lost %.0f, p95 latency %.1f ms)\n' "messages:" "$sent_rate" "$recv_rate" "$lost" "$p95"
printf '%-34s %s KB (%s sessions), %s KB (%s sessions)\n' "volley peak RSS:" "$rss_big" "$n" "$rss_small" "$SMALL"
printf '%-34s %s s (server: %s s)\n' "volley CPU (user+sys):" "$(cpu_s "$n")" "$(cat "$tmp/server_cpu.$n")"
printf '%-34s %s\n' "load average after:" "$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$rss_big" "$rss_small" "$held" "$n" "$SMALL" <<'EOF'
import sys
big, small, held, n, small_n = (float(x) for x in sys.argv[1:])
held = held or n
print(f"{'KB per session (RSS / held):':34} {big / held:.1f}")
print(f"{'KB per added session (marginal):':34} {(big - small) / (n - small_n):.1f}")
EOF
if [ "${drops%.*}" != "0" ] || [ "$server_drops" != "0" ]; then
  echo "note: $drops sessions dropped or failed ($server_drops dropped by the server); errors by kind:" >&2
  python3 -c "import json; s=json.load(open('$tmp/summary.$n.json')); [print('  ', x['tags'].get('error'), x['count']) for x in s['series'] if x['metric']=='ws_errors']" >&2
fi
