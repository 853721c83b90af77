#!/usr/bin/env bash
# Start-up and idle memory of `haven serve`: starts each binary RUNS times (alternating them, so that
# the machine's load falls on all alike), times each start from exec to the first answered request
# (scripts/start-server.py, the step bench-compare.sh times), and after each start reads the idle
# server's memory from /proc: resident set split into the binary's file-backed pages and anonymous
# memory, and its thread count. Prints per binary the median and range of each.
#
#   scripts/startup.sh                                   # target/release/haven, --in-memory, 10 starts
#   MODE=disk scripts/startup.sh                         # durable, on an empty data directory each time
#   RUNS=20 scripts/startup.sh /tmp/haven-before target/release/haven   # two builds side by side
#
# Figures are for the report only (docs/benchmarks.md); nothing here asserts a speed.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
MODE=${MODE:-memory}
binaries=("$@")
if [ ${#binaries[@]} -eq 0 ]; then
  cargo build --release -q -p haven
  binaries=(target/release/haven)
fi
. scripts/bench-lib.sh

rollup_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup"; }

start_once() { # binary index: one start, appending "startup_ms rss_kb file_kb anon_kb threads" to $work/<index>
  local port; port=$(free_port)
  local storage=(--in-memory)
  if [ "$MODE" = disk ]; then
    rm -rf "$work/data"
    storage=(--data-dir "$work/data")
  fi
  local startup
  read -r startup server_pid < <(SERVER_LOG=$work/log python3 scripts/start-server.py "$port" 0 \
    "$1" serve --listen "127.0.0.1:$port" "${storage[@]}" --log-level warn)
  sleep 0.5 # idle: whatever start-up left running has settled
  local rss file anon threads
  rss=$(rollup_kb "$server_pid" Rss)
  anon=$(rollup_kb "$server_pid" Anonymous)
  file=$((rss - anon))
  threads=$(ls "/proc/$server_pid/task" | wc -l)
  echo "$startup $rss $file $anon $threads" >>"$work/$2"
  stop_server
}

median_range() { # column of $work/<index>: "median (min-max)"
  cut -d' ' -f"$2" "$work/$1" | sort -n | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s (%s-%s)", m, v[1], v[NR] }'
}

for ((run = 0; run < RUNS; run++)); do
  for index in "${!binaries[@]}"; do start_once "${binaries[$index]}" "$index"; done
done
echo "$RUNS starts each, $MODE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for index in "${!binaries[@]}"; do
  echo "${binaries[$index]}: start-up to first answer $(median_range "$index" 1) ms;" \
    "idle RSS $(median_range "$index" 2) kB, of which file-backed $(median_range "$index" 3)," \
    "anonymous $(median_range "$index" 4); threads $(median_range "$index" 5)"
done
