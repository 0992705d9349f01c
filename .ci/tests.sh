#!/usr/bin/env bash
# The no_std consumer crate (its own panic handler, panic = "abort") links the
# library without std; the oracle errors are printed for the log.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo clippy --manifest-path tests/no_std_check/Cargo.toml -- -D warnings
cargo build --manifest-path tests/no_std_check/Cargo.toml
cargo test --all-features --test suite -- --nocapture oracle::
