#!/usr/bin/env bash
# The crate where its users run it, with Debian's rustc-web toolchain (std
# sources for -Zbuild-std) and QEMU:
#  1. aarch64-unknown-linux-gnu: the library and integration tests under
#     qemu-aarch64 (user mode), NEON detected and asserted by tests/suite/neon.rs;
#  2. no_std builds without alloc (-D warnings) for thumbv7em-none-eabihf
#     (Cortex-M4F), thumbv6m-none-eabi (Cortex-M0: no FPU, no atomics) and
#     riscv32imac-unknown-none-elf;
#  3. code size: the .text bytes of a Cortex-M4F firmware calling only the
#     fixed-dimension d = 3 KL (embedded/, binaries size and size_base,
#     opt-level "s");
#  4. the Cortex-M4F firmware (embedded/) under qemu-system-arm, board
#     mps2-an386: f32 results against f64 values computed on the host;
#  5. x86_64-unknown-none: tried, and reported (see docs/platforms.md).
# Usage: bash .ci/cross.sh [aarch64|no_std|size|firmware|x86_64_none]...
# (no argument: all five). Every build uses /usr/bin/cargo with its own target
# directory under target/cross/; rustup's cargo stays in charge of the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(aarch64 no_std size firmware x86_64_none)

# Linkers: gcc for aarch64 Linux, LLVM's lld for the bare-metal ELF
# (Debian's rustc has no rust-lld); llvm-size reads any ELF.
lld=/usr/lib/llvm-19/bin/ld.lld
need=()
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || need+=(rustc-web cargo-web)
[ -f /usr/lib/rustlib/src/rust/library/Cargo.lock ] || need+=(rust-web-src)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/libc.so ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
[ -x $lld ] || need+=(lld-19)
command -v llvm-size-19 >/dev/null || command -v llvm-size >/dev/null || need+=(llvm-19)
if [ ${#need[@]} -gt 0 ]; then
  t=$SECONDS
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "apt-get install ${need[*]}: $((SECONDS - t)) s"
fi
size_tool=$(command -v llvm-size-19 || command -v llvm-size)
/usr/bin/rustc --version
qemu-aarch64 --version | head -1

deb=(env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
     CARGO_TARGET_DIR="$root/target/cross")
# The bare-metal links: lld with the GNU-style arguments cortex-m-rt's link.x expects.
bare=(CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER=$lld)
timed() { printf '   %s: %d s wall\n' "$1" $((SECONDS - $2)); }
# The x86_64-unknown-none probe, in the background in its own target
# directory (cargo locks a target directory for the whole build; env takes
# the last CARGO_TARGET_DIR).
probe_job= probe_log=$root/target/cross-x86_64-none.log
start_probe() {
  mkdir -p "$root/target"
  "${deb[@]}" CARGO_TARGET_DIR="$root/target/cross-x86_64-none" /usr/bin/cargo build \
    --quiet --lib --release --no-default-features \
    --target x86_64-unknown-none -Zbuild-std=core > "$probe_log" 2>&1 &
  probe_job=$!
}

for step in "${steps[@]}"; do
  t=$SECONDS
  case $step in
  aarch64)
    echo "-- aarch64-unknown-linux-gnu: the crate's tests under qemu-aarch64 (NEON)"
    # opt-level 1 (the std rebuilt from source included): the same tests at
    # a fraction of opt-level 3's build time; emulation makes release necessary.
    log=$root/target/cross/aarch64-test.log
    mkdir -p "$root/target/cross"
    if ! CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
       CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
       CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
       "${deb[@]}" /usr/bin/cargo test --release --lib --tests --target aarch64-unknown-linux-gnu \
       -Zbuild-std -- --nocapture > "$log" 2>&1; then
      grep -E '^(test result|     Running|NEON)|FAILED|panicked' "$log" >&2 || true
      tail -40 "$log" >&2
      echo "aarch64: tests failed (log: $log)" >&2
      exit 1
    fi
    grep -E '^(test result|     Running)' "$log"
    passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
    echo "aarch64: $passed tests passed under qemu-aarch64"
    if [ -f tests/suite/neon.rs ]; then
      # tests/suite/neon.rs: the detection and the three kernel families, one line each.
      grep '^NEON' "$log" || true
      [ "$(grep -c '^NEON' "$log")" -eq 4 ] && grep -q '^NEON asserted' "$log" \
        || { echo "aarch64: tests/suite/neon.rs did not report all four NEON checks" >&2; exit 1; }
    else
      echo "aarch64: tests/suite/neon.rs absent in this tree, NEON not asserted" >&2
    fi
    ;;
  no_std)
    echo "-- no_std builds without alloc, -D warnings"
    [[ " ${steps[*]} " == *" x86_64_none "* ]] && start_probe
    # One cargo for the three targets: their three rebuilds of core (one
    # rustc each, mostly serial) share the two cores (111 s one after another).
    targets=(thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imac-unknown-none-elf)
    RUSTFLAGS="-D warnings" "${deb[@]}" /usr/bin/cargo build --quiet --lib --release \
      --no-default-features "${targets[@]/#/--target=}" -Zbuild-std=core
    for target in "${targets[@]}"; do
      lib=$root/target/cross/$target/release/libgaussian_kl.rlib
      [ -f "$lib" ] || { echo "no_std: $lib missing" >&2; exit 1; }
      echo "   $target (core only): built, $(stat -c %s "$lib") bytes of rlib"
    done
    ;;
  size)
    echo "-- code size: a Cortex-M4F firmware calling only full::kl_packed_fixed::<f32, 3>"
    # Two binaries of embedded/ (profile: opt-level "s", fat LTO, one codegen
    # unit): `size` calls the KL, `size_base` is the same firmware without it.
    (cd embedded && "${deb[@]}" "${bare[@]}" /usr/bin/cargo build --quiet --release \
       --target thumbv7em-none-eabihf -Zbuild-std=core --bin size --bin size_base)
    dir=$root/target/cross/thumbv7em-none-eabihf/release
    text() { "$size_tool" -A "$1" | awk '$1 == ".text" {print $2}'; }
    "$size_tool" -A "$dir/size" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss) '
    with=$(text "$dir/size"); base=$(text "$dir/size_base")
    echo "code size: .text $with bytes with the fixed d = 3 KL, $base without: the KL pulls in $((with - base)) bytes (thumbv7em-none-eabihf, opt-level \"s\")"
    ;;
  firmware)
    echo "-- Cortex-M4F firmware under qemu-system-arm (mps2-an386)"
    (cd embedded && "${deb[@]}" "${bare[@]}" /usr/bin/cargo build --quiet --release \
       --target thumbv7em-none-eabihf -Zbuild-std=core --bin firmware)
    elf=$root/target/cross/thumbv7em-none-eabihf/release/firmware
    # Semihosting carries the output and the exit status; a hang is a failure.
    timeout 60 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
      -semihosting-config enable=on,target=native -kernel "$elf"
    ;;
  x86_64_none)
    echo "-- x86_64-unknown-none (soft-float kernel target): the crate does not build there"
    # pulp compiles its x86 SIMD module for every x86_64 target, and LLVM
    # cannot lower it without SSE registers. Kept as a probe: if it ever
    # builds, docs/platforms.md and this step must change. (Started beside
    # the no_std builds when both steps run.)
    [ -n "$probe_job" ] || start_probe
    if wait "$probe_job"; then
      echo "x86_64-unknown-none: builds now: update docs/platforms.md and make this step a check" >&2
      exit 1
    fi
    grep -E 'LLVM ERROR|^error' "$probe_log" | head -3
    echo "x86_64-unknown-none: does not build (known limit, docs/platforms.md)"
    ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
  timed "$step" $t
done
