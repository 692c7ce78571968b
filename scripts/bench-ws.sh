#!/usr/bin/env bash
# WebSocket chat at scale: 10,000 concurrent sessions held for 30 s (after a
# ramp), server pinned to core 1, volley to core 0, once per mode:
#
#   websocket  plain WebSocket against the embedded chat server (volley serve)
#   socket.io  Socket.IO against a python-socketio server (tests/peers/socketio_chat.py,
#              the real library users run; volley serve has no Engine.IO mode)
#
# Prints, per mode: sessions held, messages/s, volley's peak RSS and CPU, and
# memory per session (whole process, and the marginal cost from a second,
# 100-session run); then the modes' memory per session side by side.
# Aim: < 64 KB per session, and no drops caused by volley.
#
# The python-socketio server is one Python process: it holds 10,000 sessions
# but relays far fewer messages per second than volley serve, so Socket.IO
# runs at SIO_RATE (default 2 messages per minute per participant) and ramps
# over SIO_RAMP (default 30s); a server that cannot keep up shows as latency,
# lost messages and Engine.IO ping timeouts, not as volley's memory.
#
# Figures move with the machine's load (printed): on a shared machine, other
# processes' CPU shows up as latency and, at worst, as pong timeouts.
#
#   scripts/bench-ws.sh                # SESSIONS=10000 HOLD=30s RAMP=10s RATE=12, both modes
#   SESSIONS=2000 HOLD=10s scripts/bench-ws.sh
#   MODES=socket.io SESSIONS=200 SMALL=50 HOLD=5s SIO_RAMP=5s scripts/bench-ws.sh
#   PROFILE=debug SESSIONS=200 ...     # a quick check of the script itself (figures mean nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"websocket socket.io"}
SESSIONS=${SESSIONS:-10000}
SMALL=${SMALL:-100}
HOLD=${HOLD:-30s}
RAMP=${RAMP:-10s}
RATE=${RATE:-12}        # messages per minute per participant (websocket)
SIO_RATE=${SIO_RATE:-2} # the same, for Socket.IO
SIO_RAMP=${SIO_RAMP:-30s}
ROOM=${ROOM:-5}
PORT=${PORT:-18480}
PROFILE=${PROFILE:-release}

for mode in $MODES; do
  case $mode in
    websocket | socket.io) ;;
    *) echo "unknown mode $mode in MODES; use websocket and/or socket.io" >&2; exit 2 ;;
  esac
done
peers=$PWD/tests/peers
export PYTHONPATH="$peers/python_modules${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $MODES " == *" socket.io "* ]] && ! python3 -c 'import socketio, aiohttp' 2>/dev/null; then
  echo "socket.io mode needs python-socketio and aiohttp: run .ci/run, or pip install --target $peers/python_modules python-socketio aiohttp" >&2
  exit 1
fi

if [ "$PROFILE" = release ]; then
  cargo build --release --quiet
else
  cargo build --quiet
fi
BIN=$PWD/target/$PROFILE/volley
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

# The server's own counts, and the key of its open sessions in them.
stats() {
  if [ "$MODE" = socket.io ]; then
    curl -s "http://127.0.0.1:$PORT/stats"
  else
    curl -s "http://127.0.0.1:$PORT/__volley/stats"
  fi
}
open_key() { if [ "$MODE" = socket.io ]; then echo '["open"]'; else echo '["chat"]["open"]'; fi; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

start_server() {
  if [ "$MODE" = socket.io ]; then
    taskset -c 1 python3 "$peers/socketio_chat.py" --port "$PORT" --namespace /chat \
      --ignore-stdin --lifetime 86400 >"$tmp/serve.log" 2>&1 &
  else
    taskset -c 1 "$BIN" serve --addr "127.0.0.1:$PORT" --threads 1 >"$tmp/serve.log" 2>&1 &
  fi
  SERVER=$!
  for _ in $(seq 100); do
    stats >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the $MODE server did not start:" >&2
  cat "$tmp/serve.log" >&2
  exit 1
}

stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

# run N: one volley run of N participants in $MODE; leaves time -v output,
# summary and the most sessions the server held.
run() {
  local n=$1 tag="$MODE.$1"
  if [ "$MODE" = socket.io ]; then
    cat >"$tmp/plan.toml" <<EOF
[scenarios.chat]
driver = "websocket"
protocol = "socket.io"
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "$SIO_RAMP", target = $n }, { duration = "$HOLD", target = $n }]
url = "http://127.0.0.1:$PORT"
namespace = "/chat"
room_size = $ROOM
messages_per_minute = $SIO_RATE
deadline = "2s"
connect_timeout = "20s"
join = { event = "join", data = { room = "{{ room }}", user = "{{ user }}" } }
message = { event = "chat", data = { text = "{{ rand_string(24) }}", nonce = "{{ msg.id }}" } }
ack = true
correlate = "/nonce"
receive = { sender = "/user" }
EOF
  else
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
  fi
  start_server
  echo 0 >"$tmp/held.$tag"
  local key
  key=$(open_key)
  (
    max=0
    while sleep 1; do
      open=$(stats 2>/dev/null | field "$key" 2>/dev/null || echo 0)
      if [ "$open" -gt "$max" ]; then max=$open; echo "$max" >"$tmp/held.$tag"; fi
    done
  ) &
  SAMPLER=$!
  taskset -c 0 /usr/bin/time -v "$BIN" run "$tmp/plan.toml" --quiet --workers 1 \
    --summary-export "$tmp/summary.$tag.json" >"$tmp/out.$tag" 2>"$tmp/time.$tag" || true
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SAMPLER=""
  stats >"$tmp/server.$tag.json"
  # Server CPU seconds (utime + stime), to tell which side was the bottleneck.
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$SERVER/stat" >"$tmp/server_cpu.$tag" || true
  stop_server
}

