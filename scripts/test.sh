#!/usr/bin/env bash
# Runs Haven's whole test suite: unit, property and integration tests (AWS SDK for Rust), the
# differential suite against DynamoDB Local, and the AWS CLI / boto3 smoke test.
# Needs: the Rust toolchain, Python 3 with pip, Java 17 and npm (for DynamoDB Local).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import boto3, awscli' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check boto3 awscli
fi

cargo build --quiet --bin haven
cargo test --workspace -- --test-threads=2
python3 tests/smoke/cli_smoke.py
