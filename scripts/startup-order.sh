#!/usr/bin/env bash
# Writes crates/haven/startup-order.txt, the order in which the linker lays out the functions of
# `haven` (crates/haven/build.rs): first those start-up and the first request run, then those the
# common item requests add. The kernel maps an executable's code in blocks around each page first
# touched, so the 1.2 MB of code start-up runs, spread over 20 MB of text, made the idle server
# hold about 7 MB of it; laid out together it holds little more than what it runs.
#
# Runs a release `haven serve --in-memory` under valgrind's callgrind (names left mangled, as the
# linker knows them), dumps the functions run up to the first answered ListTables, drives CreateTable
# and the item operations, and lists each part's functions of the haven binary, part one first.
# Rerun it after a toolchain or dependency upgrade: names the linker no longer finds are skipped
# (their functions keep their default place), so a stale list costs memory, never correctness.
#
#   scripts/startup-order.sh                      # builds target/release/haven first
#   scripts/startup-order.sh /tmp/haven-before    # another build's binary
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
binary=${1:-}
if [ -z "$binary" ]; then
  cargo build --release -q -p haven
  binary=target/release/haven
fi
. scripts/bench-lib.sh
port=$(free_port)
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/calls" "$binary" serve \
  --listen "127.0.0.1:$port" --in-memory --log-level warn >"$work/log" 2>&1 &
server_pid=$!
drive() { python3 scripts/startup-order.py drive "$port" "$1"; }
drive first
callgrind_control --dump "$server_pid" >/dev/null # part one: start-up and the first answer
drive items
callgrind_control --dump "$server_pid" >/dev/null # part two: the item operations
stop_server
python3 scripts/startup-order.py list "$work/calls" "$(readlink -f "$binary")" \
  crates/haven/startup-order.txt
