#!/usr/bin/env bash
# Render the Kubernetes objects of a distributed volley run: PLAN split in N
# runner pods (an Indexed Job), a merge Job, the plan's ConfigMap, a results
# volume and a metrics Service. No cluster is needed to render.
#
#   scripts/k8s-run.sh PLAN N [--start-in 60s] [--image IMG] [--namespace NS]
#                      [--out DIR] [--apply] [any `volley k8s render` option]
#
# Without --out the manifests go to stdout; --apply pipes them to
# `kubectl apply`. VOLLEY=path/to/volley picks the binary (default: this
# checkout's target/release or target/debug build, then volley on PATH).
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 2 ] || usage
plan=$1
parts=$2
shift 2
case $parts in
'' | *[!0-9]*) echo "N must be a number of pods, not '$parts'" >&2; exit 2 ;;
esac

out=""
apply=0
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=${2:?--out needs a folder}; shift ;;
    --apply) apply=1 ;;
    -h | --help) usage ;;
    *) args+=("$1") ;;
    esac
    shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
volley=${VOLLEY:-}
if [ -z "$volley" ]; then
    for c in "$root/target/release/volley" "$root/target/debug/volley"; do
        if [ -x "$c" ]; then volley=$c; break; fi
    done
fi
if [ -z "$volley" ]; then
    volley=$(command -v volley || true)
fi
if [ -z "$volley" ]; then
    echo "no volley binary: build one with 'cargo build --release' or set VOLLEY=path" >&2
    exit 2
fi

render=("$volley" k8s render "$plan" --parts "$parts" "${args[@]}")
if [ -n "$out" ]; then
    "${render[@]}" --out-dir "$out"
    if [ "$apply" = 1 ]; then kubectl apply -f "$out"; fi
elif [ "$apply" = 1 ]; then
    "${render[@]}" | kubectl apply -f -
else
    "${render[@]}"
fi
