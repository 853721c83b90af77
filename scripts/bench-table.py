#!/usr/bin/env python3
"""Turns the results scripts/bench-compare.sh gathered into one markdown comparison table and puts it
in docs/benchmarks.md under "## Haven vs its peers", replacing only that section."""
import json, os, platform, subprocess, sys, time

work, out, command, targets, duration, warmup, items = sys.argv[1:8]
targets = targets.split()
NAMES = {"haven-memory": "Haven (--in-memory)", "haven": "Haven (durable, on disk)",
         "ruststack": "RustStack 0.7.2 (in memory)", "dynoxide-memory": "Dynoxide 3.2.0 (in memory)",
         "dynoxide-file": "Dynoxide 3.2.0 (on a file)", "ddb-memory": "DynamoDB Local (in memory)",
         "ddb-disk": "DynamoDB Local (on disk)", "ceiling": "ceiling probe"}
MEMORY_PEERS = ("ruststack", "dynoxide-memory", "ddb-memory")
DURABLE_PEERS = ("dynoxide-file", "ddb-disk")
HEADING = "## Haven vs its peers"


def read(target, what, parse=float):
    path = os.path.join(work, f"{target}.{what}")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if parse == "json" else parse(text) if text else None


def result(target, workload):
    return read(target, f"{workload}.json", "json")


def num(x):
    return "—" if x is None else f"{x:,.0f}"


def ms(us):
    return "—" if us is None else f"{us / 1000:.2f}"


def latencies(r):
    if not r:
        return "—"
    l = r["latency"]
    return " / ".join(ms(l[k]) for k in ("p50_us", "p99_us", "p999_us", "max_us"))


def cores(target, workload):
    cpu = read(target, f"{workload}.cpu")
    return "—" if cpu is None else f"{cpu / (float(duration) + float(warmup)):.2f}"


def cpu_per_op(target, workload):
    """Server CPU (µs) per operation, warm-up included, or per item for a load."""
    cpu, r = read(target, f"{workload}.cpu"), result(target, workload)
    if cpu is None or not r:
        return None
    count = r["items"] if workload.startswith("load") else r["ops"] + r.get("warmup_ops", 0)
    return cpu * 1e6 / count if count else None


def us(x):
    return "—" if x is None else f"{x:.1f}"


def mb(kb):
    return "—" if kb is None else f"{kb / 1024:.1f} MB"


def disk(target):
    size, apparent = read(target, "disk"), read(target, "disk_apparent")
    if size is None:
        return "— (in memory)"
    logical = int(items) * 1024
    return f"{size / 1e6:.0f} MB allocated ({size / logical:.2f}x logical); files {apparent / 1e6:.0f} MB ({apparent / logical:.2f}x)"


WORKLOADS = {"a": "A (50% GetItem, 50% UpdateItem)", "b": "B (95% GetItem, 5% UpdateItem)", "c": "C (100% GetItem)",
             "d": "D (read latest: 95% GetItem, 5% PutItem)", "e": "E (95% Query of ~25 items, 5% PutItem)",
             "f": "F (50% GetItem, 50% read-modify-write)"}


def ran(w):
    return any(result(t, w) for t in targets)


def rows():
    r = lambda t, w, key: (result(t, w) or {}).get(key)
    yield "startup to first answer (ms)", [f"{read(t, 'startup'):.0f}" for t in targets]
    yield "idle RSS after start", [mb(read(t, "idle_rss")) for t in targets]
    yield "load, PutItem: items/s", [num(r(t, "load_put", "items_per_sec")) for t in targets]
    yield "load, PutItem: p50 / p99 / p99.9 / max (ms)", [latencies(result(t, "load_put")) for t in targets]
    yield "load, PutItem: server CPU per item (µs)", [us(cpu_per_op(t, "load_put")) for t in targets]
    yield "load, BatchWriteItem: items/s", [num(r(t, "load", "items_per_sec")) for t in targets]
    yield "load: p50 / p99 / p99.9 / max per batch (ms)", [latencies(result(t, "load")) for t in targets]
    yield "load: server CPU (cores of 2)", [cores(t, "load") for t in targets]
    yield "load: server CPU per item (µs)", [us(cpu_per_op(t, "load")) for t in targets]
    for w in filter(ran, WORKLOADS):
        name = WORKLOADS[w]
        yield f"workload {name}: ops/s", [num(r(t, w, "ops_per_sec")) for t in targets]
        yield f"workload {w.upper()}: p50 / p99 / p99.9 / max (ms)", [latencies(result(t, w)) for t in targets]
        yield f"workload {w.upper()}: server CPU (cores of 2)", [cores(t, w) for t in targets]
        yield f"workload {w.upper()}: server CPU per operation (µs)", [us(cpu_per_op(t, w)) for t in targets]
        yield f"workload {w.upper()}: errors", [num(r(t, w, "errors")) for t in targets]
    yield "workload A at half its peak, open loop: p50 / p99 / p99.9 / max (ms)", [latencies(result(t, "a_half")) for t in targets]
    yield "peak RSS", [mb(read(t, "peak_rss")) for t in targets]
    yield "data on disk after load, A and C", [disk(t) for t in targets]
    yield "client CPU per request, A / C (µs)", [
        " / ".join("—" if not result(t, w) else f"{result(t, w)['client_cpu_us_per_op']:.1f}" for w in ("a", "c"))
        for t in targets]


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "—"


