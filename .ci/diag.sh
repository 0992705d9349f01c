#!/usr/bin/env bash
# Diagonal Gaussians and MRL retrieval: which SIMD levels the top-k search
# skipped on this host (the tests ran in the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-features --test suite -- --nocapture search::every_level \
    --skip kernel_search:: 2>&1 \
    | grep -E "skipping|test result" | sort | uniq -c
