#!/usr/bin/env bash
# Interop with nalgebra, faer and ndarray (features of the same names, off by
# default): the adapter examples run, the adapters build without std, and
# without the features none of those crates is in the dependency graph. The
# adapter tests ran in the README's test command (--all-features).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo run --quiet --example nalgebra --features nalgebra
cargo run --quiet --example ndarray_batch --features ndarray
cargo build --quiet --no-default-features --features nalgebra,faer,ndarray
for features in "" "--no-default-features"; do
    # shellcheck disable=SC2086
    if cargo tree -p gaussian-kl -e normal $features | grep -E 'nalgebra|faer|ndarray'; then
        echo "interop: a numeric crate is a dependency without its feature ($features)" >&2
        exit 1
    fi
done
echo "without the features: no nalgebra, faer or ndarray in the dependency graph"
