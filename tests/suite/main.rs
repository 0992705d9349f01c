//! The crate's integration tests, one binary (one link, and the generic
//! kernels instantiated once rather than once per file: a third of the
//! separate files' build time, and less still in the emulated release builds
//! of `.ci/cross.sh` and `.ci/wasm.sh`). Run one file's tests by its module:
//! `cargo test --test suite -- simd::`.
//!
//! The counting global allocator of the zero-allocation tests is installed
//! for the whole binary; it counts per thread, so tests running in parallel
//! do not see each other's allocations.

mod common;
mod counting;
mod dd_reference;

mod accuracy;
mod alloc;
mod api_full;
mod batch;
mod batch_alloc;
mod batch_grad;
mod diag;
mod diag_alloc;
mod diag_grad;
mod grad;
mod interop;
mod kernel_blocked;
mod kernel_grad;
mod kernel_lanes;
mod kernel_search;
mod monte_carlo;
mod neon;
mod oracle;
mod reference;
mod robustness;
mod search;
mod simd;
