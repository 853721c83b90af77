#!/usr/bin/env bash
# What the change log costs: YCSB workload A (50% reads, 50% updates) on a durable Haven against a
# table without a stream and one with a NEW_AND_OLD_IMAGES stream, without and then with a consumer
# following the stream (GetRecords latency, records per second, and how soon after the load it had
# read everything), in turn ROUNDS times on the same server. Also the bytes the server wrote to disk
# per committed write batch (from /proc and /metrics), which a loaded machine does not blur as it
# does throughput. Writes the section "## Streams" of docs/benchmarks.md.
#
#   scripts/bench-streams.sh
#   ITEMS=100000 CONNECTIONS=8 DURATION=20 WARMUP=3 ROUNDS=2 PROFILE=release scripts/bench-streams.sh
#
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-100000}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
DISTRIBUTION=${DISTRIBUTION:-zipfian}
PROFILE=${PROFILE:-release}
OUT=${OUT:-docs/benchmarks.md}

cargo build -q --profile "$PROFILE" -p haven -p haven-bench
bin=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bench=$bin/haven-bench
. scripts/bench-lib.sh

port=$(free_port)
"$bin/haven" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --log-level warn >"$work/haven.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/haven.log" 2>/dev/null && break; sleep 0.1; done
common=(--endpoint "http://127.0.0.1:$port" --items "$ITEMS" --connections "$CONNECTIONS" --distribution "$DISTRIBUTION" --json)
"$bench" run load "${common[@]}" --table plain --batch 25 >"$work/load-plain.json"
"$bench" run load "${common[@]}" --table streamed --batch 25 --stream NEW_AND_OLD_IMAGES >"$work/load-streamed.json"
# Bytes written to disk so far, and write batches committed so far.
written() {
  echo "$(awk '/^write_bytes/ {print $2}' "/proc/$server_pid/io")" \
    "$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^haven_storage_commit_batches_sum/ {print $2}')"
}
run_a() { # table name [flags]: workload A, and its disk bytes per write batch in $work/a-name.disk
  local before; before=$(written)
  "$bench" run a "${common[@]}" --table "$1" --duration "$DURATION" --warmup "$WARMUP" "${@:3}" >"$work/a-$2.json"
  echo "$before $(written)" | awk '{printf "%.1f\n", ($3 - $1) / ($4 - $2) / 1024}' >"$work/a-$2.disk"
}
for round in $(seq 1 "$ROUNDS"); do
  run_a plain "plain-$round"
  run_a streamed "logged-$round"
  run_a streamed "streamed-$round" --consume
  for run in plain logged streamed; do
    echo "round $round $run: $(jq -c '{ops_per_sec, p99_us: .latency.p99_us, stream}' "$work/a-$run-$round.json") disk KB/write $(cat "$work/a-$run-$round.disk")"
  done
done

command="ITEMS=$ITEMS CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS PROFILE=$PROFILE scripts/bench-streams.sh"
python3 - "$work" "$OUT" "$command" "$ROUNDS" <<'PY'
import json, subprocess, sys, time
sys.path.insert(0, "scripts")
from docs_section import replace_section
work, out, command, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
load = lambda name: json.load(open(f"{work}/{name}.json"))
disk = lambda name: open(f"{work}/a-{name}.disk").read().strip()
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = ["## Streams: workload A with a NEW_AND_OLD_IMAGES stream on and off", "",
    f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}; "
    f"load average {open('/proc/loadavg').read().split()[0]} at the end). One durable server; the tables are loaded "
    "once each, then A runs in turn on the table without a stream, on the one with a stream (the log is "
    "written, nobody reads it), and on that one again with a consumer following the stream from LATEST "
    "(polling an empty shard every 100 ms; it runs on the same machine, so its own CPU counts too). Cost: "
    "throughput lost against the run without a stream of the same round. Disk: KB the server wrote per committed "
    "write batch (without a stream / with one).", "",
    "| round | no stream (ops/s, p99 µs) | stream (ops/s, p99 µs, cost) | stream and consumer (ops/s, p99 µs, cost) | records read (/s) | GetRecords p50 / p99 (µs) | consumer caught up after the load | disk (KB per write) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |"]
costs = {"logged": [], "streamed": []}
for r in range(1, rounds + 1):
    runs = {name: load(f"a-{name}-{r}") for name in ["plain", "logged", "streamed"]}
    cells = []
    for name in ["logged", "streamed"]:
        cost = 1 - runs[name]["ops_per_sec"] / runs["plain"]["ops_per_sec"]
        costs[name].append(cost)
        cells.append(f"{runs[name]['ops_per_sec']:.0f}, {runs[name]['latency']['p99_us']}, {cost:+.1%}")
    s = runs["streamed"]["stream"]
    lines.append(f"| {r} | {runs['plain']['ops_per_sec']:.0f}, {runs['plain']['latency']['p99_us']} | {cells[0]} | {cells[1]} | "
        f"{s['records']} ({s['records_per_sec']:.0f}) | {s['get_records']['p50_us']} / {s['get_records']['p99_us']} | "
        f"{s['caught_up_ms_after_load']} ms | {disk(f'plain-{r}')} / {disk(f'logged-{r}')} |")
mean = lambda values: sum(values) / len(values)
lines += ["", f"Throughput cost, mean over the rounds: the log alone {mean(costs['logged']):+.1%}, the log and a consumer "
    f"{mean(costs['streamed']):+.1%} (target for the log: at most 10%)."]
replace_section(out, "\n".join(lines))
PY
echo "wrote $OUT"
