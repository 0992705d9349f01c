#!/usr/bin/env bash
# Diagonal Gaussians and MRL retrieval: which SIMD levels the top-k search
# skipped on this host (the tests ran in the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-features --test search -- --nocapture every_level 2>&1 \
    | grep -E "skipping|test result" | sort | uniq -c
