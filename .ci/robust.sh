#!/usr/bin/env bash
# Robustness: accuracy and special-value tests, bounded fuzzing of every
# target (nightly, no sanitizer: the crate has no unsafe code), and the WebAssembly checks
# (.ci/wasm.sh).
#
# FUZZ_SECONDS (default 30): the run per target, two targets at a time
# (5 × 30 s of fuzzing in about 1.5 min), after one cold build of about 2.5 min.
# One build, without a sanitizer: the crate has no unsafe code (bounds are
# always checked, overflow is a panic with -a), so AddressSanitizer only
# watches the dependencies' unsafe code, and it cost 85 s of build (242 s
# against 158 s on 2 cores) and half the executions.
# docs/fuzzing.md gives the ASan command for long runs. SKIP_WASM=1 skips .ci/wasm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

echo "== accuracy table"
cargo test --all-features --test suite -- --nocapture accuracy::

echo "== fuzz targets"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +stable clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
targets=$(cargo fuzz list)
# Inputs large enough for d = 64 in full_agree (d(d+1) + 2d bytes).
# An input that runs over 30 s is a finding (a hang), not a wait for the default 20 minutes.
opts=(-max_len=8192 -print_final_stats=1 -timeout=30)
# cargo-fuzz builds with one codegen unit by default: a single thread for the
# largest crate (no_panic reaches every kernel at every SIMD level). Sixteen
# halve the build on two cores, and opt-level 1 takes another quarter off, for
# short runs that execute somewhat fewer inputs per second (long runs: defaults).
# Debug assertions on (-a): arithmetic overflow is a panic, which `no_panic` must not find.
build=(--codegen-units 16 -a)
export CARGO_PROFILE_RELEASE_OPT_LEVEL=1
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
  if ! cargo "+$1" fuzz run "${build[@]}" --target-dir "fuzz/target/$1" -s "$2" "$3" \
       "fuzz/corpus/$3" "${seeds[@]}" -- \
       -max_total_time="$4" "${opts[@]}" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $3 failed ($1, $2); artifacts in fuzz/artifacts/$3" >&2
    return 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' "$log"
}
# build_all TOOLCHAIN SANITIZER: every target, before any runs.
build_all() {
  local t0=$SECONDS log="$logs/build-$1.log"
  if ! cargo "+$1" fuzz build "${build[@]}" --target-dir "fuzz/target/$1" -s "$2" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz build failed ($1, $2)" >&2
    return 1
  fi
  echo "-- built every target ($1, sanitizer $2) in $((SECONDS - t0)) s"
}
build_all nightly none
# The runs are single-threaded: two at a time keep both cores busy (each
# writes its own log; a failure prints that log's tail and fails the step).
fuzz_failed=0
running=0
for t in $targets; do
  for job in "nightly none $t $FUZZ_SECONDS"; do
    if [ "$running" -ge 2 ]; then
      wait -n || fuzz_failed=1
      running=$((running - 1))
    fi
    # shellcheck disable=SC2086
    run_target $job &
    running=$((running + 1))
  done
done
while [ "$running" -gt 0 ]; do
  wait -n || fuzz_failed=1
  running=$((running - 1))
done
[ "$fuzz_failed" -eq 0 ] || { echo "fuzzing found a failure (logs in $logs)" >&2; exit 1; }

unset CARGO_PROFILE_RELEASE_OPT_LEVEL

if [ "${SKIP_WASM:-0}" != 1 ]; then
  echo "== WebAssembly"
  .ci/wasm.sh
fi
echo "== robust.sh: $((SECONDS - start)) s"
