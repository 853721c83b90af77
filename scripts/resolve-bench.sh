#!/usr/bin/env bash
# Measures the guard resolver (`haven resolve`) and Unbound, each a caching forwarder in front of
# the same Knot DNS, one after the other, with dnsperf, and writes the table to docs/benchmarks.md
# ("## Guard resolver").
#
#   scripts/resolve-bench.sh                     # defaults below; override with environment variables:
#   DURATION=10 LATENCY_DURATION=5 CLIENTS=4 OUTSTANDING=100 scripts/resolve-bench.sh
#   HAVEN_BIN=target/debug/haven scripts/resolve-bench.sh   # measure that binary instead of a release build
#
# Each resolver runs one worker thread pinned to CPU $SERVER_CPU (taskset); dnsperf and Knot share
# CPU $CLIENT_CPU. Four runs per resolver:
# - cache hits: five questions (A, AAAA with no data, a CNAME, NXDOMAIN, SOA) whose answers live an
#   hour, asked over and over after a warm-up: queries per second, and queries per resolver
#   CPU-second (user + system time of all its threads over the run), the per-core capacity;
# - cache misses: every question a different name (a wildcard in Knot's zone), so each is forwarded;
# - the same two with one query at a time, for latency, next to Knot asked directly: what the
#   resolver adds to a hit and to a miss.
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
LATENCY_DURATION=${LATENCY_DURATION:-5}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-docs/benchmarks.md}
ZONE=bench.test

if ! command -v dnsperf >/dev/null || ! command -v kdig >/dev/null \
  || { ! command -v unbound >/dev/null && [ ! -x /usr/sbin/unbound ]; } \
  || { ! command -v knotd >/dev/null && [ ! -x /usr/sbin/knotd ]; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq knot knot-dnsutils dnsperf unbound >/dev/null
fi
knotd=$(command -v knotd || echo /usr/sbin/knotd)
unbound=$(command -v unbound || echo /usr/sbin/unbound)
if [ -z "${HAVEN_BIN:-}" ]; then
  cargo build --release -q -p haven
  HAVEN_BIN=target/release/haven
fi
. scripts/bench-lib.sh
knot_pid=
trap 'cleanup; [ -n "$knot_pid" ] && kill "$knot_pid" 2>/dev/null' EXIT
"$unbound" -V | awk 'NR == 1 { print $2 }' >"$work/unbound.version"
wait_for_answer() { # port
  for _ in $(seq 200); do
    kdig @127.0.0.1 -p "$1" +noall +answer "$ZONE" SOA 2>/dev/null | grep -q SOA && return
    sleep 0.05
  done
  echo "no DNS answer on port $1" >&2; exit 1
}

# Knot: the upstream of both resolvers, one worker, on the client's CPU.
knot_port=$(free_port)
cat >"$work/$ZONE.zone" <<EOF
\$ORIGIN $ZONE.
\$TTL 3600
@ SOA ns hostmaster 1 3600 600 86400 3600
@ NS ns
ns A 127.0.0.1
dynamodb.us-east-1 A 10.0.0.1
dynamodb.us-east-1 A 10.0.0.2
dynamodb.us-east-1 A 10.0.0.3
www CNAME dynamodb.us-east-1
*.miss A 10.9.9.9
EOF
write_knot_conf "$ZONE" "$knot_port"
taskset -c "$CLIENT_CPU" "$knotd" --config "$work/knot.conf" >"$work/knot.log" 2>&1 &
knot_pid=$!
wait_for_answer "$knot_port"

cat >"$work/hits" <<EOF
dynamodb.us-east-1.$ZONE A
dynamodb.us-east-1.$ZONE AAAA
www.$ZONE A
nonexistent.$ZONE A
$ZONE SOA
EOF
# Names nobody asked before: enough for the longest run at any plausible rate, one file per run.
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
for run, count in (("haven", 1_500_000), ("unbound", 1_500_000), ("haven-one", 100_000),
                   ("unbound-one", 100_000), ("knot-one", 100_000)):
    with open(f"{work}/misses-{run}", "w") as f:
        f.writelines(f"{run}{i}.miss.bench.test A\n" for i in range(count))
PY

dnsperf_run() { # name port queries seconds clients outstanding: one measured run
  local name=$1 port=$2 queries=$3 seconds=$4 clients=$5 outstanding=$6 once=()
  case "$queries" in *misses*) once=(-n 1) ;; esac # a miss file is never read twice
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$seconds" "${once[@]}" \
    -c "$clients" -q "$outstanding" >"$work/$name.dnsperf"
  grep -E "Queries (per second|completed|lost)|Average Latency" "$work/$name.dnsperf" | sed "s/^/  $name: /"
}
measure() { # resolver port: the four runs, with the resolver's CPU time around the two loaded ones
  local before
  dnsperf_run "$1-warmup" "$2" "$work/hits" "$WARMUP" "$CLIENTS" "$OUTSTANDING" >/dev/null
  before=$(cpu_seconds "$server_pid")
  dnsperf_run "$1-hits" "$2" "$work/hits" "$DURATION" "$CLIENTS" "$OUTSTANDING"
  echo "$(cpu_seconds "$server_pid") - $before" | bc -l >"$work/$1-hits.cpu"
  before=$(cpu_seconds "$server_pid")
  dnsperf_run "$1-misses" "$2" "$work/misses-$1" "$DURATION" "$CLIENTS" "$OUTSTANDING"
  echo "$(cpu_seconds "$server_pid") - $before" | bc -l >"$work/$1-misses.cpu"
  dnsperf_run "$1-hits-one" "$2" "$work/hits" "$LATENCY_DURATION" 1 1
  dnsperf_run "$1-misses-one" "$2" "$work/misses-$1-one" "$LATENCY_DURATION" 1 1
}

