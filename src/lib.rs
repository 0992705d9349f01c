//! # gaussian-kl
//!
//! SIMD-optimized, `no_std`, allocation-free kernels for the Kullback–Leibler
//! divergence between Gaussians:
//!
//! - [`full`]: full-rank Gaussians whose Cholesky factors arrive packed
//!   (`d(d+1)/2` raw numbers, `exp` on the diagonal, as a VAE posterior
//!   emits them), dense, or as covariance matrices.
//!   [`full::kl_grad`] and its siblings return the KL and its gradient in one
//!   fused pass (vector-Jacobian products for custom autodiff operations).
//! - `batch` (feature `std`): batched full-rank KL over PyTorch-layout slices
//!   with SIMD kernels (one pair per lane for small `d`, blocked rows for
//!   large `d`), broadcasting and all-pairs; `batch_grad`: batched gradients.
//! - [`diag`]: diagonal Gaussians (seed 004, the MRL paper): KL, the Eq. 10
//!   score, their `nq × nd` matrices, dot-product (MIPS) representations and
//!   gradients; `search` (feature `std`): top-k retrieval with a fused SIMD
//!   scoring kernel.
//!
//! ## Feature flags
//! - `std` (default): the batched layers (`batch`, `batch_grad`, `search`).
//!   Everything else is `no_std` and never allocates.
//! - `avx512`: AVX-512 kernels (pulp's `x86-v4`), picked at run time where the
//!   CPU has them (see [`simd::Level`]); AVX2+FMA is always compiled in.
//! - `rayon`: multi-core batches (`batch::Options::parallel`) and
//!   `search::DocIndex::par_top_k`, bit-identical to the serial run.
//!
//! ## NaN, infinities and errors
//! No public function panics. Shapes are checked at the boundary and reported
//! as [`Error`]. Plain diagonal entries `≤ 0` are an error; NaN and infinite
//! inputs are not: they propagate to the result (NaN, or ±∞). A Cholesky
//! factorization reports a NaN pivot as [`Error::NotPositiveDefinite`], since
//! positive-definiteness cannot be established.
//!
//! ## Precision policy
//! `f32` inputs are computed in `f32`, `f64` in `f64`. The scalar reference
//! kernels use one accumulator per sum; their error against an exact result
//! grows as `O(d · cond(L_q) · ε)` for the solve and `O(d² ε)` for the sums
//! (measured figures are in the README).

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Index loops mirror the subscripts of the linear algebra they implement.
#![allow(clippy::needless_range_loop)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod batch;
pub mod diag;
pub mod error;
#[cfg(feature = "std")]
mod exec;
pub mod full;
pub mod real;
#[cfg(feature = "std")]
pub mod search;
pub mod simd;
pub mod tril;
mod view;

pub use error::Error;
#[cfg(feature = "std")]
pub use exec::{Exec, Kernel, Par};
pub use real::Real;
pub use tril::{Diagonal, Layout};
pub use view::{
    DiagGaussian, DiagGaussians, DiagGradMut, Factor, Gaussian, Gaussians, GradMut, Grads, MatRef,
    Mode, PackedTril, Scale,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
