#!/usr/bin/env bash
# The test suite of the full-rank kernels: reference, oracle, Monte-Carlo and
# allocation tests, the no-default-features build, and the no_std link check.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --test reference --test oracle --test monte_carlo --test alloc -- --nocapture
cargo test --no-default-features
cargo build --release --manifest-path tests/no_std_check/Cargo.toml
cargo clippy --manifest-path tests/no_std_check/Cargo.toml --release -- -D warnings
