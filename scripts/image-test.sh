#!/usr/bin/env bash
# The container image in CI (issue 25). Builds it FROM scratch around the binary the suite already
# built (docker/build-local-image.sh: no registry needed), runs it as amazon/dynamodb-local's users
# do (podman run -p on 127.0.0.1) and drives it with boto3 (tests/smoke/image_boto3.py):
#   - the image's default command (-jar DynamoDBLocal.jar -inMemory);
#   - AWS's compose command (-sharedDb -dbPath ./data) on a bind-mounted data folder, across a
#     container restart;
#   - -delayTransientStatuses, through boto3's waiters;
# each started once the image's HEALTHCHECK (`haven healthcheck`) passes.
# Where no container engine can build or run the image here, the same entry point runs with the
# same arguments as a plain process (the Dockerfile's CMD, the compose command) and the last line
# says so, with the reason: a skipped image is never silent.
#   scripts/image-test.sh [BINARY]      default: target/debug/haven (built if missing)
# PODMAN_OPTS (default --storage-driver vfs) goes to every podman call; IMAGE_RUN_OPTS to `podman
# run` (default: runc, as crun refuses hybrid cgroups; limits at or under the host's, as root
# without CAP_SYS_RESOURCE may not raise them; no health-check timer, as there is no systemd).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
binary=${1:-target/debug/haven}
[ -x "$binary" ] || cargo build --quiet --bin haven
tag=localhost/haven:image-test
read -r -a podman_opts <<<"${PODMAN_OPTS:---storage-driver vfs}"
read -r -a run_opts <<<"${IMAGE_RUN_OPTS:---runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --health-interval disable}"
started=$SECONDS
work=$(mktemp -d)
containers=()
processes=()
cleanup() {
  for name in "${containers[@]}"; do pod rm -f "$name" >/dev/null 2>&1 || true; done
  for pid in "${processes[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${built:-}" ]; then pod rmi -f "$tag" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# podman, without its complaints that no systemd runs the health-check timers (disabled above).
pod() {
  podman "${podman_opts[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls `$@` every 100 ms until it succeeds, for at most 10 s.
wait_for() {
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "image-test: not ready: $*" >&2
  return 1
}

# Starts a run: start NAME PORT DATA_DIR ENV -- ARGS... (ENV: NAME=VALUE or -; ARGS may be none).
start_image() {
  local name=$1 port=$2 data=$3 env=$4
  shift 5
  local options=(-d --name "$name" "${run_opts[@]}" -p "127.0.0.1:$port:8000")
  [ "$data" = - ] || options+=(-v "$data:/home/dynamodblocal/data")
  [ "$env" = - ] || options+=(-e "$env")
  containers+=("$name")
  pod run "${options[@]}" "$tag" "$@" >/dev/null
  wait_for pod healthcheck run "$name"
}
restart_image() {
  pod restart "$1" >/dev/null
  wait_for pod healthcheck run "$1"
}

# The same runs as plain processes: the entry point (the binary) with the same arguments, in a
# working folder laid out like the image's, on the port the image would publish.
declare -A process_args process_env process_home process_port process_pid
start_process() {
  local name=$1 port=$2 data=$3 env=$4
  shift 5
  local home=$work/$name
  mkdir -p "$home"
  if [ "$data" = - ]; then mkdir -p "$home/data"; else ln -s "$data" "$home/data"; fi
  [ $# -gt 0 ] || set -- "${default_cmd[@]}"
  process_args[$name]="$* -port $port"
  process_env[$name]=$env
  process_home[$name]=$home
  process_port[$name]=$port
  launch "$name"
}
launch() {
  local name=$1 env=()
  [ "${process_env[$name]}" = - ] || env=("${process_env[$name]}")
  # shellcheck disable=SC2086
  (cd "${process_home[$name]}" && exec env HAVEN_HOST=127.0.0.1 "${env[@]}" \
    "$root/$binary" ${process_args[$name]} >/dev/null 2>&1) &
  process_pid[$name]=$!
  processes+=($!)
  wait_for env HAVEN_HEALTHCHECK_ADDRESS="127.0.0.1:${process_port[$name]}" "$binary" healthcheck
}
restart_process() {
  kill "${process_pid[$1]}"
  wait "${process_pid[$1]}" 2>/dev/null || true
  launch "$1"
}

# The Dockerfile's default command, for the run without the image.
default_cmd=()
while IFS= read -r arg; do default_cmd+=("$arg"); done < <(
  python3 -c 'import json, sys
line = next(l for l in open("docker/Dockerfile") if l.startswith("CMD "))
print("\n".join(json.loads(line[4:])))')

# Which path runs: the image if podman builds it and runs it, else the plain processes.
reason=""
if ! command -v podman >/dev/null; then
  reason="podman is not installed"
elif ! built=$(docker/build-local-image.sh "$binary" "$tag" 2>&1); then
  reason="the image does not build: $(tail -1 <<<"$built")"
  built=""
elif ! probe=$(pod run --rm "${run_opts[@]}" "$tag" --version 2>&1); then
  reason="podman cannot run a container here: $(grep -v 'level=' <<<"$probe" | tail -1)"
fi
if [ -z "$reason" ]; then
  path=image
  echo "image-test: $built"
else
  path=process
  echo "image-test: NOT running the image ($reason); running its entry point and arguments as processes"
fi

drive() { python3 tests/smoke/image_boto3.py "$1" "http://127.0.0.1:$2"; }
compose=(-jar DynamoDBLocal.jar -sharedDb -dbPath ./data)
data=$work/compose-data
mkdir -p "$data"
chown 65532:65532 "$data" 2>/dev/null || chmod 0777 "$data"   # for the image's user

port=$(free_port)
"start_$path" default "$port" - - --
drive use "$port"
port=$(free_port)
"start_$path" compose "$port" "$data" - -- "${compose[@]}"
drive use "$port"
"restart_$path" compose
drive persisted "$port"
[ -n "$(ls -A "$data")" ] || { echo "image-test: nothing written to the data volume" >&2; exit 1; }
port=$(free_port)
"start_$path" transient "$port" - HAVEN_TRANSIENT_STATUS_MS=1000 -- -jar DynamoDBLocal.jar -inMemory -delayTransientStatuses
drive waiters "$port"

if [ "$path" = image ]; then
  echo "image-test: passed with the image (podman) in $((SECONDS - started))s"
else
  echo "image-test: passed WITHOUT the image ($reason) in $((SECONDS - started))s"
fi
