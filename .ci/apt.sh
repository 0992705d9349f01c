#!/usr/bin/env bash
# The Debian packages .ci/cross.sh and .ci/wasm.sh need, in one apt run
# (.ci/run starts it in the background at the beginning; each script still
# checks and installs its own packages when run alone).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
t=$SECONDS
apt-get update -qq
# The newest lld-N for wasm-ld (lld-22 on some snapshots), and lld-19 with
# llvm-19 for the bare-metal links and llvm-size.
lld=$(apt-cache search --names-only '^lld-[0-9]+$' | sed -n 's/^\(lld-[0-9]*\) .*/\1/p' | sort -t- -k2 -n | tail -n 1)
apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src wasi-libc \
  "$lld" lld-19 llvm-19 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user qemu-system-arm >/dev/null
echo "apt: the cross and WebAssembly packages installed in $((SECONDS - t)) s"
