#!/usr/bin/env bash
# Builds the haven-dynamodb wheel around the debug binary CI has already compiled
# (python/build_wheel.py), installs it into a fresh virtual environment with pytest, and runs the
# sample suite (python/tests) with its fixtures, as a project using Haven from pip would.
#   scripts/wheel-test.sh [BINARY]     default: target/debug/haven (built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/debug/haven}
[ -x "$binary" ] || cargo build --quiet --bin haven
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
wheel=$(python3 python/build_wheel.py --binary "$binary" --out "$work/dist")
echo "wheel-test: built $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) in $((SECONDS - started))s"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel" pytest
# Run from outside the repository, so that the installed package (not python/) is imported.
cd "$work"
"$work/venv/bin/haven" --version
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/python/tests"
echo "wheel-test: passed in $((SECONDS - started))s"
