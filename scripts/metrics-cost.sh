#!/usr/bin/env bash
# What scraping /metrics every second costs workload A (issue 24: it must be under 1%). Two figures,
# from a release build on an idle machine:
#   1. workload A's throughput, ROUNDS runs each without and with a scraper polling /metrics every
#      second, the order swapped every round so that drift in the machine's speed hits both alike;
#   2. the server's CPU time per scrape (SCRAPES scrapes in a row after the runs, so with every
#      series of the workload present) against its CPU time per second under workload A.
#
#   scripts/metrics-cost.sh
#   ROUNDS=5 DURATION=30 CONNECTIONS=16 ITEMS=100000 scripts/metrics-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
ITEMS=${ITEMS:-100000}
SCRAPES=${SCRAPES:-1000}

cargo build --release -q -p haven -p haven-bench
. scripts/bench-lib.sh
port=$(free_port)
target/release/haven serve --listen "127.0.0.1:$port" --data-dir "$work/data" --log-level warn \
  >"$work/log" 2>&1 &
server_pid=$!
until grep -q listening "$work/log"; do sleep 0.2; done
url="http://127.0.0.1:$port"
bench() { target/release/haven-bench run "$1" --endpoint "$url" --items "$ITEMS" \
  --connections "$CONNECTIONS" --json "${@:2}"; }
bench load --batch 25 >/dev/null

run_a() { # prints ops/s and the server's CPU seconds per second
  local before after
  before=$(cpu_seconds "$server_pid")
  bench a --duration "$DURATION" >"$work/a.json"
  after=$(cpu_seconds "$server_pid")
  echo "$(jq .ops_per_sec "$work/a.json") $(echo "($after - $before) / $DURATION" | bc -l)"
}
run_scraped() { # run_a with a scraper polling /metrics every second
  ( while sleep 1; do curl -s -o /dev/null "$url/metrics"; done ) &
  local scraper=$!
  run_a
  kill "$scraper"
}
# Odd rounds run the plain half first, even rounds the scraped half, so that the server warming up
# (its cache, the file) does not count against one half only.
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then
    read -r plain cpu <<<"$(run_a)"
    read -r scraped _ <<<"$(run_scraped)"
  else
    read -r scraped _ <<<"$(run_scraped)"
    read -r plain cpu <<<"$(run_a)"
  fi
  echo "round $round: workload A $plain ops/s without scraping, $scraped ops/s scraped every second"
done
before=$(cpu_seconds "$server_pid")
for _ in $(seq "$SCRAPES"); do curl -s -o /dev/null "$url/metrics"; done
after=$(cpu_seconds "$server_pid")
per_scrape=$(echo "($after - $before) / $SCRAPES" | bc -l)
printf 'one scrape: %.6f CPU s (%s bytes); under workload A the server used %.3f CPU s per second: a scrape per second is %.4f%% of that\n' \
  "$per_scrape" "$(curl -s "$url/metrics" | wc -c)" "$cpu" "$(echo "100 * $per_scrape / $cpu" | bc -l)"
