#!/usr/bin/env bash
# Robustness: accuracy and special-value tests, bounded fuzzing of every
# target (stable without sanitizer, nightly with AddressSanitizer), and the
# WebAssembly checks (.ci/wasm.sh).
#
# FUZZ_SECONDS (default 24): nightly/ASan run per target; the stable run
# gets a third of it. Four targets: 4 × (8 + 24) s ≈ 2 min of fuzzing, under
# 4 min warm with start-up. SKIP_WASM=1 skips .ci/wasm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
FUZZ_SECONDS=${FUZZ_SECONDS:-24}

echo "== accuracy and special values"
cargo test --release --all-features --test accuracy -- --nocapture

echo "== fuzz targets"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +stable clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
targets=$(cargo fuzz list)
# Inputs large enough for d = 64 in full_agree (d(d+1) + 2d bytes).
opts=(-max_len=8192 -print_final_stats=1)
logs=target/fuzz-logs
mkdir -p "$logs"
# run_target TOOLCHAIN SANITIZER TARGET SECONDS: fails (with the log's tail) on any finding.
run_target() {
  local log="$logs/$3-$1.log" seeds=()
  [ -d "fuzz/seeds/$3" ] && seeds=("fuzz/seeds/$3")
  mkdir -p "fuzz/corpus/$3"
  echo "-- $3: $1, sanitizer $2, $4 s"
  # New corpus entries go to fuzz/corpus/$3 (ignored by git); the committed seeds are only read.
  # One target directory per toolchain, so that neither rebuilds the other's.
  if ! cargo "+$1" fuzz run --target-dir "fuzz/target/$1" -s "$2" "$3" "fuzz/corpus/$3" "${seeds[@]}" -- \
       -max_total_time="$4" "${opts[@]}" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $3 failed ($1, $2); artifacts in fuzz/artifacts/$3" >&2
    return 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' "$log"
}
for t in $targets; do
  run_target stable none "$t" $((FUZZ_SECONDS / 3))
  run_target nightly address "$t" "$FUZZ_SECONDS"
done

if [ "${SKIP_WASM:-0}" != 1 ]; then
  echo "== WebAssembly"
  .ci/wasm.sh
fi
echo "== robust.sh: $((SECONDS - start)) s"