rss_kb() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tmp/time.$1"; }
cpu_s() { awk -F: '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$tmp/time.$1"; }
metric() { python3 -c "import json; m=json.load(open('$tmp/summary.$1.json'))['metrics']; print(m.get('$2', {}).get('values', {}).get('$3', 0))"; }

echo "volley websocket bench: $SESSIONS sessions (hold $HOLD), rooms of $ROOM; modes: $MODES; $PROFILE build"
echo "server on core 1 (volley serve --threads 1, or python-socketio); volley: --workers 1 on core 0"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$tmp/table"
for MODE in $MODES; do
  run "$SMALL"
  run "$SESSIONS"

  n=$SESSIONS
  tag="$MODE.$n"
  held=$(cat "$tmp/held.$tag")
  sessions=$(metric "$tag" ws_sessions count)
  drops=$(metric "$tag" ws_drop_rate passes)
  lost=$(metric "$tag" ws_msgs_lost count)
  sent_rate=$(metric "$tag" ws_msgs_sent rate)
  recv_rate=$(metric "$tag" ws_msgs_received rate)
  p95=$(metric "$tag" ws_msg_latency 'p(95)')
  rss_big=$(rss_kb "$tag")
  rss_small=$(rss_kb "$MODE.$SMALL")
  if [ "$MODE" = socket.io ]; then
    rate=$SIO_RATE ramp=$SIO_RAMP
    server_note="server: sent $(field '["messages"]' <"$tmp/server.$tag.json"), delivered $(field '["deliveries"]' <"$tmp/server.$tag.json"); acks missing $(metric "$tag" ws_acks_missing count)"
  else
    rate=$RATE ramp=$RAMP
    server_note="dropped by the server: $(field '["chat"]["drops"]' <"$tmp/server.$tag.json")"
  fi

  printf '\n== %s (ramp %s, %s msgs/min each)\n' "$MODE" "$ramp" "$rate"
  printf '%-34s %s\n' "sessions held (server, peak):" "$held"
  printf '%-34s %.0f (dropped or failed: %.0f; %s)\n' "sessions opened (volley):" "$sessions" "$drops" "$server_note"
  printf '%-34s sent %.0f/s, received %.0f/s (lost %.0f, p95 latency %.1f ms)\n' "messages:" "$sent_rate" "$recv_rate" "$lost" "$p95"
  printf '%-34s %s KB (%s sessions), %s KB (%s sessions)\n' "volley peak RSS:" "$rss_big" "$n" "$rss_small" "$SMALL"
  printf '%-34s %s s (server: %s s)\n' "volley CPU (user+sys):" "$(cpu_s "$tag")" "$(cat "$tmp/server_cpu.$tag")"
  python3 - "$MODE" "$rss_big" "$rss_small" "$held" "$n" "$SMALL" >>"$tmp/table" <<'EOF'
import sys
mode = sys.argv[1]
big, small, held, n, small_n = (float(x) for x in sys.argv[2:])
per = big / (held or n)
marginal = (big - small) / (n - small_n) if n != small_n else float("nan")
print(f"{mode:10} {held or 0:>8.0f} {big / 1024:>10.1f} {per:>12.1f} {marginal:>14.1f}")
EOF
  if [ "${drops%.*}" != "0" ]; then
    echo "note: $drops sessions dropped or failed; errors by kind:" >&2
    python3 -c "import json; s=json.load(open('$tmp/summary.$tag.json')); [print('  ', x['tags'].get('error'), x['count']) for x in s['series'] if x['metric']=='ws_errors']" >&2
  fi
done

printf '\nvolley memory per session (%s sessions; load average after: %s)\n' "$SESSIONS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %8s %10s %12s %14s\n' "mode" "held" "RSS MB" "KB/session" "KB/added one"
cat "$tmp/table"
