#!/usr/bin/env bash
# Fuzzes the expression parser (crates/expr) with cargo-fuzz (libFuzzer): each target in fuzz/ runs
# for MINUTES minutes (default 10), one after another on one core. Manual: not part of CI.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]     targets: parse_condition parse_update parse_projection
#                                             parse_partiql (a PartiQL statement, bound and planned)
#                                             decode_request (a DynamoDB request through the server's decoder)
#                                             storage_faults (the storage engine under injected faults and crashes)
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain. No
# sanitizer (the crate has no unsafe code), debug assertions on (overflow checks). Inputs that
# crash land in fuzz/artifacts/<target>/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
# and shrink it with `cargo fuzz tmin -s none -a <target> <file>`. New corpus entries libFuzzer finds
# are kept in fuzz/corpus/<target>/ but ignored by git (only the seed-* files are committed).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(parse_condition parse_update parse_projection parse_partiql decode_request storage_faults)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
flags=(-s none -a)
CARGO_BUILD_JOBS=1 cargo fuzz build "${flags[@]}"

status=0
for target in "${targets[@]}"; do
  echo "== $target: $minutes minute(s)"
  # -max_len reaches past the 4096-character expression limit; the dictionary holds the keywords,
  # functions and the placeholders the targets define. A storage scenario is at most 64 steps.
  args=(-max_len=5000 -dict=fuzz/expr.dict)
  case "$target" in
    decode_request) args=(-max_len=5000 -dict=fuzz/request.dict) ;;
    parse_partiql) args=(-max_len=9000 -dict=fuzz/partiql.dict) ;;
    storage_faults) args=(-max_len=512) ;;
  esac
  if ! cargo fuzz run "${flags[@]}" "$target" -- \
      -max_total_time=$((minutes * 60)) "${args[@]}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1; then
    echo "== $target: FAILED, see fuzz/artifacts/$target/"
    status=1
  fi
done
exit $status
