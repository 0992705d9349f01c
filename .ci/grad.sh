#!/usr/bin/env bash
# Full-rank gradients: the finite-difference sweep over every input form and
# d = 1..=32 and the oracle comparison, with their worst errors printed for
# the log (the tests ran in the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-features --test suite -- --nocapture grad:: \
    --skip batch_grad:: --skip diag_grad:: --skip kernel_grad:: 2>&1 \
    | grep -vE "^test .* ok$|^$|^running"
