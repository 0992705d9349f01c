#!/usr/bin/env bash
# Robustness: accuracy and special-value tests, bounded fuzzing of every
# target (stable without sanitizer, nightly with AddressSanitizer), and the
# WebAssembly checks (.ci/wasm.sh).
#
# FUZZ_SECONDS (default 30): nightly/ASan run per target; the stable run
# gets a third of it. SKIP_WASM=1 skips .ci/wasm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

echo "== accuracy and special values"
cargo test --release --test accuracy -- --nocapture
cargo test --test robustness

echo "== fuzz targets"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +stable clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
targets=$(cargo fuzz list)
# Inputs large enough for d = 64 in full_agree (d(d+1) + 2d bytes).
opts=(-max_len=8192 -print_final_stats=1)
for t in $targets; do
  # The committed seeds are read; new corpus entries go to fuzz/corpus/$t (ignored by git).
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  mkdir -p "fuzz/corpus/$t"
  echo "-- $t: stable, no sanitizer, $((FUZZ_SECONDS / 3)) s"
  cargo +stable fuzz run -s none "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time=$((FUZZ_SECONDS / 3)) "${opts[@]}" 2>&1 | grep -E '^(stat::|Done|==)|panicked|ERROR' || true
  test "${PIPESTATUS[0]}" -eq 0
  echo "-- $t: nightly, AddressSanitizer, $FUZZ_SECONDS s"
  cargo +nightly fuzz run -s address "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$FUZZ_SECONDS" "${opts[@]}" 2>&1 | grep -E '^(stat::|Done|==)|panicked|ERROR' || true
  test "${PIPESTATUS[0]}" -eq 0
done

if [ "${SKIP_WASM:-0}" != 1 ]; then
  echo "== WebAssembly"
  .ci/wasm.sh
fi
echo "== robust.sh: $((SECONDS - start)) s"
