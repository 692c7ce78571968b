#!/usr/bin/env bash
# HTTP/2: volley (http_version = "2") against h2load, the same target, the
# same connections and concurrent streams, in one run; over h2c (prior
# knowledge) and over TLS (ALPN h2).
#
#   scripts/bench-h2.sh                       # SHAPES="50x1 10x10" PROTOS="h2c tls" SECS=10 RUNS=3
#   SHAPES=50x1 PROTOS=h2c SECS=5 RUNS=1 scripts/bench-h2.sh
#   DURATION=1 RUNS=1 scripts/bench-h2.sh     # a smoke check of the script (figures mean nothing)
#
# A shape CxM is C connections with M streams in flight on each: h2load -c C
# -m M. A volley VU has one request in flight; volley runs C*M VUs with
# vus_per_connection = M, so M VUs share each of C connections: the same
# connections and the same streams in flight on each, like for like.
#
# The target is nginx (one process, pinned to core 1; `return 200`), which
# speaks h2c by prior knowledge and h2 over TLS on two ports: volley serve has
# no TLS. Generators run on core 0, alternating, RUNS times each; medians.
# Prints req/s, generator CPU seconds per 100k requests (user+sys, from
# /usr/bin/time -v) and peak RSS, with volley/h2load ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPES=${SHAPES:-"50x1 10x10"}
PROTOS=${PROTOS:-"h2c tls"}
SECS=${SECS:-${DURATION:-10}}
RUNS=${RUNS:-3}
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/volley
WORK=$(mktemp -d /tmp/volley-bench-h2.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
H2C_PORT=$(free_port)
TLS_PORT=$(free_port)

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $WORK/logs/error.log warn;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/tmp;
  # One connection carries a whole run (nginx closes after 1000 requests by default).
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  http2_max_concurrent_streams 128;
  ssl_certificate $WORK/cert.pem;
  ssl_certificate_key $WORK/key.pem;
  server {
    listen 127.0.0.1:$H2C_PORT http2;
    listen 127.0.0.1:$TLS_PORT ssl http2;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
taskset -c 1 "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
for _ in $(seq 50); do
  h2load -n 1 -c 1 "http://127.0.0.1:$H2C_PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done

# /usr/bin/time -v fields -> "cpu_seconds peak_rss_kb"
usage() {
  awk -F': ' '/User time/{u=$2} /System time/{s=$2} /Maximum resident/{r=$2} END{printf "%.2f %d\n", u+s, r}' "$1"
}

url_of() { if [ "$1" = tls ]; then echo "https://127.0.0.1:$TLS_PORT/"; else echo "http://127.0.0.1:$H2C_PORT/"; fi; }

run_h2load() { # PROTO C M -> "req/s cpu_s rss_kb failed"
  /usr/bin/time -v -o "$WORK/time" taskset -c 0 h2load -t 1 -c "$2" -m "$3" -D "$SECS" \
    "$(url_of "$1")" >"$WORK/h2load.out" 2>&1
  local rps failed
  rps=$(awk '/^finished in/{gsub(",", "", $4); print $4}' "$WORK/h2load.out")
  failed=$(awk '/^requests:/{print $(NF-5)}' "$WORK/h2load.out")
  echo "$rps $(usage "$WORK/time") $failed"
}

run_volley() { # PROTO C M -> "req/s cpu_s rss_kb failed"
  cat >"$WORK/plan.toml" <<EOF
[scenarios.bench]
driver = "http"
executor = "constant-vus"
vus = $(($2 * $3))
vus_per_connection = $3
duration = "${SECS}s"
graceful_stop = "2s"
http_version = "2"
insecure_skip_tls_verify = true

[[scenarios.bench.requests]]
url = "$(url_of "$1")"
EOF
  /usr/bin/time -v -o "$WORK/time" taskset -c 0 "$BIN" run "$WORK/plan.toml" --quiet --workers 1 \
    --summary-export "$WORK/v.json" >"$WORK/volley.out" 2>&1 || { cat "$WORK/volley.out" >&2; return 1; }
  python3 - "$WORK/v.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f'{m["http_reqs"]["values"]["rate"]:.0f}', end=" ")
EOF
  local failed
  failed=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['metrics']; print(int(m['http_req_failed']['values']['passes']))" "$WORK/v.json")
  echo "$(usage "$WORK/time") $failed"
}

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$2" '{print $c}' "$1" | median; }

echo "target: nginx (1 process, core 1, return 200); generators on core 0; ${SECS}s runs, $RUNS each, alternating"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/table"
for proto in $PROTOS; do
  for shape in $SHAPES; do
    c=${shape%x*}
    m=${shape#*x}
    : >"$WORK/h.rows"
    : >"$WORK/v.rows"
    for i in $(seq "$RUNS"); do
      if [ $((i % 2)) = 1 ]; then
        run_h2load "$proto" "$c" "$m" >>"$WORK/h.rows"
        run_volley "$proto" "$c" "$m" >>"$WORK/v.rows"
      else
        run_volley "$proto" "$c" "$m" >>"$WORK/v.rows"
        run_h2load "$proto" "$c" "$m" >>"$WORK/h.rows"
      fi
      echo "  $proto $shape run $i: h2load $(tail -1 "$WORK/h.rows") | volley $(tail -1 "$WORK/v.rows")   (req/s cpu_s rss_kb failed)"
    done
    python3 - "$proto" "$shape" "$SECS" \
      "$(col "$WORK/h.rows" 1)" "$(col "$WORK/v.rows" 1)" \
      "$(col "$WORK/h.rows" 2)" "$(col "$WORK/v.rows" 2)" \
      "$(col "$WORK/h.rows" 3)" "$(col "$WORK/v.rows" 3)" >>"$WORK/table" <<'EOF'
import sys
proto, shape = sys.argv[1:3]
secs, h, v, hc, vc, hr, vr = map(float, sys.argv[3:])
per = lambda cpu, rps: cpu / (rps * secs) * 1e5
print(f"{proto:5} {shape:6} {h:>10.0f} {v:>10.0f} {v / h:>6.2f}x {per(hc, h):>9.2f} {per(vc, v):>9.2f} {per(vc, v) / per(hc, h):>6.2f}x {hr / 1024:>8.1f} {vr / 1024:>8.1f}")
EOF
  done
done
printf '\nmedians of %s runs (CPU: generator user+sys seconds per 100k requests; load average after: %s)\n' "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "CxM: h2load C connections x M streams; volley C*M VUs, M sharing each of C connections"
printf '%-5s %-6s %10s %10s %7s %9s %9s %7s %8s %8s\n' proto CxM "h2load/s" "volley/s" ratio "h2l CPU" "vol CPU" ratio "h2l MB" "vol MB"
cat "$WORK/table"
