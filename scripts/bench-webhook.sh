#!/usr/bin/env bash
# Signed webhook deliveries per second: volley's webhook driver against wrk
# POSTing one pre-signed Stripe event, both at the embedded receiver (which
# verifies every signature), side by side in one invocation.
#
#   scripts/bench-webhook.sh [SECONDS] [CONNECTIONS] [ROUNDS]
#
# Prints deliveries/s and generator CPU seconds per 100k deliveries for each,
# medians over ROUNDS alternating runs, and the ratios. wrk sends the same
# bytes every time (the receiver answers 200 "duplicate"); volley renders,
# signs and sends a fresh event each time, so the ratio is the cost of real
# events. Loopback only; every process started here is stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
CONNS=${2:-50}
ROUNDS=${3:-3}
PORT=${BENCH_PORT:-18977}
SECRET=whsec_bench_secret
VOLLEY=target/release/volley
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)"; exit 2; }
[ -x "$VOLLEY" ] || cargo build --release

pin() { # pin CORE CMD... (foreground only): server and generator on different cores
  local core=$1; shift
  if command -v taskset >/dev/null; then taskset -c "$core" "$@"; else "$@"; fi
}

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if curl -fsS "http://127.0.0.1:$PORT/__volley/stats" >/dev/null 2>&1; then
  echo "something already listens on 127.0.0.1:$PORT; set BENCH_PORT"; exit 2
fi
# Started directly (not through a shell function) so that $! is the server.
if command -v taskset >/dev/null; then
  taskset -c 1 "$VOLLEY" serve --addr "127.0.0.1:$PORT" --threads 1 --webhook-secret "$SECRET" >"$WORK/serve.log" 2>&1 &
else
  "$VOLLEY" serve --addr "127.0.0.1:$PORT" --threads 1 --webhook-secret "$SECRET" >"$WORK/serve.log" 2>&1 &
fi
SERVER_PID=$!
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$PORT/__volley/stats" >/dev/null 2>&1 && break
  sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }

# One real event, signed now (valid for the receiver's 300 s tolerance).
EVENT=$(sed -e "s/{{ event.id }}/evt_1bench0000000000000000000/" \
  -e "s/\"{{ event.created }}\"/$(date +%s)/g; s/\"{{ amount }}\"/1999/g; s/\"{{ period_end }}\"/$(date +%s)/g" \
  -e 's/{{ [^}]*}}/x/g' fixtures/webhooks/payment_intent.succeeded.json | tr -d '\n')
printf '%s' "$EVENT" >"$WORK/event.json"
HEADER=$("$VOLLEY" webhook sign --secret "$SECRET" --payload "$WORK/event.json" | sed 's/^Stripe-Signature: //')
cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["Stripe-Signature"] = "$HEADER"
local f = io.open("$WORK/event.json", "rb")
wrk.body = f:read("*a")
f:close()
EOF

cat >"$WORK/plan.toml" <<EOF
[scenarios.bench]
driver = "webhook"
executor = "constant-vus"
vus = $CONNS
duration = "${SECS}s"
endpoint = "http://127.0.0.1:$PORT/webhooks/stripe"
secret = "$SECRET"
events = [{ type = "payment_intent.succeeded" }]
EOF

cpu() { # user+sys seconds from /usr/bin/time -v output
  awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$1"
}
received() { curl -fsS "http://127.0.0.1:$PORT/__volley/stats" | sed 's/.*"received":\([0-9]*\).*/\1/'; }
reset() { curl -fsS -X POST "http://127.0.0.1:$PORT/__volley/reset" >/dev/null; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$WORK/wrk.rps"; : >"$WORK/wrk.cpu"; : >"$WORK/volley.rps"; : >"$WORK/volley.cpu"
for r in $(seq "$ROUNDS"); do
  reset
  pin 0 /usr/bin/time -v wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$WORK/post.lua" \
    "http://127.0.0.1:$PORT/webhooks/stripe" >"$WORK/wrk.out" 2>"$WORK/wrk.time"
  n=$(received)
  echo "$n $SECS" | awk '{printf "%.0f\n", $1/$2}' >>"$WORK/wrk.rps"
  echo "$(cpu "$WORK/wrk.time") $n" | awk '{printf "%.3f\n", $1*100000/$2}' >>"$WORK/wrk.cpu"

  reset
  pin 0 /usr/bin/time -v "$VOLLEY" run "$WORK/plan.toml" --quiet --workers 1 \
    --summary-export "$WORK/summary.json" >"$WORK/volley.out" 2>"$WORK/volley.time" || true
  n=$(received)
  echo "$n $SECS" | awk '{printf "%.0f\n", $1/$2}' >>"$WORK/volley.rps"
  echo "$(cpu "$WORK/volley.time") $n" | awk '{printf "%.3f\n", $1*100000/$2}' >>"$WORK/volley.cpu"
  echo "round $r: wrk $(tail -1 "$WORK/wrk.rps")/s, volley $(tail -1 "$WORK/volley.rps")/s"
done

W_RPS=$(median <"$WORK/wrk.rps"); W_CPU=$(median <"$WORK/wrk.cpu")
V_RPS=$(median <"$WORK/volley.rps"); V_CPU=$(median <"$WORK/volley.cpu")
echo
echo "signed webhook deliveries, ${CONNS} connections, ${SECS}s, median of ${ROUNDS}:"
printf "  %-8s %10s/s  %8s CPU-s per 100k\n" wrk "$W_RPS" "$W_CPU" volley "$V_RPS" "$V_CPU"
awk -v vr="$V_RPS" -v wr="$W_RPS" -v vc="$V_CPU" -v wc="$W_CPU" \
  'BEGIN {printf "  volley/wrk: %.2fx deliveries/s, %.2fx CPU per delivery\n", vr/wr, vc/wc}'
