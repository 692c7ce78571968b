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
# SMALL-session run); then the modes' memory per session side by side.
# Aim: <= 8 KB per session, and no drops or losses caused by volley.
#
# One process holds at most its open-file limit of sockets (volley raises its
# soft limit to the hard one; this script raises the hard one too when it
# may). Past that, websocket mode splits the sessions over PROCS pairs of
# volley + volley serve (each pair its own port and rooms, all volley
# processes on core 0, all servers on core 1) and adds their figures up:
# PROCS=auto (the default) uses as few pairs as the limit allows.
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
#   MODES=websocket SESSIONS=50000 SMALL=5000 RAMP=60s RATE=30 scripts/bench-ws.sh
#                                      # 50,000 held at 30 messages/min each; a
#                                      # gentle ramp (~800 new sessions/s) for
#                                      # the one-core servers
#   MODES=websocket SESSIONS=500 SMALL=100 DURATION=3 scripts/bench-ws.sh
#                                      # a smoke check of the script (figures mean nothing)
#   MODES=socket.io SESSIONS=200 SMALL=50 HOLD=5s SIO_RAMP=5s scripts/bench-ws.sh
#   PROFILE=debug SESSIONS=200 ...     # a quick check of the script itself (figures mean nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"websocket socket.io"}
SESSIONS=${SESSIONS:-10000}
SMALL=${SMALL:-100}
# DURATION=N (seconds) holds and ramps N s each: a smoke check of the script.
HOLD=${HOLD:-${DURATION:+${DURATION}s}}
HOLD=${HOLD:-30s}
RAMP=${RAMP:-${DURATION:+${DURATION}s}}
RAMP=${RAMP:-10s}
RATE=${RATE:-12}        # messages per minute per participant (websocket)
SIO_RATE=${SIO_RATE:-2} # the same, for Socket.IO
SIO_RAMP=${SIO_RAMP:-30s}
ROOM=${ROOM:-5}
PORT=${PORT:-18480}
PROFILE=${PROFILE:-release}
PROCS=${PROCS:-auto}

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
BIN=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE/volley

# Every session is a socket in volley and one in the server (both inherit
# this shell's limits); root may raise the hard limit (with CAP_SYS_RESOURCE).
need=$((SESSIONS + 512))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
  ulimit -Hn "$need" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
[ "$limit" = unlimited ] && limit=$need
per=$(((limit - 512) / ROOM * ROOM))
if [ "$PROCS" = auto ]; then
  PROCS=$(((SESSIONS + per - 1) / per))
fi
if [ $(((SESSIONS + PROCS - 1) / PROCS)) -gt "$per" ]; then
  echo "the open-file limit is $limit: $SESSIONS sessions need PROCS=$(((SESSIONS + per - 1) / per)) or more" >&2
  exit 1
fi
if [ "$PROCS" -gt 1 ] && [[ " $MODES " == *" socket.io "* ]]; then
  echo "the open-file limit is $limit: $SESSIONS Socket.IO sessions do not fit one python-socketio server; use MODES=websocket or fewer sessions" >&2
  exit 1
fi

tmp=$(mktemp -d)
SERVERS=()
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  for s in "${SERVERS[@]}"; do kill "$s" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Server i's own counts, and the key of its open sessions in them.
stats() {
  if [ "$MODE" = socket.io ]; then
    curl -s "http://127.0.0.1:$((PORT + $1))/stats"
  else
    curl -s "http://127.0.0.1:$((PORT + $1))/__volley/stats"
  fi
}
open_key() { if [ "$MODE" = socket.io ]; then echo '["open"]'; else echo '["chat"]["open"]'; fi; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

start_servers() { # how many
  local i
  SERVERS=()
  for i in $(seq 0 $(($1 - 1))); do
    if [ "$MODE" = socket.io ]; then
      taskset -c 1 python3 "$peers/socketio_chat.py" --port "$((PORT + i))" --namespace /chat \
        --ignore-stdin --lifetime 86400 >"$tmp/serve.$i.log" 2>&1 &
    else
      taskset -c 1 "$BIN" serve --addr "127.0.0.1:$((PORT + i))" --threads 1 >"$tmp/serve.$i.log" 2>&1 &
    fi
    SERVERS+=($!)
  done
  for i in $(seq 0 $(($1 - 1))); do
    local up=""
    for _ in $(seq 100); do
      stats "$i" >/dev/null 2>&1 && { up=1; break; }
      sleep 0.1
    done
    if [ -z "$up" ]; then
      echo "the $MODE server on port $((PORT + i)) did not start:" >&2
      cat "$tmp/serve.$i.log" >&2
      exit 1
    fi
  done
}

stop_servers() {
  for s in "${SERVERS[@]}"; do kill "$s" 2>/dev/null || true; done
  for s in "${SERVERS[@]}"; do wait "$s" 2>/dev/null || true; done
  SERVERS=()
}

plan() { # participants port -> the plan, on stdout
  if [ "$MODE" = socket.io ]; then
    cat <<EOF
[scenarios.chat]
driver = "websocket"
protocol = "socket.io"
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "$SIO_RAMP", target = $1 }, { duration = "$HOLD", target = $1 }]
url = "http://127.0.0.1:$2"
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
    cat <<EOF