# What issue 26 compares: the figure of each workload, and what it counts.
COMPARED = (("load_put", "items_per_sec", "PutItem load"), ("load", "items_per_sec", "BatchWriteItem load"),
            ("a", "ops_per_sec", "workload A"), ("c", "ops_per_sec", "workload C"), ("e", "ops_per_sec", "workload E"))


def summary():
    figure = lambda t, w, key: (result(t, w) or {}).get(key) if t in targets else None
    lines = []
    for w, key, label in COMPARED:
        peers = [(figure(t, w, key), t) for t in MEMORY_PEERS if figure(t, w, key)]
        if figure("haven-memory", w, key) and peers:
            best, peer = max(peers)
            lines.append(f"- {label}: Haven --in-memory is {ratio(figure('haven-memory', w, key), best)} the fastest "
                         f"in-memory peer ({NAMES[peer]}).")
        durable = [f"{ratio(figure('haven', w, key), figure(t, w, key))} {NAMES[t]}"
                   for t in DURABLE_PEERS if figure(t, w, key)]
        if figure("haven", w, key) and durable:
            lines.append(f"- {label}: Haven durable is " + " and ".join(durable) + ".")
    ops = lambda t, w: figure(t, w, "ops_per_sec")
    for haven in ("haven-memory", "haven"):
        if ops(haven, "c") and ops("ceiling", "c"):
            lines.append(f"- Workload C on {NAMES[haven]} reaches {100 * ops(haven, 'c') / ops('ceiling', 'c'):.0f}% of the "
                         "ceiling probe (a server on the same HTTP stack answering every request with a canned 1 KB "
                         "GetItem response).")
    return lines


def distribution():
    found = [result(t, w)["distribution"] for t in targets for w in ("a", "c") if result(t, w)]
    return found[0] if found else "?"


def loadavg():
    with open(os.path.join(work, "loadavg")) as f:
        return f.read().strip()


def section():
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    lines = [HEADING, "",
             f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores ({cpu or platform.machine()}), one target after another, "
             f"with `{command}`:", "",
             f"{items} items of 1 KB loaded with PutItem (one a request, on a table of their own), then {items} with "
             f"BatchWriteItem (25 a request), then YCSB's workloads in the order of "
             f"the table (E on a third table of {items} items keyed by partition and sort key; DynamoDB Local on disk skips "
             f"B, D and F, its load being slow), each {duration} s measured after {warmup} s of warm-up; {distribution()} keys, "
             "closed loop over keep-alive HTTP/1.1 connections with SigV4-signed requests (`haven-bench`, one client thread). "
             "Startup is the time from spawning the server to its first answered ListTables (polled every 0.1 ms; for "
             "DynamoDB Local this includes `dynamodb-local.sh` and the JVM). Server CPU is user+system time over warm-up and "
             "measurement, in cores, and per operation (warm-up's included) or per item loaded. Latencies are as seen by the client and include its own queueing. Client CPU per "
             "request is the load generator's user+system time (warm-up included) over its requests; on loopback the "
             f"kernel's TCP work for both ends is partly charged to it. Load average before the run: {loadavg()} (the "
             "machine is shared with other builds, so two runs minutes apart can differ by a third: compare columns "
             "within one run).", "",
             "| | " + " | ".join(NAMES[t] for t in targets) + " |",
             "| --- |" + " ---: |" * len(targets)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows()]
    return "\n".join(lines + [""] + summary() + [""])


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docs_section import replace_section

replace_section(out, section())
