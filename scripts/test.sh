#!/usr/bin/env bash
# Runs Haven's whole test suite: unit, property and integration tests (AWS SDK for Rust), the
# differential suite against DynamoDB Local, and the AWS CLI / boto3 smoke test.
# Needs: the Rust toolchain, Python 3 with pip, Java 17 and npm (for DynamoDB Local), and apt-get
# (Debian) to install Knot DNS and dig when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import boto3, awscli' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check boto3 awscli
fi

# Push mode's tests (crates/dns/tests/push_knot.rs) run a real Knot DNS server.
if ! command -v knotd >/dev/null && [ ! -x /usr/sbin/knotd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq knot >/dev/null
fi

# The DNS cluster test (crates/haven/tests/dns_cluster.rs) also asks BIND's dig, a second client.
if ! command -v dig >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsutils >/dev/null
fi

# The smoke test's TLS check makes its test certificates with openssl.
if ! command -v openssl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

cargo build --quiet --bin haven
cargo test --workspace -- --test-threads=2
python3 tests/smoke/cli_smoke.py
python3 tests/smoke/streams_boto3.py
