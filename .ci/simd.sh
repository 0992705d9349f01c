#!/usr/bin/env bash
# SIMD kernels, dispatch levels and the batch layer: which levels this host
# runs (the others print SKIPPED) and the vector exp's measured ulp error.
# The tests themselves ran in the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-features --test suite -- --nocapture simd:: 2>&1 \
    | grep -E "SKIPPED|ulp|test result|panicked|FAILED" | sort -u
