#!/usr/bin/env bash
# Haven on PostgreSQL against Haven on its embedded engine, in the same run: for each round, a fresh
# durable server on each engine is loaded (BatchWriteItem), then runs YCSB workloads A and C, loads a
# partition-and-sort-key table and runs E, recording throughput, p99 latency and the CPU seconds per
# operation of the Haven process and (on PostgreSQL) of every PostgreSQL process. Writes the section
# "## PostgreSQL against the embedded engine" of docs/benchmarks.md.
#
#   scripts/bench-postgres.sh
#   ITEMS=100000 CONNECTIONS=8 DURATION=20 WARMUP=3 ROUNDS=2 scripts/bench-postgres.sh
#   HAVEN=/tmp/haven-before PG_SOCKET=1 scripts/bench-postgres.sh
#
# HAVEN: the server binary to run (default: target/release/haven, built first), to compare builds in
# one sitting. PG_SOCKET=1: Haven reaches PostgreSQL over its unix socket instead of TCP loopback.
#
# PostgreSQL is a throw-away local cluster (scripts/postgres-test.sh: Debian's postgresql package,
# run as the postgres user), with synchronous_commit on and fsync on, so an acknowledged write is on
# disk on both engines. Figures are for the report only: nothing here asserts a speed.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-100000}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
DISTRIBUTION=${DISTRIBUTION:-zipfian}
OUT=${OUT:-docs/benchmarks.md}
PG_SOCKET=${PG_SOCKET:-0}

if [ -n "${HAVEN:-}" ]; then cargo build --release -q -p haven-bench; else cargo build --release -q -p haven -p haven-bench; fi
haven=${HAVEN:-target/release/haven}
bench=target/release/haven-bench
. scripts/bench-lib.sh

# PostgreSQL: started once, kept until the script exits (its input closes then, which stops it).
pg_port=$(free_port)
exec 3> >(exec scripts/postgres-test.sh "$pg_port" -c max_connections=200 -c fsync=on \
  -c synchronous_commit=on >"$work/postgres.out" 2>&1)
for _ in $(seq 1 300); do grep -q '^ready' "$work/postgres.out" 2>/dev/null && break; sleep 0.1; done
pg_dir=$(awk '/^ready/ { print $2 }' "$work/postgres.out")
[ -n "$pg_dir" ] || { cat "$work/postgres.out" >&2; exit 1; }
pg_pid=$(head -n 1 "$pg_dir/data/postmaster.pid")
psql_run() { PGPASSWORD=haven PGOPTIONS="-c client_min_messages=warning" "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql" \
  -q -h 127.0.0.1 -p "$pg_port" -U haven -d postgres -c "$1"; }

pg_cpu() { # CPU seconds of the postmaster, its live children and the children it has reaped
  local tck total=0 pid; tck=$(getconf CLK_TCK)
  total=$(awk -v tck="$tck" '{ sub(/.*\) /, ""); print ($12 + $13 + $14 + $15) / tck }' "/proc/$pg_pid/stat")
  for pid in $(pgrep -P "$pg_pid"); do
    total=$(echo "$total + $(cpu_seconds "$pid" 2>/dev/null || echo 0)" | bc -l)
  done
  echo "$total"
}

run_workload() { # engine round name workload [args...]: the JSON, Haven's and PostgreSQL's CPU
  local engine=$1 round=$2 name=$3 workload=$4; shift 4
  local out="$work/$engine-$round-$name" haven_before pg_before=0
  haven_before=$(cpu_seconds "$server_pid")
  [ "$engine" = postgres ] && pg_before=$(pg_cpu)
  "$bench" run "$workload" --endpoint "http://127.0.0.1:$port" --items "$ITEMS" \
    --connections "$CONNECTIONS" --distribution "$DISTRIBUTION" --json "$@" >"$out.json"
  echo "$(cpu_seconds "$server_pid") - $haven_before" | bc -l >"$out.haven_cpu"
  if [ "$engine" = postgres ]; then echo "$(pg_cpu) - $pg_before" | bc -l; else echo 0; fi >"$out.pg_cpu"
  echo "round $round $engine $name: $(jq -c '{ops_per_sec, items_per_sec, errors, p99_us: .latency.p99_us}' "$out.json")"
}

