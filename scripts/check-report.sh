#!/usr/bin/env bash
# Render the HTML report of a demo run in headless Chromium and fail when the
# page is blank or any chart is missing.
#
#   scripts/check-report.sh            # build, run `volley demo`, check
#   VOLLEY_BIN=path/to/volley scripts/check-report.sh
#   KEEP=1 scripts/check-report.sh     # keep the report, DOM and screenshot
#
# Checks: the DOM Chromium built (--dump-dom) has the verdict and, for every
# scenario of the run, its latency, throughput, errors, VUs and latency
# distribution charts (the distribution on a percentile axis), and each
# count split by outcome a driver describes (requests by status) with
# totals equal to the summary's, each an <svg> with a drawn line, as many
# charts as the page announces; the
# screenshot is not one uniform colour and has ink on it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v chromium >/dev/null 2>&1; then
    echo "check-report: installing Debian's chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

bin=${VOLLEY_BIN:-}
if [ -z "$bin" ]; then
    cargo build --quiet --bin volley
    bin="$root/target/debug/volley"
fi

work=$(mktemp -d)
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "check-report: files kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# The demo writes volley-report.html in the current folder.
(cd "$work" && "$bin" demo --quiet --summary-export "$work/summary.json" >"$work/demo.out" 2>&1) || {
    code=$?
    # 99 (thresholds failed) still leaves a report to check.
    if [ "$code" != 99 ]; then
        cat "$work/demo.out" >&2
        echo "check-report: volley demo failed with exit $code" >&2
        exit 1
    fi
}
report="$work/volley-report.html"
[ -s "$report" ] || { echo "check-report: no report was written" >&2; exit 1; }

chrome() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --hide-scrollbars --user-data-dir="$work/profile-$1" "${@:2}" \
        "file://$report" 2>>"$work/chromium.log"
}
chrome dom --dump-dom >"$work/dom.html"
chrome shot --window-size=1280,4000 --screenshot="$work/shot.png" >/dev/null

python3 - "$work/dom.html" "$work/shot.png" "$work/summary.json" <<'PY'
import json, re, struct, sys, zlib

dom_path, png_path, summary_path = sys.argv[1:4]
dom = open(dom_path, encoding="utf-8").read()
summary = json.load(open(summary_path))
problems = []

if not re.search(r'id="verdict"[^>]*>.*?(PASSED|FAILED|NO THRESHOLDS)', dom, re.S):
    problems.append("no verdict in the rendered page")

figures = {}
for m in re.finditer(r'<figure class="chart" id="([^"]+)"(.*?)</figure>', dom, re.S):
    figures[m.group(1)] = m.group(2)
for fid, body in figures.items():
    if body.count("<svg") != 1:
        problems.append(f"{fid}: {body.count('<svg')} SVGs, want 1")
    elif "<polyline" not in body and "<circle" not in body:
        problems.append(f"{fid}: the SVG draws no line")
announced = re.search(r'data-charts="(\d+)"', dom)
if not announced or int(announced.group(1)) != len(figures):
    problems.append(f"page announces {announced and announced.group(1)} charts, DOM has {len(figures)}")

def slug(s):
    return re.sub(r"[^A-Za-z0-9_-]", "-", s)

def attrs(text, name):
    return re.findall(r'\s' + name + r'="([^"]*)"', text)

# The drivers' counts split by outcome (requests by status, ...): figure id
# suffix and metric, from the descriptors the summary carries.
counts_by = [(f["id"], f["metric"]) for d in summary["volley"].get("drivers", [])
             for f in d.get("figures", []) if f.get("kind") == "counts_by"]

def total(metric, scenario):
    n = 0
    for r in summary["series"]:
        if r["metric"] == metric and r["tags"].get("scenario") == scenario:
            n += r.get("count", 0)
    return n

for sc in summary["volley"]["scenarios"]:
    base = f"chart-{slug(sc['name'])}-"
    for kind in ["throughput", "errors", "vus", "distribution"]:
        if base + kind not in figures:
            problems.append(f"scenario {sc['name']}: no {kind} chart")
    if not any(f.startswith(base + "latency-") for f in figures):
        problems.append(f"scenario {sc['name']}: no latency chart")
    # The distribution: a curve over the nines axis, as many samples as the
    # scenario's histogram.
    dist = figures.get(base + "distribution", "")
    # The axis reaches 90% from 10 samples, 99% from 100: below that it stops.
    if dist and not ("90%" in dist and "percentile" in dist):
        problems.append(f"scenario {sc['name']}: the distribution has no nines axis")
    # Counts by outcome: the legend's totals add up to the summary's count.
    for fid, metric in counts_by:
        want = total(metric, sc["name"])
        if want == 0:
            continue
        body = figures.get(base + slug(fid))
        if body is None:
            problems.append(f"scenario {sc['name']}: no {fid} chart")
            continue
        shown = sum(int(n) for n in attrs(body, "data-total"))
        if shown != want:
            problems.append(f"{base}{fid}: totals {shown}, summary {metric} {want}")

# The screenshot: a PNG decoded by hand (no imaging library needed).
data = open(png_path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    problems.append("the screenshot is not a PNG")
else:
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    if depth != 8 or ctype not in (2, 6) or interlace:
        problems.append(f"unexpected PNG format depth={depth} type={ctype}")
    else:
        bpp = 4 if ctype == 6 else 3
        raw = zlib.decompress(idat)
        stride = width * bpp
        prev = bytearray(stride)
        colours, ink = {}, 0
        for y in range(height):
            f = raw[y * (stride + 1)]
            line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1: line[i] = (line[i] + a) & 255
                elif f == 2: line[i] = (line[i] + b) & 255
                elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    line[i] = (line[i] + pr) & 255
            prev = line
            for i in range(0, stride, bpp * 4):  # every 4th pixel is plenty
                px = bytes(line[i:i + 3])
                colours[px] = colours.get(px, 0) + 1
        total = sum(colours.values())
        background = max(colours.values())
        ink = 1 - background / total
        if len(colours) < 16 or ink < 0.02:
            problems.append(f"the page looks blank: {len(colours)} colours, {ink:.1%} ink")

if problems:
    print("check-report: FAIL")
    for p in problems:
        print("  -", p)
    sys.exit(1)
print(f"check-report: OK: {len(figures)} charts rendered by Chromium "
      f"({', '.join(sorted(figures))}); screenshot {width}x{height}, "
      f"{len(colours)} colours, {ink:.1%} ink")
PY
