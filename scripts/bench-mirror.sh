#!/usr/bin/env bash
# What `haven mirror` does with a table: the initial copy's rate (items per second from start to the
# first moment the copy follows the stream) for each size in SIZES, beside the rate at which the
# source itself was bulk-loaded (BatchWriteItem of 25, 8 connections); then the steady-state lag of
# the largest copy while the source takes a steady write rate (YCSB workload A, open loop at RATE
# requests per second, half of them updates): `lag_seconds` of GET /mirror/status (now minus the
# moment up to which the copy holds every change), sampled every 0.5 s. The source is another
# durable Haven on this machine.
#
#   scripts/bench-mirror.sh
#   SIZES="100000 1000000" RATE=2000 DURATION=30 PROFILE=release scripts/bench-mirror.sh
#
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"100000 1000000"}
RATE=${RATE:-2000}
DURATION=${DURATION:-30}
SEGMENTS=${SEGMENTS:-4}
PROFILE=${PROFILE:-release}

cargo build -q --profile "$PROFILE" -p haven -p haven-bench
bin=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bench=$bin/haven-bench
. scripts/bench-lib.sh

start() { # log, args...: starts a haven, waits for its address; sets $pid and $port
  local log=$1; shift
  port=$(free_port)
  "$bin/haven" "$@" --listen "127.0.0.1:$port" --log-level warn >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do grep -q listening "$log" 2>/dev/null && return; sleep 0.1; done
  echo "haven did not start: $(cat "$log")" >&2; exit 1
}

status() { curl -s "http://127.0.0.1:$mirror_port/mirror/status" | jq -c '.tables[0]'; }

start "$work/source.log" serve --data-dir "$work/source"
source_pid=$pid source_port=$port
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
for items in $SIZES; do
  table="items$items"
  "$bench" run load --endpoint "http://127.0.0.1:$source_port" --table "$table" --items "$items" \
    --connections 8 --batch 25 --stream NEW_AND_OLD_IMAGES --json >"$work/load-$items.json"
  jq -r '"bulk load of the source: \(.items_per_sec) items/s"' "$work/load-$items.json"
  began=$(date +%s.%N)
  start "$work/mirror-$items.log" mirror --source-endpoint "http://127.0.0.1:$source_port" \
    --source-region us-east-1 --table "$table" --segments "$SEGMENTS" --data-dir "$work/copy-$items"
  mirror_pid=$pid mirror_port=$port
  server_pid=$mirror_pid
  until [ "$(status | jq -r .phase)" = following ]; do sleep 0.2; done
  ended=$(date +%s.%N)
  seconds=$(echo "$ended - $began" | bc -l)
  printf 'initial copy of %s items: %.1f s, %.0f items/s (%s segments)\n' "$items" "$seconds" \
    "$(echo "$items / $seconds" | bc -l)" "$SEGMENTS"
  [ "$items" = "${SIZES##* }" ] || stop_server
done

"$bench" run a --endpoint "http://127.0.0.1:$source_port" --table "$table" --items "${SIZES##* }" \
  --connections 8 --rate "$RATE" --duration "$DURATION" --json >"$work/load.json" &
load_pid=$!
samples=$work/lag.txt
while kill -0 "$load_pid" 2>/dev/null; do
  status | jq -r '.lag_seconds // "null"' >>"$samples"
  sleep 0.5
done
wait "$load_pid"
jq -r '"source: \(.ops_per_sec | floor) requests/s (workload A at '"$RATE"'/s offered)"' "$work/load.json"
grep -v null "$samples" | sort -n | awk '{ s[NR] = $1 }
  END { printf "lag under load (%d samples): p50 %.2f s, p99 %.2f s, max %.2f s\n",
        NR, s[int(NR / 2) + 1], s[int(NR * 0.99) + 1], s[NR] }'
kill "$source_pid"
