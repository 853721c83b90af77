#!/usr/bin/env bash
# What the change log costs by stream view type: YCSB workload A (50% reads, 50% updates) on a
# durable Haven against a table without a stream and tables with a KEYS_ONLY, a NEW_IMAGE and a
# NEW_AND_OLD_IMAGES stream (nobody consuming), in turn ROUNDS times. A record keeps whole only the
# images its table's readers need (docs/storage-format.md, "Who reads which image"), so the cost
# should fall with the view type. With BEFORE set to another haven binary (say, a build of the code
# before a change), each round runs the same tables on it too, alternated with this build's, so
# that a loaded machine blurs both alike: compare ratios within a round, not absolute figures.
# Also the KB the server wrote to disk per committed write batch (from /proc and /metrics).
# Writes the section "## Streams: the log's cost by view type" of docs/benchmarks.md.
#
#   scripts/bench-stream-views.sh
#   BEFORE=/tmp/haven-before ITEMS=50000 CONNECTIONS=8 DURATION=10 WARMUP=2 ROUNDS=3 scripts/bench-stream-views.sh
#
# BUILD=0 uses the binaries already built (cargo waits for its package cache lock while another
# build holds it).
#
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-50000}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
DISTRIBUTION=${DISTRIBUTION:-zipfian}
PROFILE=${PROFILE:-release}
BEFORE=${BEFORE:-}
OUT=${OUT:-docs/benchmarks.md}
VIEWS=(none KEYS_ONLY NEW_IMAGE NEW_AND_OLD_IMAGES)

[ "${BUILD:-1}" = 0 ] || cargo build -q --profile "$PROFILE" -p haven -p haven-bench
bin=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bench=$bin/haven-bench
. scripts/bench-lib.sh

builds=(after)
declare -A binary=([after]="$bin/haven") port pid
if [ -n "$BEFORE" ]; then
  builds=(before after)
  binary[before]=$BEFORE
fi
stop_all() { for build in "${builds[@]}"; do [ -n "${pid[$build]:-}" ] && kill "${pid[$build]}" 2>/dev/null; done; rm -rf "$work"; }
trap stop_all EXIT

options() { # build: the bench's options against that build's server
  echo --endpoint "http://127.0.0.1:${port[$1]}" --items "$ITEMS" --connections "$CONNECTIONS" --distribution "$DISTRIBUTION" --json
}
for build in "${builds[@]}"; do
  port[$build]=$(free_port)
  mkdir -p "$work/$build"
  "${binary[$build]}" serve --listen "127.0.0.1:${port[$build]}" --data-dir "$work/$build/data" --log-level warn >"$work/$build/haven.log" 2>&1 &
  pid[$build]=$!
  for _ in $(seq 1 100); do grep -q listening "$work/$build/haven.log" 2>/dev/null && break; sleep 0.1; done
  for view in "${VIEWS[@]}"; do
    stream=(); [ "$view" = none ] || stream=(--stream "$view")
    # shellcheck disable=SC2046
    "$bench" run load $(options "$build") --table "t_$view" --batch 25 "${stream[@]}" >/dev/null
  done
done

written() { # build: bytes the server wrote to disk so far, and write batches committed so far
  echo "$(awk '/^write_bytes/ {print $2}' "/proc/${pid[$1]}/io")" \
    "$(curl -s "http://127.0.0.1:${port[$1]}/metrics" | awk '/^haven_storage_commit_batches_sum/ {print $2}')"
}
for round in $(seq 1 "$ROUNDS"); do
  for build in "${builds[@]}"; do
    for view in "${VIEWS[@]}"; do
      name="$build-$view-$round"
      before=$(written "$build")
      # shellcheck disable=SC2046
      "$bench" run a $(options "$build") --table "t_$view" --duration "$DURATION" --warmup "$WARMUP" >"$work/$name.json"
      echo "$before $(written "$build")" | awk '{printf "%.1f\n", ($3 - $1) / ($4 - $2) / 1024}' >"$work/$name.disk"
      echo "round $round $build $view: $(jq -c '{ops_per_sec, p99_us: .latency.p99_us}' "$work/$name.json") disk KB/write $(cat "$work/$name.disk")"
    done
  done
done

command="${BEFORE:+BEFORE=$BEFORE }ITEMS=$ITEMS CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS PROFILE=$PROFILE scripts/bench-stream-views.sh"
python3 - "$work" "$OUT" "$command" "$ROUNDS" "${builds[@]}" <<'PY'
import json, subprocess, sys, time
sys.path.insert(0, "scripts")
from docs_section import replace_section
work, out, command, rounds, builds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
views = ["none", "KEYS_ONLY", "NEW_IMAGE", "NEW_AND_OLD_IMAGES"]
ops = lambda b, v, r: json.load(open(f"{work}/{b}-{v}-{r}.json"))["ops_per_sec"]
disk = lambda b, v, r: float(open(f"{work}/{b}-{v}-{r}.disk").read())
span = lambda values, fmt: f"{fmt.format(min(values))}–{fmt.format(max(values))}"
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = ["## Streams: the log's cost by view type", "",
    f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}; "
    f"load average {open('/proc/loadavg').read().split()[0]} at the end). One durable server per build, "
    "each with four tables loaded once (no stream, and a KEYS_ONLY, a NEW_IMAGE and a NEW_AND_OLD_IMAGES "
    "stream nobody reads); each round runs A on each table of each build in turn. Cost: throughput lost "
    "against the table without a stream, same build and round, as the range over the rounds. Disk: KB the "
    "server wrote per committed write batch, range over the rounds.", "",
    "| stream | " + " | ".join(f"{b}: ops/s | {b}: cost | {b}: disk (KB per write)" for b in builds) + " |",
    "| --- |" + " --- | --- | --- |" * len(builds)]
for view in views:
    cells = []
    for b in builds:
        values = [ops(b, view, r) for r in range(1, rounds + 1)]
        costs = [1 - ops(b, view, r) / ops(b, "none", r) for r in range(1, rounds + 1)]
        cells += [span(values, "{:.0f}"), "" if view == "none" else span(costs, "{:+.1%}"),
                  span([disk(b, view, r) for r in range(1, rounds + 1)], "{:.1f}")]
    lines.append(f"| {view} | " + " | ".join(cells) + " |")
replace_section(out, "\n".join(lines))
PY
echo "wrote $OUT"
