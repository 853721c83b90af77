#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests, on a loopback port, in a temporary directory.
#
#   scripts/postgres-test.sh PORT [postgres option...]      e.g. -c max_connections=300
#   scripts/postgres-test.sh PORT --standby-of PRIMARY_PORT [postgres option...]
#
# Creates a cluster (superuser "haven", password "haven", password authentication over TCP),
# starts it on 127.0.0.1:PORT, prints "ready DIR" once it accepts connections, then waits until
# its standard input closes, which happens when the process that started it exits, however it
# exits. It then stops the server by its PID and removes the directory. PostgreSQL refuses to run
# as root, so as root the server runs as the "postgres" system user of Debian's package
# (apt-get install postgresql). With --standby-of, the cluster is instead a streaming replica of the
# test server on PRIMARY_PORT (pg_basebackup), which a primary started with
# -c synchronous_standby_names=* waits for at every commit. The tests start it through
# haven_storage_postgres::testing.
set -euo pipefail

port=$1
shift
primary=
if [ "${1:-}" = --standby-of ]; then
  primary=$2
  shift 2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ ! -x "$bin/postgres" ]; then
  echo "postgres-test.sh: PostgreSQL is not installed (Debian: apt-get install postgresql)" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/haven-postgres.XXXXXX")
pid=
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}
stop() {
  if [ -n "$pid" ]; then
    kill -QUIT "$pid" 2>/dev/null || true # immediate shutdown: the data is thrown away
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop EXIT
[ "$(id -u)" = 0 ] && chown postgres: "$dir"

echo haven >"$dir/password"
if [ -n "$primary" ]; then
  create=(env PGPASSWORD=haven "$bin/pg_basebackup" --host=127.0.0.1 --port="$primary"
    --username=haven --pgdata="$dir/data" --write-recovery-conf --wal-method=stream)
else
  create=("$bin/initdb" --pgdata="$dir/data" --username=haven --pwfile="$dir/password"
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync)
fi
if ! as_owner "${create[@]}" >"$dir/create.log" 2>&1; then
  cat "$dir/create.log" >&2
  exit 1
fi
as_owner "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --silent --wait \
  --timeout=20 start -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir $*" ||
  {
    cat "$dir/server.log" >&2
    exit 1
  }
# The postmaster's PID, as it recorded it (pg_ctl has exited; the server runs on its own).
pid=$(head -n 1 "$dir/data/postmaster.pid")
echo "ready $dir"
cat >/dev/null || true
