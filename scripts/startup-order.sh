#!/usr/bin/env bash
# Writes crates/haven/startup-order.txt, the order in which the linker lays out the functions of
# `haven` (crates/haven/build.rs): first those start-up and the first request run (in memory, then
# what a durable start adds), then those the common item requests add. The kernel maps an
# executable's code in blocks around each page first touched, so the 1.2 MB of code start-up runs,
# spread over 20 MB of text, made the idle server hold about 7 MB of it; laid out together it holds
# little more than what it runs.
#
# Runs a release `haven serve --in-memory` under valgrind's callgrind (names left mangled, as the
# linker knows them), dumps the functions run up to the first answered ListTables, drives CreateTable
# and the item operations; then a durable `haven serve --data-dir` on an empty directory up to its
# first answer. Lists the haven binary's functions in that order: the in-memory start, what the
# durable start adds (opening and creating the database), what the item operations add.
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
calls() { # name storage...: a start under callgrind, written to $work/name.1, .2... at each dump
  port=$(free_port)
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$1" "$binary" serve \
    --listen "127.0.0.1:$port" "${@:2}" --log-level warn >"$work/log" 2>&1 &
  server_pid=$!
}
drive() { python3 scripts/startup-order.py drive "$port" "$1"; }
dump() { callgrind_control --dump "$server_pid" >/dev/null; }
calls memory --in-memory
drive first
dump # memory.1: start-up and the first answer
drive items
dump # memory.2: the item operations
stop_server
calls disk --data-dir "$work/data"
drive first
dump # disk.1: a durable start on an empty directory and the first answer
stop_server
python3 scripts/startup-order.py list "$(readlink -f "$binary")" crates/haven/startup-order.txt \
  "$work/memory.1" "$work/disk.1" "$work/memory.2"
