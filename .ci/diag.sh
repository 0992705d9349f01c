#!/usr/bin/env bash
# Diagonal Gaussians and MRL retrieval: checks beyond the shared steps of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Default features (AVX2 is the best level without `avx512`): the kernel, the
# top-k search and the gradients; print which SIMD levels this machine skips.
cargo test --test diag --test search --test diag_grad --test diag_alloc
cargo test --test search -- --nocapture every_level 2>&1 | grep -E "skipping|test result" | sort | uniq -c

# The no_std core builds and is clippy-clean without std.
cargo clippy --no-default-features -- -D warnings