[scenarios.chat]
driver = "websocket"
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "$RAMP", target = $1 }, { duration = "$HOLD", target = $1 }]
url = "ws://127.0.0.1:$2/ws/chat"
room_size = $ROOM
messages_per_minute = $RATE
deadline = "2s"
connect_timeout = "20s"
EOF
  fi
}

# run N: N participants in $MODE over $PROCS pairs (whole rooms each); leaves
# each process's time -v output and summary, each server's counts, and the
# most sessions the servers held at once.
run() {
  local n=$1 tag="$MODE.$1" procs=$PROCS i
  [ "$n" -lt "$procs" ] && procs=1
  echo "$procs" >"$tmp/procs.$tag"
  start_servers "$procs"
  echo 0 >"$tmp/held.$tag"
  echo 0 >"$tmp/holdrss.$tag"
  local share=$((n / procs / ROOM * ROOM)) pids=()
  for i in $(seq 0 $((procs - 1))); do
    local m=$share
    [ "$i" = $((procs - 1)) ] && m=$((n - share * (procs - 1)))
    plan "$m" "$((PORT + i))" >"$tmp/plan.$i.toml"
    taskset -c 0 /usr/bin/time -v -o "$tmp/time.$tag.$i" "$BIN" run "$tmp/plan.$i.toml" --quiet --workers 1 \
      --summary-export "$tmp/summary.$tag.$i.json" >"$tmp/out.$tag.$i" 2>&1 &
    pids+=($!)
  done
  # Each second: the sessions the servers hold, and volley's resident memory
  # (VmRSS of the volley processes under /usr/bin/time) while all are held:
  # peak RSS alone also counts what the run's end allocates.
  local key
  key=$(open_key)
  (
    max=0 rss_max=0
    while sleep 1; do
      open=0
      for j in $(seq 0 $((procs - 1))); do
        open=$((open + $(stats "$j" 2>/dev/null | field "$key" 2>/dev/null || echo 0)))
      done
      if [ "$open" -gt "$max" ]; then max=$open; echo "$max" >"$tmp/held.$tag"; fi
      if [ $((open * 100)) -ge $((n * 99)) ]; then
        rss=0
        for t in "${pids[@]}"; do
          for v in $(pgrep -P "$t"); do
            rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$v/status" 2>/dev/null || echo 0)))
          done
        done
        if [ "$rss" -gt "$rss_max" ]; then rss_max=$rss; echo "$rss_max" >"$tmp/holdrss.$tag"; fi
      fi
    done
  ) &
  SAMPLER=$!
  for p in "${pids[@]}"; do wait "$p" || true; done
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SAMPLER=""
  # Server CPU seconds (utime + stime), to tell which side was the bottleneck.
  local ticks=0
  for i in $(seq 0 $((procs - 1))); do
    stats "$i" >"$tmp/server.$tag.$i.json"
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/${SERVERS[$i]}/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}' >"$tmp/server_cpu.$tag"
  stop_servers
}

# Sums over a run's processes (max for latency percentiles).
rss_kb() { cat "$tmp"/time."$1".* | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); s += $2} END {print s}'; }
cpu_s() { cat "$tmp"/time."$1".* | awk -F: '/User time|System time/ {s += $2} END {printf "%.1f", s}'; }
metric() { # tag metric field
  python3 - "$tmp" "$1" "$2" "$3" <<'EOF'
import glob, json, sys
tmp, tag, metric, field = sys.argv[1:]
vals = []
for f in sorted(glob.glob(f"{tmp}/summary.{tag}.*.json")):
    vals.append(json.load(open(f))["metrics"].get(metric, {}).get("values", {}).get(field, 0))
print(max(vals) if field.startswith("p(") else sum(vals))
EOF
}
server_sum() { # tag key
  python3 - "$tmp" "$1" "$2" <<'EOF'
import glob, json, sys
tmp, tag, key = sys.argv[1:]
total = 0
for f in glob.glob(f"{tmp}/server.{tag}.*.json"):
    v = json.load(open(f))
    for k in json.loads(key):
        v = v[k]
    total += v
print(total)
EOF
}

