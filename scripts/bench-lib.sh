# Sourced by the benchmark scripts, from the repository root: a scratch directory ($work) removed
# on exit together with the server the script started last ($server_pid), a free port, a process's
# CPU time, stopping the server, and a Knot DNS configuration.
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cpu_seconds() { # pid: user + system CPU seconds so far, all threads
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / tck }' "/proc/$1/stat"
}

stop_server() { kill "$server_pid"; while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done; server_pid=; }

write_knot_conf() { # zone port: $work/knot.conf, Knot with one worker per transport serving $work/<zone>.zone
  cat >"$work/knot.conf" <<EOF
server:
    rundir: "$work"
    listen: 127.0.0.1@$2
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$work"
zone:
  - domain: $1
    storage: "$work"
    file: "$1.zone"
EOF
}