port=$(free_port)
for round in $(seq 1 "$ROUNDS"); do
  for engine in embedded postgres; do
    rm -rf "$work/data"
    storage=()
    if [ "$engine" = postgres ]; then
      psql_run "DROP DATABASE IF EXISTS bench" && psql_run "CREATE DATABASE bench"
      storage=(--storage "postgres://haven:haven@127.0.0.1:$pg_port/bench")
      [ "$PG_SOCKET" = 1 ] && storage=(--storage "host=$pg_dir port=$pg_port user=haven dbname=bench")
    fi
    "$haven" serve --listen "127.0.0.1:$port" --data-dir "$work/data" "${storage[@]}" \
      --log-level warn >"$work/haven.log" 2>&1 &
    server_pid=$!
    until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.05; done
    timed=(--duration "$DURATION" --warmup "$WARMUP")
    run_workload "$engine" "$round" load load --batch 25
    run_workload "$engine" "$round" a a "${timed[@]}"
    run_workload "$engine" "$round" c c "${timed[@]}"
    run_workload "$engine" "$round" load_range load --batch 25 --layout range --table bench_range
    run_workload "$engine" "$round" e e "${timed[@]}" --layout range --table bench_range
    stop_server
  done
done

command="ITEMS=$ITEMS CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS"
[ -n "${HAVEN:-}" ] && command+=" HAVEN=$HAVEN"
[ "$PG_SOCKET" = 1 ] && command+=" PG_SOCKET=1"
command+=" scripts/bench-postgres.sh"
python3 - "$work" "$OUT" "$command" "$ROUNDS" "$WARMUP" <<'PY'
import json, subprocess, sys, time
sys.path.insert(0, "scripts")
from docs_section import replace_section
work, out, command, rounds, warmup = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

def figures(engine, name):
    """Per round: (operations or items per second, p99 µs, Haven CPU µs/op, PostgreSQL CPU µs/op)."""
    rows = []
    for r in range(1, rounds + 1):
        base = f"{work}/{engine}-{r}-{name}"
        result = json.load(open(f"{base}.json"))
        if name.startswith("load"):
            rate, count = result["items_per_sec"], result["items"]
        else: # the server's CPU was sampled around the warm-up too
            rate, count = result["ops_per_sec"], result["ops"] + result["ops_per_sec"] * warmup
        per_op = lambda file: float(open(file).read()) * 1e6 / max(count, 1)
        rows.append((rate, result["latency"]["p99_us"], per_op(f"{base}.haven_cpu"), per_op(f"{base}.pg_cpu")))
    return rows

def span(values, fmt):
    low, high = min(values), max(values)
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)}–{fmt(high)}"

lines = ["## PostgreSQL against the embedded engine", "",
    f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}; "
    f"load average {open('/proc/loadavg').read().split()[0]} at the end). Each round starts a fresh durable "
    "server on each engine in turn (embedded redb, then PostgreSQL on the same machine, fsync and "
    "synchronous_commit on) and runs load, A, C, a load of the range table and E. Ranges are over the "
    f"{rounds} rounds. CPU per operation: the Haven process, and every PostgreSQL process (the postmaster, "
    "its backends and the ones it reaped), in µs per operation (per item for the loads).", "",
    "| workload | embedded (ops/s, p99 µs, Haven CPU µs/op) | PostgreSQL (ops/s, p99 µs, Haven CPU µs/op, PostgreSQL CPU µs/op) | PostgreSQL / embedded |",
    "| --- | --- | --- | --- |"]
for name, shown in [("load", "load (items/s)"), ("a", "A"), ("c", "C"), ("load_range", "load, range table (items/s)"), ("e", "E")]:
    emb, pg = figures("embedded", name), figures("postgres", name)
    ratio = [p[0] / e[0] for e, p in zip(emb, pg) if e[0]]
    whole, micro = (lambda v: f"{v:,.0f}"), (lambda v: f"{v:,.0f}")
    lines.append(f"| {shown} | {span([r[0] for r in emb], whole)}, {span([r[1] for r in emb], micro)}, "
        f"{span([r[2] for r in emb], micro)} | {span([r[0] for r in pg], whole)}, {span([r[1] for r in pg], micro)}, "
        f"{span([r[2] for r in pg], micro)}, {span([r[3] for r in pg], micro)} | "
        f"{span(ratio, lambda v: f'{v:.2f}')} |")
replace_section(out, "\n".join(lines) + "\n")
print("\n".join(lines))
PY
