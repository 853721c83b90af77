#!/usr/bin/env bash
# How Haven's throughput and memory change with the number of items: for each size, a fresh durable
# Haven is loaded with BatchWriteItem, then runs workloads A and C, and the figures go to
# docs/benchmarks.md under "## Scale" (replacing only that section).
#
#   scripts/bench-scale.sh                               # 100k, 1M and 10M items of 1 KB
#   SIZES="100000 1000000" DURATION=20 scripts/bench-scale.sh
#
# The 10M-item load writes about 10 GB and takes several minutes. Figures are for the report only.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-100000 1000000 10000000}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
DISTRIBUTION=${DISTRIBUTION:-zipfian}
OUT=${OUT:-docs/benchmarks.md}

cargo build --release -q -p haven -p haven-bench
bench=target/release/haven-bench
. scripts/bench-lib.sh
port=$(free_port)
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

for items in $SIZES; do
  rm -rf "$work/data" && mkdir "$work/data"
  target/release/haven serve --listen "127.0.0.1:$port" --data-dir "$work/data" --log-level warn >/dev/null &
  server_pid=$!
  until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.05; done
  run() { "$bench" run "$1" --endpoint "http://127.0.0.1:$port" --items "$items" --connections "$CONNECTIONS" \
    --distribution "$DISTRIBUTION" --json "${@:2}" >"$work/$items.$1.json"; }
  run load --batch 25
  status_kb "$server_pid" VmRSS >"$work/$items.load_rss"
  du -s --block-size=1 "$work/data" | cut -f1 >"$work/$items.disk"
  run a --duration "$DURATION" --warmup "$WARMUP"
  run c --duration "$DURATION" --warmup "$WARMUP"
  status_kb "$server_pid" VmHWM >"$work/$items.peak_rss"
  echo "$items items: load $(jq .items_per_sec "$work/$items.load.json")/s, A $(jq .ops_per_sec "$work/$items.a.json") ops/s, C $(jq .ops_per_sec "$work/$items.c.json") ops/s, RSS after load $(cat "$work/$items.load_rss") kB"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=
done

command="SIZES=\"$SIZES\" CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP DISTRIBUTION=$DISTRIBUTION scripts/bench-scale.sh"
python3 - "$work" "$OUT" "$command" "$(cut -d' ' -f1-3 /proc/loadavg)" $SIZES <<'PY'
import json, os, sys, time
work, out, command, load = sys.argv[1:5]
sizes = sys.argv[5:]
HEADING = "## Scale"
get = lambda n, w, k: json.load(open(os.path.join(work, f"{n}.{w}.json")))[k]
kb = lambda n, what: int(open(os.path.join(work, f"{n}.{what}")).read())
base = sizes[0]
lines = [HEADING, "", f"Measured {time.strftime('%Y-%m-%d')} with `{command}` (load average at the end: {load}): "
         "a fresh durable Haven per size, loaded with BatchWriteItem (25 items of 1 KB a request), then workloads A and C "
         f"({command.split('DISTRIBUTION=')[1].split()[0]} keys). Throughput is relative to the first size.", "",
         "| items | load items/s | RSS after load | data on disk (allocated) | A ops/s | A p99 (ms) | C ops/s | C p99 (ms) | peak RSS |",
         "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for n in sizes:
    rel = lambda w: f"{get(n, w, 'ops_per_sec'):,.0f} ({get(n, w, 'ops_per_sec') / get(base, w, 'ops_per_sec'):.0%})"
    lines.append(f"| {int(n):,} | {get(n, 'load', 'items_per_sec'):,.0f} | {kb(n, 'load_rss') / 1024:.0f} MB | "
                 f"{kb(n, 'disk') / 1e9:.2f} GB ({kb(n, 'disk') / (int(n) * 1024):.2f}x) | {rel('a')} | "
                 f"{get(n, 'a', 'latency')['p99_us'] / 1000:.2f} | {rel('c')} | {get(n, 'c', 'latency')['p99_us'] / 1000:.2f} | "
                 f"{kb(n, 'peak_rss') / 1024:.0f} MB |")
sys.path.insert(0, "scripts")
from docs_section import replace_section
replace_section(out, "\n".join(lines))
PY
echo "wrote $OUT"
