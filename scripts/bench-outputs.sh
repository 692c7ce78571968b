#!/usr/bin/env bash
# What the pushing outputs and the live dashboard cost: volley's req/s with
# and without `--out influxdb` (to a real influxd), `--out prometheus-rw` (to
# a real prometheus) and `--dashboard` (with a page reading its stream), same
# loopback server, alternating, RUNS times each; medians and the ratio to the
# plain run, of req/s and of volley's CPU seconds (user+sys) per 100k
# requests: the CPU an output adds shows there even when the machine's
# drift moves req/s by more. The bar: within 5% of the plain run.
#
#   scripts/bench-outputs.sh [CONNECTIONS] [SECONDS] [RUNS]
#
# Needs influxd and prometheus (Debian packages influxdb, prometheus:
# installed when missing). Server on core 1, volley on core 0, the databases
# on whatever is left (see docs/benchmarking.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${1:-50}
SECS=${2:-10}
RUNS=${3:-3}
missing=()
command -v influxd >/dev/null || missing+=(influxdb)
command -v prometheus >/dev/null || missing+=(prometheus)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release -q
BIN=$PWD/target/release/volley
WORK=$(mktemp -d /tmp/volley-bench-outputs.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port); INFLUX=$(free_port); INFLUX_RPC=$(free_port); PROM=$(free_port); DASH=$(free_port)
URL="http://127.0.0.1:$PORT/api/v1/health"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

taskset -c 1 "$BIN" serve --addr "127.0.0.1:$PORT" --threads 1 >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC"
[meta]
  dir = "$WORK/influx/meta"
[data]
  dir = "$WORK/influx/data"
  wal-dir = "$WORK/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
influxd -config "$WORK/influxdb.conf" >"$WORK/influxd.log" 2>&1 &
PIDS+=($!)
printf 'global:\n  scrape_interval: 1h\n' >"$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
  --web.listen-address="127.0.0.1:$PROM" --web.enable-remote-write-receiver >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "$URL" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$INFLUX/ping" >/dev/null 2>&1 \
    && curl -sf "http://127.0.0.1:$PROM/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done

cat >"$WORK/plan.toml" <<PLAN
[scenarios.bench]
driver = "http"
executor = "constant-vus"
vus = $CONNS
duration = "${SECS}s"
graceful_stop = "2s"

[[scenarios.bench.requests]]
url = "$URL"
PLAN

run() { # NAME ARGS...
  local name=$1; shift
  local reader=""
  if [[ " $* " == *" --dashboard="* ]]; then
    # A page reading the stream while the run goes.
    ( for _ in $(seq 100); do curl -sfN "http://127.0.0.1:$DASH/events" >/dev/null 2>&1 && break; sleep 0.1; done ) &
    reader=$!
  fi
  /usr/bin/time -v -o "$WORK/$name.time" taskset -c 0 "$BIN" run "$WORK/plan.toml" --quiet --workers 1 \
    --summary-export "$WORK/$name.json" "$@" >/dev/null 2>"$WORK/$name.err"
  [ -n "$reader" ] && { kill "$reader" 2>/dev/null || true; wait "$reader" 2>/dev/null || true; }
  [ -s "$WORK/$name.json" ] || { echo "bench-outputs: the $name run wrote no summary:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
  local cpu
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.3f", u + s}' "$WORK/$name.time")
  # "req/s cpu_s_per_100k"
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]["http_reqs"]["values"]; print(round(m["rate"]), "%.3f" % (float(sys.argv[2]) / m["count"] * 1e5))' "$WORK/$name.json" "$cpu"
}

declare -A RESULTS CPU
record() { # NAME ARGS...
  local out
  out=$(run "$@")
  RESULTS[$1]+="${out% *} "
  CPU[$1]+="${out#* } "
}
for i in $(seq "$RUNS"); do
  record plain
  record influxdb --out "influxdb=http://127.0.0.1:$INFLUX/bench"
  record prometheus_rw --out "prometheus-rw=http://127.0.0.1:$PROM/api/v1/write,push=1s"
  record dashboard "--dashboard=127.0.0.1:$DASH"
  record all --out "influxdb=http://127.0.0.1:$INFLUX/bench" "--dashboard=127.0.0.1:$DASH"
  echo "run $i/$RUNS done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
base=$(echo "${RESULTS[plain]}" | median)
cbase=$(echo "${CPU[plain]}" | median)
printf '%-16s %10s %8s %10s %8s   runs (req/s; CPU s per 100k)\n' "volley" "req/s" "ratio" "CPU/100k" "ratio"
for k in plain influxdb prometheus_rw dashboard all; do
  m=$(echo "${RESULTS[$k]}" | median)
  c=$(echo "${CPU[$k]}" | median)
  printf '%-16s %10s %8s %10s %8s   %s; %s\n' "$k" "$m" "$(python3 -c "print(f'{$m/$base:.3f}')")" \
    "$c" "$(python3 -c "print(f'{$c/$cbase:.3f}')")" "${RESULTS[$k]}" "${CPU[$k]}"
done
grep -h "points dropped" "$WORK"/*.err || true
