#!/usr/bin/env bash
# Diagonal Gaussians and MRL retrieval: checks beyond the shared steps of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Default features (AVX2 is the best level without `avx512`): the kernel, the
# top-k search and the gradients; print which SIMD levels this machine skips.
cargo test --test diag --test search --test diag_grad --test diag_alloc
cargo test --test search -- --nocapture every_level 2>&1 | grep -E "skipping|test result" | sort | uniq -c

# Every feature: AVX-512 level and the rayon path (parallel = serial).
cargo test --features avx512,rayon --test search --test diag --test diag_grad

# The no_std core builds and is clippy-clean without std.
cargo clippy --no-default-features -- -D warnings

# Seed 004 reproduced: the seed's three sanity checks must all hold.
out=$(cargo run --quiet --example seed004_part)
echo "$out" | tail -3
if echo "$out" | grep -q "false"; then
    echo "seed 004: a sanity check failed" >&2
    exit 1
fi
test "$(echo "$out" | grep -c "true")" -eq 3
