#!/usr/bin/env bash
# Does volley's memory stay flat over a long run, however many series?
#
#   scripts/mem-check.sh            # 10 minutes per plan
#   DURATION=90s scripts/mem-check.sh
#
# Runs two plans against `volley serve`, one after the other, each at
# RATE requests per second for DURATION:
#   many  NAMES request names (one request per iteration, by weight): about
#         15 series per name, 7,500 for 500 names
#   one   a single request name
# volley's resident memory (VmRSS from /proc) is sampled every EVERY
# seconds; the least-squares slope from WARMUP to the end of the load (the
# summary built after it is a one-off, shown as the peak) is printed in MB/h
# for each, beside the limit (LIMIT_MB_H, 20). Exit 1 when a slope is over it.
#
# Settings (environment): DURATION (10m), RATE (2000), NAMES (500), EVERY
# (5 s), WARMUP (half of DURATION, at most 5m: the per-series history
# fills its budget in ~90 s with 500 names, and the run's histograms widen
# as the first slow requests arrive), LIMIT_MB_H (20), PLANS
# ("many one"; "many" runs only the first),
# VOLLEY_BIN (default: a release build of this checkout), KEEP=1 keeps the
# work directory (plans, summaries, RSS samples).
#
# Not a timed test and not a benchmark: on a shared machine the rate may
# not be reached; the slope is still the answer to "does it grow".
set -euo pipefail
cd "$(dirname "$0")/.."

secs() { # 90s, 10m, 1h, 600 -> seconds
  local v=$1
  case $v in
    *h) echo $(( ${v%h} * 3600 )) ;;
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo "${v%s}" ;;
    *) echo "$v" ;;
  esac
}

DURATION=${DURATION:-10m}
RATE=${RATE:-2000}
NAMES=${NAMES:-500}
EVERY=${EVERY:-5}
LIMIT_MB_H=${LIMIT_MB_H:-20}
DUR_S=$(secs "$DURATION")
[[ $DUR_S =~ ^[0-9]+$ && $DUR_S -ge 30 ]] || { echo "DURATION=$DURATION: give at least 30s, e.g. 90s or 10m" >&2; exit 2; }
DEFAULT_WARMUP=$(( DUR_S / 2 < 300 ? DUR_S / 2 : 300 ))
WARMUP_S=$(secs "${WARMUP:-$DEFAULT_WARMUP}")

if [[ -z ${VOLLEY_BIN:-} ]]; then
  cargo build --release -q --bin volley
  VOLLEY_BIN=$PWD/target/release/volley
fi
WORK=$(mktemp -d /tmp/volley-mem.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

"$VOLLEY_BIN" serve --addr "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER=$!
RUNNER=
cleanup() {
  [[ -n $RUNNER ]] && kill "$RUNNER" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do curl -sf "$BASE/api/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done

plan() { # LABEL NAMES
  local f="$WORK/$1.toml"
  cat >"$f" <<EOF
[scenarios.load]
driver = "http"
executor = "constant-arrival-rate"
rate = $RATE
duration = "${DUR_S}s"
pre_allocated_vus = 200
max_vus = 1000
graceful_stop = "5s"
flow = "weighted"
base_url = "$BASE"
EOF
  for i in $(seq "$2"); do
    # Products 1..1000 exist on the demo target.
    printf '\n[[scenarios.load.requests]]\nurl = "/api/products/%d"\n' $(( (i - 1) % 1000 + 1 )) >>"$f"
  done
  echo "$f"
}

# Least-squares slope (bytes/s -> MB/h) of "seconds kib" lines from
# WARMUP_S to the end of the load.
slope() {
  awk -v w="$WARMUP_S" -v e="$DUR_S" '$1 >= w && $1 <= e { n++; t[n]=$1; v[n]=$2 * 1024 }
    END {
      if (n < 2) { print "nan"; exit }
      for (i = 1; i <= n; i++) { mt += t[i]; mv += v[i] } mt /= n; mv /= n
      for (i = 1; i <= n; i++) { sxy += (t[i]-mt)*(v[i]-mv); sxx += (t[i]-mt)^2 }
      printf "%.1f\n", (sxy / sxx) * 3600 / 1048576
    }' "$1"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

measure() { # LABEL PLAN
  local label=$1 p=$2 samples="$WORK/$1.rss" t0 now kib
  : >"$samples"
  "$VOLLEY_BIN" run "$p" --quiet --summary-export "$WORK/$label.json" >"$WORK/$label.out" 2>&1 &
  RUNNER=$!
  t0=$(date +%s.%N)
  while kill -0 "$RUNNER" 2>/dev/null; do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RUNNER/status" 2>/dev/null || true)
    now=$(date +%s.%N)
    [[ -n $kib ]] && awk -v a="$t0" -v b="$now" -v k="$kib" 'BEGIN { printf "%.1f %d\n", b - a, k }' >>"$samples"
    sleep "$EVERY"
  done
  local code=0
  wait "$RUNNER" || code=$?
  RUNNER=
  [[ $code == 0 || $code == 99 ]] || { echo "$label: volley run exited $code" >&2; cat "$WORK/$label.out" >&2; exit 1; }
  local first last peak after series width reqs
  after=$(awk -v w="$WARMUP_S" '$1 >= w { print $2; exit }' "$samples")
  last=$(awk -v e="$DUR_S" '$1 <= e { k = $2 } END { print k }' "$samples")
  peak=$(sort -k2 -n "$samples" | tail -1 | awk '{ print $2 }')
  first=$(head -1 "$samples" | awk '{ print $2 }')
  read -r series width reqs < <(python3 - "$WORK/$label.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(len(s["series"]), s.get("interval_s", 1), int(s["metrics"]["http_reqs"]["values"]["count"]))
PY
)
  local rate_s slope_mb_h verdict
  rate_s=$(awk -v r="$reqs" -v d="$DUR_S" 'BEGIN { printf "%.0f", r / d }')
  slope_mb_h=$(slope "$samples")
  verdict=$(awk -v s="$slope_mb_h" -v l="$LIMIT_MB_H" 'BEGIN { print (s != "nan" && s < l) ? "flat" : "GROWS" }')
  printf '%-5s %6s series  %5s req/s  rss MB: start %6s  warm %6s  load end %6s  peak %6s  summary %5s MB (%s s buckets)  slope after %ss: %7s MB/h  %s\n' \
    "$label" "$series" "$rate_s" "$(mb "$first")" "$(mb "${after:-0}")" "$(mb "$last")" "$(mb "$peak")" \
    "$(du -m "$WORK/$label.json" | cut -f1)" "$width" "$WARMUP_S" "$slope_mb_h" "$verdict" | tee -a "$WORK/result"
}

echo "volley memory check: $RATE req/s for ${DUR_S}s per plan, RSS every ${EVERY}s, slope after ${WARMUP_S}s (limit $LIMIT_MB_H MB/h)"
for p in ${PLANS:-many one}; do
  case $p in
    many) measure many "$(plan many "$NAMES")" ;;
    one) measure one "$(plan one 1)" ;;
    *) echo "PLANS=$PLANS: the plans are \"many\" and \"one\"" >&2; exit 2 ;;
  esac
done
! grep -q GROWS "$WORK/result"
