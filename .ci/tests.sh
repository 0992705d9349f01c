#!/usr/bin/env bash
# The no_std consumer crate (its own panic handler, panic = "abort") links the
# library without std; the oracle errors are printed for the log.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --manifest-path tests/no_std_check/Cargo.toml
cargo clippy --manifest-path tests/no_std_check/Cargo.toml --release -- -D warnings
cargo test --test oracle -- --nocapture