cut -d' ' -f1-3 /proc/loadavg >"$work/loadavg"
echo "knot (pid $knot_pid, port $knot_port), asked directly:"
dnsperf_run knot-hits-one "$knot_port" "$work/hits" "$LATENCY_DURATION" 1 1
dnsperf_run knot-misses-one "$knot_port" "$work/misses-knot-one" "$LATENCY_DURATION" 1 1

haven_port=$(free_port)
taskset -c "$SERVER_CPU" "$HAVEN_BIN" resolve --listen "127.0.0.1:$haven_port" \
  --upstream "127.0.0.1:$knot_port" --threads 1 --log-level warn >"$work/haven.log" 2>&1 &
server_pid=$!
wait_for_answer "$haven_port"
echo "haven resolve (pid $server_pid, port $haven_port)"
measure haven "$haven_port"
stop_server

unbound_port=$(free_port)
cat >"$work/unbound.conf" <<EOF
server:
    interface: 127.0.0.1@$unbound_port
    num-threads: 1
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 0
    chroot: ""
    username: ""
    directory: "$work"
    pidfile: "$work/unbound.pid"
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    do-ip6: no
    module-config: "iterator"
    msg-cache-size: 64m
    rrset-cache-size: 64m
    serve-expired: yes
    # Unbound answers the special-use name test. itself (RFC 6761) unless told not to.
    local-zone: "test." nodefault
remote-control:
    control-enable: no
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@$knot_port
EOF
taskset -c "$SERVER_CPU" "$unbound" -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
server_pid=$!
wait_for_answer "$unbound_port"
echo "unbound (pid $server_pid, port $unbound_port)"
measure unbound "$unbound_port"
stop_server

command="DURATION=$DURATION LATENCY_DURATION=$LATENCY_DURATION CLIENTS=$CLIENTS OUTSTANDING=$OUTSTANDING scripts/resolve-bench.sh"
python3 - "$work" "$OUT" "$command" "$DURATION" "$CLIENTS" "$OUTSTANDING" "${BUILD_NOTE:-release build}" <<'PY'
import re, sys, time
work, out, command, duration, clients, outstanding, build = sys.argv[1:]

def run(name):
    text = open(f"{work}/{name}.dnsperf").read()
    grab = lambda pattern: re.search(pattern, text).group(1)
    return {
        "qps": float(grab(r"Queries per second:\s+([\d.]+)")),
        "completed": int(grab(r"Queries completed:\s+(\d+)")),
        "lost": int(grab(r"Queries lost:\s+(\d+)")),
        "latency": float(grab(r"Average Latency \(s\):\s+([\d.]+)")) * 1000,
        "min": float(grab(r"Average Latency \(s\):.*min ([\d.]+)")) * 1000,
    }

def loaded(server, kind):
    figures = run(f"{server}-{kind}")
    cpu = float(open(f"{work}/{server}-{kind}.cpu").read())
    figures["per_cpu"] = figures["completed"] / cpu if cpu else float("nan")
    return figures

