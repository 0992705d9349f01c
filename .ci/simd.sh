#!/usr/bin/env bash
# SIMD kernels, dispatch levels and the batch layer.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every dispatch level the host has against the scalar reference (levels it
# lacks are printed as SKIPPED), in release with every feature (the debug
# run is the README's test command); the vector exp's measured ulp error is
# printed. Every CI step in release uses --all-features, so they share one build.
cargo test --release --all-features --test simd --test batch -- --nocapture 2>&1 \
    | grep -E "SKIPPED|ulp|test result|panicked|FAILED" | sort -u

# The quick benchmark table: also checks nalgebra and faer agree with the
# crate before timing them (timings on a CI machine are not meaningful).
cargo run --release --all-features --example bench_table -- 0.02
