#!/usr/bin/env bash
# Counts the server instructions a request costs: runs a release `haven serve` (durable, on disk) under
# valgrind's callgrind while haven-bench drives it, and prints instructions per request (per item for
# `load`) plus the callgrind file for `callgrind_annotate`. Instruction counts do not depend on what
# else the machine is doing, so they compare builds where timings on a shared machine cannot.
#
#   scripts/profile-instructions.sh c        # workloads a-f: after loading ITEMS items
#   scripts/profile-instructions.sh load     # BatchWriteItem load of ITEMS items, per item
#   scripts/profile-instructions.sh put      # PutItem load of ITEMS items (one a request), per item
#   ITEMS=10000 DURATION=10 CONNECTIONS=4 scripts/profile-instructions.sh a
#   IN_MEMORY=1 scripts/profile-instructions.sh c   # `--in-memory`: the request path without the disk
#   HAVEN=/tmp/haven-before scripts/profile-instructions.sh put   # another build's binary (not rebuilt)
#
# Needs valgrind (Debian package). Figures are in docs/benchmarks.md ("Where a request's instructions go").
set -euo pipefail
cd "$(dirname "$0")/.."
WORKLOAD=${1:?usage: $0 load|put|a|b|c|d|e|f}
ITEMS=${ITEMS:-10000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-4}
OUT=${OUT:-/tmp/haven-callgrind.$WORKLOAD.out}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

if [ -n "${HAVEN:-}" ]; then cargo build --release -q -p haven-bench; else cargo build --release -q -p haven -p haven-bench; fi
. scripts/bench-lib.sh
port=$(free_port)
storage=(--data-dir "$work/data")
[ -n "${IN_MEMORY:-}" ] && storage=(--in-memory)
valgrind --tool=callgrind --callgrind-out-file="$OUT" "${HAVEN:-target/release/haven}" serve \
  --listen "127.0.0.1:$port" "${storage[@]}" --log-level warn >"$work/log" 2>&1 &
server_pid=$!
until grep -q listening "$work/log"; do sleep 0.2; done
layout=hash; [ "$WORKLOAD" = e ] && layout=range
bench() { target/release/haven-bench run "$1" --endpoint "http://127.0.0.1:$port" --items "$ITEMS" \
  --connections "$CONNECTIONS" --layout "$layout" --json "${@:2}"; }
case $WORKLOAD in load | put) ;; *) bench load --batch 25 >/dev/null ;; esac
callgrind_control -z "$server_pid" >/dev/null
if [ "$WORKLOAD" = load ] || [ "$WORKLOAD" = put ]; then
  batch=25; [ "$WORKLOAD" = put ] && batch=1
  bench load --batch "$batch" >"$work/result.json"
  count=$ITEMS unit=item
else
  bench "$WORKLOAD" --duration "$DURATION" >"$work/result.json"
  count=$(jq .ops "$work/result.json") unit=request
fi
callgrind_control -d "$server_pid" >/dev/null
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=
total=$(callgrind_annotate "$OUT.1" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "workload $WORKLOAD: $count ${unit}s, $((total / count)) server instructions per $unit ($OUT.1)"