servers = ("haven", "unbound")
hits = {s: loaded(s, "hits") for s in servers}
misses = {s: loaded(s, "misses") for s in servers}
one = {s: {k: run(f"{s}-{k}-one") for k in ("hits", "misses")} for s in servers + ("knot",)}
added = lambda s, kind, figure: one[s][kind][figure] - one["knot"][kind][figure]
rows = [
    ("cache hits: queries per second (client-observed)", lambda s: f"{hits[s]['qps']:,.0f}"),
    ("cache hits: queries per resolver CPU-second", lambda s: f"{hits[s]['per_cpu']:,.0f}"),
    ("cache hits: average latency under load (ms)", lambda s: f"{hits[s]['latency']:.3f}"),
    ("cache misses: queries per second (client-observed)", lambda s: f"{misses[s]['qps']:,.0f}"),
    ("cache misses: queries per resolver CPU-second", lambda s: f"{misses[s]['per_cpu']:,.0f}"),
    ("cache misses: average latency under load (ms)", lambda s: f"{misses[s]['latency']:.3f}"),
    ("queries lost (hits, misses)", lambda s: f"{hits[s]['lost']}, {misses[s]['lost']}"),
    ("one query at a time: hit latency, average / min (ms)",
     lambda s: f"{one[s]['hits']['latency']:.3f} / {one[s]['hits']['min']:.3f}"),
    ("one query at a time: miss latency, average / min (ms)",
     lambda s: f"{one[s]['misses']['latency']:.3f} / {one[s]['misses']['min']:.3f}"),
    ("added to Knot asked directly: hit, average / min (ms)",
     lambda s: f"{added(s, 'hits', 'latency'):+.3f} / {added(s, 'hits', 'min'):+.3f}"),
    ("added to Knot asked directly: miss, average / min (ms)",
     lambda s: f"{added(s, 'misses', 'latency'):+.3f} / {added(s, 'misses', 'min'):+.3f}"),
]
ratio = hits["haven"]["per_cpu"] / hits["unbound"]["per_cpu"]
lines = [
    "## Guard resolver",
    "",
    f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} with `{command}`: `haven resolve` ({build}) and "
    f"Unbound {open(f'{work}/unbound.version').read().strip()} (Debian package, `num-threads: 1`, a forward zone "
    "for `.`, iterator only, 64 MB caches), each forwarding to the same Knot DNS, one after the other. Each resolver "
    "runs one worker thread pinned to one core; dnsperf and Knot share the other. Cache hits: "
    f"{clients} clients with up to {outstanding} queries outstanding over UDP for {duration} s after a warm-up, "
    "cycling through five questions whose answers live an hour (`dynamodb.us-east-1.bench.test` A with three "
    "addresses, the same name's AAAA with no data, a CNAME to it, a name that does not exist, the SOA). Cache "
    "misses: the same load, each question a name never asked (a wildcard in Knot's zone), so each one is "
    "forwarded; these figures include Knot's time on the shared core. Queries per resolver CPU-second is the "
    "user + system time of all its threads over the run: the per-core capacity, whether or not the client kept "
    "it busy. The last rows ask one query at a time, next to Knot asked directly. "
    f"Load average before the run: {open(f'{work}/loadavg').read().strip()} (the machine is shared: compare "
    "columns within one run).",
    "",
    "| | haven resolve | Unbound |",
    "| --- | ---: | ---: |",
] + [f"| {label} | {cell('haven')} | {cell('unbound')} |" for label, cell in rows] + [
    "",
    f"- Knot asked directly, one query at a time, average / min: {one['knot']['hits']['latency']:.3f} / "
    f"{one['knot']['hits']['min']:.3f} ms (the hit questions), {one['knot']['misses']['latency']:.3f} / "
    f"{one['knot']['misses']['min']:.3f} ms (the miss questions). On a shared machine the averages of runs "
    "a few seconds apart differ by more than what a resolver adds; the minimums are the steadier comparison.",
    f"- Cache hits per resolver CPU-second: haven resolve is {ratio:.2f}x Unbound.",
    "",
]
sys.path.insert(0, "scripts")
from docs_section import replace_section
replace_section(out, "\n".join(lines))
PY
echo "wrote $OUT"
