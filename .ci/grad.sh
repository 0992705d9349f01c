#!/usr/bin/env bash
# Full-rank gradients: the tests in release mode (the finite-difference sweep
# over every input form and d = 1..=32, with its worst error printed for the
# log) and one pass of every gradient benchmark (criterion's --test mode runs
# each once, checking that the benches run, not timing them).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --release --all-features --test grad -- --nocapture
cargo bench --all-features --bench grad -- --test
