#!/usr/bin/env bash
# SIMD kernels, dispatch levels and the batch layer.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every dispatch level the host has against the scalar reference (levels it
# lacks are printed as SKIPPED), with the default features and with
# AVX-512 and rayon; the vector exp's measured ulp error is printed.
cargo test --test simd --test batch
cargo test --release --features avx512,rayon --test simd --test batch -- --nocapture 2>&1 \
    | grep -E "SKIPPED|ulp|test result|panicked|FAILED" | sort -u

# The quick benchmark table: also checks nalgebra and faer agree with the
# crate before timing them (timings on a CI machine are not meaningful).
cargo run --release --features avx512 --example bench_table -- 0.02
