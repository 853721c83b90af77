#!/usr/bin/env bash
# Measures Haven's authoritative DNS (`haven serve --in-memory --config`, release build) and Knot DNS
# serving the same zone, one after the other, with dnsperf and the same query file, and writes the
# table to docs/benchmarks.md ("## DNS").
#
#   scripts/dns-bench.sh                 # defaults below; override with environment variables:
#   DURATION=30 CLIENTS=4 OUTSTANDING=100 scripts/dns-bench.sh
#
# Each server is pinned to CPU $SERVER_CPU and dnsperf to CPU $CLIENT_CPU (taskset), so "per core"
# means what it says; the server's CPU time over the measured run (user + system, all its threads)
# gives queries per CPU-second, which does not depend on whether the client could keep it busy.
# Knot's zone is Haven's answers, copied with kdig, so both serve the same records.
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-docs/benchmarks.md}
ZONE=haven.test

if ! command -v dnsperf >/dev/null || ! command -v kdig >/dev/null \
  || { ! command -v knotd >/dev/null && [ ! -x /usr/sbin/knotd ]; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq knot knot-dnsutils dnsperf >/dev/null
fi
knotd=$(command -v knotd || echo /usr/sbin/knotd)
cargo build --release -q -p haven
. scripts/bench-lib.sh
"$knotd" --version | awk '{ print $NF }' >"$work/knot.version"
answers() { kdig @127.0.0.1 -p "$1" +noall +answer +norecurse "$2" "$3"; }
wait_for_soa() { # port: until the server answers the zone's SOA
  for _ in $(seq 200); do answers "$1" "$ZONE" SOA 2>/dev/null | grep -q SOA && return; sleep 0.05; done
  echo "no DNS answer on port $1" >&2; exit 1
}

# The query mix: the regional and global endpoint names (A, and AAAA which has no data: NODATA),
# the zone's SOA, and a name that does not exist (NXDOMAIN).
cat >"$work/queries" <<EOF
dynamodb.us-east-1.$ZONE A
dynamodb.us-east-1.$ZONE AAAA
dynamodb.$ZONE A
$ZONE SOA
nonexistent.$ZONE A
EOF

# Three API nodes nobody listens on: every health check fails, so the set fails open to all three
# (degraded, TTL halved) and the answers stay the same for the whole run.
haven_port=$(free_port)
cat >"$work/haven.toml" <<EOF
[zone]
apex = "$ZONE"
nameservers = [{ name = "ns1.$ZONE", addresses = ["127.0.0.1"] }]
[dns]
listen = ["127.0.0.1:$haven_port"]
[[regions]]
name = "us-east-1"
nodes = ["127.0.0.1:9", "127.0.0.2:9", "127.0.0.3:9"]
EOF

# Knot with one worker per transport; the zone file is written from Haven's answers below.
knot_port=$(free_port)
write_knot_conf "$ZONE" "$knot_port"

measure() { # name port: warm-up, then the measured dnsperf run with the server's CPU time around it
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries" -l "$WARMUP" \
    -c "$CLIENTS" -q "$OUTSTANDING" >/dev/null
  local before; before=$(cpu_seconds "$server_pid")
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries" -l "$DURATION" \
    -c "$CLIENTS" -q "$OUTSTANDING" >"$work/$1.dnsperf"
  echo "$(cpu_seconds "$server_pid") - $before" | bc -l >"$work/$1.cpu"
  grep -E "Queries (per second|completed|lost)|Average (Latency|packet)|Latency StdDev" "$work/$1.dnsperf" | sed "s/^/  $1: /"
}


cut -d' ' -f1-3 /proc/loadavg >"$work/loadavg"

taskset -c "$SERVER_CPU" target/release/haven serve --in-memory --listen "127.0.0.1:$(free_port)" \
  --config "$work/haven.toml" --log-level warn >"$work/haven.log" 2>&1 &
server_pid=$!
wait_for_soa "$haven_port"
# Wait for the plan to settle: once health checks have failed every node, the generation stops
# moving (five unchanged readings a second apart).
previous= unchanged=0
while [ "$unchanged" -lt 5 ]; do
  sleep 1
  current=$(answers "$haven_port" "_generation.$ZONE" TXT)
  if [ "$current" = "$previous" ]; then unchanged=$((unchanged + 1)); else unchanged=0; fi
  previous=$current
done
for query in "$ZONE SOA" "$ZONE NS" "ns1.$ZONE A" "dynamodb.us-east-1.$ZONE A" "dynamodb.$ZONE A" \
  "_generation.$ZONE TXT"; do
  answers "$haven_port" $query
done >"$work/$ZONE.zone"
echo "haven (pid $server_pid, port $haven_port), zone at this generation:"
sed 's/^/  /' "$work/$ZONE.zone"
measure haven "$haven_port"
if [ "$(answers "$haven_port" "_generation.$ZONE" TXT)" != "$current" ]; then
  echo "Haven's plan changed during the run: its figures mix two zones" >&2; exit 1
fi
stop_server

taskset -c "$SERVER_CPU" "$knotd" --config "$work/knot.conf" >"$work/knot.log" 2>&1 &
server_pid=$!
wait_for_soa "$knot_port"
echo "knot (pid $server_pid, port $knot_port)"
measure knot "$knot_port"
stop_server

command="DURATION=$DURATION WARMUP=$WARMUP CLIENTS=$CLIENTS OUTSTANDING=$OUTSTANDING scripts/dns-bench.sh"
python3 - "$work" "$OUT" "$command" "$DURATION" "$CLIENTS" "$OUTSTANDING" <<'PY'
import re, sys, time
work, out, command, duration, clients, outstanding = sys.argv[1:]

def figures(name):
    text = open(f"{work}/{name}.dnsperf").read()
    grab = lambda pattern: re.search(pattern, text).group(1)
    completed = int(grab(r"Queries completed:\s+(\d+)"))
    cpu = float(open(f"{work}/{name}.cpu").read())
    return {
        "qps": float(grab(r"Queries per second:\s+([\d.]+)")),
        "lost": int(grab(r"Queries lost:\s+(\d+)")),
        "latency": float(grab(r"Average Latency \(s\):\s+([\d.]+)")) * 1000,
        "max": float(grab(r"Average Latency \(s\):.*max ([\d.]+)")) * 1000,
        "stddev": float(grab(r"Latency StdDev \(s\):\s+([\d.]+)")) * 1000,
        "cpu": cpu,
        "per_cpu": completed / cpu if cpu else float("nan"),
        "sizes": grab(r"Average packet size:\s+(.*)"),
        "codes": grab(r"Response codes:\s+(.*)"),
    }

haven, knot = figures("haven"), figures("knot")
rows = [
    ("queries per second (client-observed)", lambda f: f"{f['qps']:,.0f}"),
    ("server CPU over the run (cores, pinned to one)", lambda f: f"{f['cpu'] / float(duration):.2f}"),
    ("queries per server CPU-second", lambda f: f"{f['per_cpu']:,.0f}"),
    ("average / stddev / max latency (ms)", lambda f: f"{f['latency']:.3f} / {f['stddev']:.3f} / {f['max']:.1f}"),
    ("queries lost", lambda f: f"{f['lost']}"),
    ("response codes", lambda f: f["codes"]),
    ("average packet size", lambda f: f["sizes"]),
]
lines = [
    "## DNS",
    "",
    f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} with `{command}`: Haven's authoritative DNS "
    f"(`haven serve --in-memory --config`, release build) and Knot DNS {open(f'{work}/knot.version').read().strip()} "
    "(Debian package, one UDP worker) serving the same zone (Knot's zone file is Haven's answers, copied with kdig), "
    "one after the other. Each server is pinned to one core with taskset and dnsperf to the other; "
    f"dnsperf runs {clients} clients with up to {outstanding} queries outstanding over UDP, "
    f"for {duration} s after a warm-up, cycling through five queries: "
    "`dynamodb.us-east-1.haven.test` A (three addresses) and AAAA (NODATA), `dynamodb.haven.test` A, "
    "the zone's SOA, and a name that does not exist (NXDOMAIN). "
    "Server CPU is user + system time of all its threads over the measured run; queries per CPU-second is "
    "the per-core capacity, whether or not the client kept the server busy. "
    f"Load average before the run: {open(f'{work}/loadavg').read().strip()} (the machine is shared: compare "
    "columns within one run).",
    "",
    "| | Haven | Knot DNS |",
    "| --- | ---: | ---: |",
] + [f"| {label} | {cell(haven)} | {cell(knot)} |" for label, cell in rows] + [
    "",
    f"- Queries per server CPU-second: Haven is {haven['per_cpu'] / knot['per_cpu']:.2f}x Knot DNS.",
    "",
]
sys.path.insert(0, "scripts")
from docs_section import replace_section
replace_section(out, "\n".join(lines))
PY
echo "wrote $OUT"
