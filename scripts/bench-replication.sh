#!/usr/bin/env bash
# Global tables: replication latency between two durable Haven regions on this machine, and
# catch-up after a partition.
#
# 1. Steady rate: YCSB workload A (half GetItem, half UpdateItem) on the first region, open loop
#    at RATE requests per second (RATE/2 writes per second), for DURATION seconds; the second
#    region holds a replica. `ReplicationLatencyMs` of GET /replication/status (commit of the oldest
#    change of the last acknowledged batch to its acknowledgement: AWS's ReplicationLatency) is
#    sampled every 0.2 s; p50/p99/max of the samples.
# 2. Maximum: the same, closed loop (as fast as the first region goes).
# 3. Partition: the second region is stopped (SIGSTOP) for PARTITION seconds while the first takes
#    writes at RATE, then resumed; the catch-up time is from the resume until BehindMs is 0, with
#    the writes it carried per second.
#
#   scripts/bench-replication.sh
#   ITEMS=100000 RATE=10000 DURATION=60 PARTITION=60 scripts/bench-replication.sh   # the issue's load
#
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-20000}
RATE=${RATE:-2000}
DURATION=${DURATION:-15}
PARTITION=${PARTITION:-10}
PROFILE=${PROFILE:-release}

cargo build -q --profile "$PROFILE" -p haven -p haven-bench
bin=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bench=$bin/haven-bench
. scripts/bench-lib.sh
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench

ports=("$(free_port)" "$(free_port)")
cat >"$work/regions.toml" <<EOF
[zone]
apex = "haven.test"
nameservers = [{ name = "ns1.haven.test", addresses = ["127.0.0.1"] }]

[dns]
listen = ["127.0.0.1:0"]

[[regions]]
name = "us-east-1"
nodes = ["127.0.0.1:${ports[0]}"]

[[regions]]
name = "eu-west-1"
nodes = ["127.0.0.1:${ports[1]}"]

[replication]
access_key_id = "bench"
secret_access_key = "bench"
EOF

pids=()
start() { # region port
  "$bin/haven" serve --listen "127.0.0.1:$2" --region "$1" --config "$work/regions.toml" \
    --data-dir "$work/$1" --log-level warn >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do grep -q listening "$work/$1.log" 2>/dev/null && return; sleep 0.1; done
  echo "haven did not start: $(cat "$work/$1.log")" >&2; exit 1
}
trap 'kill -CONT "${pids[@]}" 2>/dev/null; kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
start us-east-1 "${ports[0]}"
start eu-west-1 "${ports[1]}"
first=http://127.0.0.1:${ports[0]}

status() { curl -s "$first/replication/status" | jq -c '.Replication[0] // {}'; }

"$bench" run load --endpoint "$first" --table bench --items "$ITEMS" --connections 8 --batch 25 \
  --json >"$work/load.json"
aws dynamodb update-table --endpoint-url "$first" --region us-east-1 --table-name bench \
  --replica-updates '[{"Create": {"RegionName": "eu-west-1"}}]' >/dev/null
until aws dynamodb describe-table --endpoint-url "$first" --region us-east-1 --table-name bench \
  --query 'Table.Replicas[0].ReplicaStatus' --output text | grep -q ACTIVE; do sleep 0.2; done
echo "replica of $ITEMS items filled"

measure() { # label, haven-bench options...: runs workload A, samples the latency meanwhile
  local label=$1; shift
  "$bench" run a --endpoint "$first" --table bench --items "$ITEMS" --connections 8 \
    --duration "$DURATION" --json "$@" >"$work/a.json" &
  local load=$! samples=$work/latency-$RANDOM.txt
  while kill -0 "$load" 2>/dev/null; do
    status | jq -r '.ReplicationLatencyMs // empty' >>"$samples"
    sleep 0.2
  done
  wait "$load"
  jq -r --arg name "$label" \
    '"\($name): \(.ops_per_sec | floor) requests/s, \(.ops_per_sec / 2 | floor) writes/s"' "$work/a.json"
  sort -n "$samples" | awk -v label="$label" '{ s[NR] = $1 }
    END { printf "%s: replication latency (%d samples) p50 %d ms, p99 %d ms, max %d ms\n",
          label, NR, s[int(NR / 2) + 1], s[int(NR * 0.99) + 1], s[NR] }'
}

measure "steady (workload A at $RATE requests/s)" --rate "$RATE"
measure "maximum (closed loop)"

kill -STOP "${pids[1]}"
"$bench" run a --endpoint "$first" --table bench --items "$ITEMS" --connections 8 \
  --duration "$PARTITION" --rate "$RATE" --json >"$work/partition.json"
kill -CONT "${pids[1]}"
resumed=$(date +%s.%N)
sleep 0.3
until [ "$(status | jq -r '.BehindMs')" = 0 ]; do sleep 0.1; done
seconds=$(echo "$(date +%s.%N) - $resumed" | bc -l)
writes=$(jq -r '.ops_per_sec * '"$PARTITION"' / 2 | floor' "$work/partition.json")
printf 'catch-up after a %s s partition (%s writes): %.1f s, %.0f writes/s\n' "$PARTITION" \
  "$writes" "$seconds" "$(echo "$writes / $seconds" | bc -l)"
echo "load while measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