echo "volley websocket bench: $SESSIONS sessions (hold $HOLD), rooms of $ROOM; modes: $MODES; $PROFILE build"
echo "servers on core 1 (volley serve --threads 1, or python-socketio); volley: --workers 1 on core 0"
echo "open-file limit $limit: $PROCS volley process(es) for $SESSIONS sessions"
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
  hold_big=$(cat "$tmp/holdrss.$tag")
  hold_small=$(cat "$tmp/holdrss.$MODE.$SMALL")
  if [ "$MODE" = socket.io ]; then
    rate=$SIO_RATE ramp=$SIO_RAMP
    server_note="server: sent $(server_sum "$tag" '["messages"]'), delivered $(server_sum "$tag" '["deliveries"]'); acks missing $(metric "$tag" ws_acks_missing count)"
  else
    rate=$RATE ramp=$RAMP
    server_note="dropped by the server: $(server_sum "$tag" '["chat", "drops"]')"
  fi

  printf '\n== %s (ramp %s, %s msgs/min each; %s process(es))\n' "$MODE" "$ramp" "$rate" "$(cat "$tmp/procs.$tag")"
  printf '%-34s %s\n' "sessions held (servers, peak):" "$held"
  printf '%-34s %.0f (dropped or failed: %.0f; %s)\n' "sessions opened (volley):" "$sessions" "$drops" "$server_note"
  printf '%-34s sent %.0f/s, received %.0f/s (lost %.0f, p95 latency %.1f ms)\n' "messages:" "$sent_rate" "$recv_rate" "$lost" "$p95"
  if [ "$hold_big" = 0 ] || [ "$hold_small" = 0 ]; then
    # The sampler looks once a second (longer on a busy machine).
    echo "note: RSS was not sampled while all sessions were held; use a longer HOLD" >&2
  fi
  printf '%-34s %s KB (%s sessions), %s KB (%s sessions)\n' "volley RSS, all sessions held:" "$hold_big" "$n" "$hold_small" "$SMALL"
  printf '%-34s %s KB (%s sessions), %s KB (%s sessions)\n' "volley peak RSS (whole run):" "$rss_big" "$n" "$rss_small" "$SMALL"
  printf '%-34s %s s (servers: %s s)\n' "volley CPU (user+sys):" "$(cpu_s "$tag")" "$(cat "$tmp/server_cpu.$tag")"
  python3 - "$MODE" "$hold_big" "$hold_small" "$rss_big" "$held" "$n" "$SMALL" >>"$tmp/table" <<'EOF'
import sys
mode = sys.argv[1]
big, small, peak, held, n, small_n = (float(x) for x in sys.argv[2:])
nan = float("nan")
per = big / (held or n) if big else nan
marginal = (big - small) / (n - small_n) if n != small_n and big and small else nan
print(f"{mode:10} {held or 0:>8.0f} {big / 1024:>10.1f} {per:>12.1f} {marginal:>14.1f} {peak / 1024:>10.1f}")
EOF
  if [ "${drops%.*}" != "0" ]; then
    echo "note: $drops sessions dropped or failed; errors by kind:" >&2
    python3 - "$tmp" "$tag" >&2 <<'EOF'
import glob, json, sys
tmp, tag = sys.argv[1:]
for f in sorted(glob.glob(f"{tmp}/summary.{tag}.*.json")):
    for x in json.load(open(f))["series"]:
        if x["metric"] == "ws_errors":
            print("  ", x["tags"].get("error"), x["count"])
EOF
  fi
done

printf '\nvolley memory per session (%s sessions; load average after: %s)\n' "$SESSIONS" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "RSS while all sessions are held (summed over volley processes); KB/added one: against the SMALL run"
printf '%-10s %8s %10s %12s %14s %10s\n' "mode" "held" "RSS MB" "KB/session" "KB/added one" "peak MB"
cat "$tmp/table"
