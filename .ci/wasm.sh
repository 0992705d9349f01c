#!/usr/bin/env bash
# WebAssembly, for real, with Debian's rustc-web toolchain (Rust 1.96, every
# wasm32 target, std sources for -Zbuild-std):
#  1. the crate (no_std, default features off) in wasm/, a cdylib for
#     wasm32-unknown-unknown with simd128, loaded by Node: KL values must be
#     bit-identical to the native build's on the oracle cases (wasm/check.js);
#  2. the crate's unit and integration tests for wasm32-wasip1, run under
#     Node's WASI (wasm/wasi-run.js).
# rustup's cargo stays in charge of everything else; these builds use
# /usr/bin/cargo with their own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DEBIAN_FRONTEND=noninteractive
# wasm-ld from the newest lld-N package the archive has (lld-22 on some
# Debian snapshots, lld-19 on others).
wasm_ld() { compgen -c wasm-ld- | sort -t- -k3 -n | tail -n 1; }
if [ -z "$(wasm_ld)" ] || [ ! -x /usr/bin/rustc ] || [ ! -x /usr/bin/cargo ] \
   || [ ! -f /usr/lib/rustlib/src/rust/library/Cargo.lock ] || [ ! -d /usr/lib/wasm32-wasi ]; then
  apt-get update -qq
  lld=$(apt-cache search --names-only '^lld-[0-9]+$' | sed -n 's/^\(lld-[0-9]*\) .*/\1/p' | sort -t- -k2 -n | tail -n 1)
  apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src "$lld" wasi-libc >/dev/null
fi
wasm_ld=$(wasm_ld)
echo "linker: $wasm_ld"
/usr/bin/rustc --version
node --version

deb=(env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
     CARGO_TARGET_DIR="$root/target/wasm"
     CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$wasm_ld"
     CARGO_TARGET_WASM32_WASIP1_LINKER="$wasm_ld")

echo "-- wasm32-unknown-unknown + simd128, checked from Node"
(cd wasm && RUSTFLAGS="-C target-feature=+simd128" "${deb[@]}" /usr/bin/cargo build --release \
   -Zbuild-std=core,alloc --target wasm32-unknown-unknown)
module=$root/target/wasm/wasm32-unknown-unknown/release/gaussian_kl_wasm.wasm
if command -v llvm-objdump >/dev/null; then
  echo "simd128 instructions in the module: $(llvm-objdump -d "$module" | grep -cE '(f64x2|f32x4|i32x4|i64x2|v128)\.')"
fi
cargo run --quiet --release --example oracle_kl > "$root/target/wasm/native.json"
node wasm/check.js "$module" tests/data/torch_kl_cases.json "$root/target/wasm/native.json"

echo "-- wasm32-wasip1: the crate's tests under Node's WASI"
# opt-level 1 (the std rebuilt from source included): 30% less build time than
# 3, the same tests; the module above is the fully optimized build.
CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $root/wasm/wasi-run.js" \
RUSTFLAGS="-C target-feature=+simd128 -C panic=abort -C link-self-contained=no -L /usr/lib/wasm32-wasi \
  -C link-arg=/usr/lib/wasm32-wasi/crt1-command.o -C link-arg=--unresolved-symbols=ignore-all" \
  "${deb[@]}" /usr/bin/cargo test --release --lib --tests --target wasm32-wasip1 \
  -Zbuild-std=std,panic_abort,test -Zpanic-abort-tests -- -Zunstable-options --force-run-in-process
