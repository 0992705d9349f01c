//! # gaussian-kl
//!
//! SIMD-optimized, `no_std`, allocation-free kernels for the Kullback–Leibler
//! divergence `KL(p‖q)` between Gaussians, in `f32` and `f64`.
//!
//! - Views, built once and validated when built (crate root): [`Gaussian`]
//!   (a mean and a Cholesky [`Factor`]: a [`PackedTril`] of `d(d+1)/2`
//!   numbers, or a dense [`MatRef`] with any row and column strides, so
//!   row-major, column-major and transposed data are all read correctly),
//!   [`Gaussians`] (a batch in PyTorch's memory layout), [`DiagGaussian`],
//!   [`DiagGaussians`]; gradient outputs [`GradMut`], [`DiagGradMut`],
//!   [`Grads`] that overwrite or accumulate ([`Mode`]).
//! - [`full`]: one pair of full-rank Gaussians: the KL, the KL against
//!   `N(0, I)`, their gradients in one fused pass, covariance inputs,
//!   compile-time dimensions.
//! - `batch` (feature `std`): the same operations over batches, zipped with
//!   broadcasting or all pairs, under an execution policy `Exec` (threads,
//!   SIMD level, kernel); each operation has a `*_scratch` size query and
//!   never allocates.
//! - [`diag`]: diagonal Gaussians: the KL, the MRL retrieval score (Eq. 10
//!   of the MRL paper), their all-pairs matrices, gradients and dot-product
//!   representations; `search` (feature `std`): top-k retrieval with a fused
//!   SIMD scoring kernel.
//!
//! Operation names are the same in every family: `kl`, `kl_std_normal`,
//! `kl_grad`, `kl_std_normal_grad`, `kl_all_pairs`, … and `<op>_scratch`
//! beside each operation that needs scratch space.
//!
//! ## Feature flags
//! - `std` (default): the batched layers (`batch`, `search`) and `Exec`.
//!   Everything else is `no_std` and never allocates.
//! - `avx512`: AVX-512 kernels (pulp's `x86-v4`), picked at run time where the
//!   CPU has them (see [`simd::Level`]); AVX2+FMA is always compiled in.
//! - `emulated-levels`: pulp's emulated 128/256/512-bit vectors as SIMD
//!   levels, to test the 4-, 8- and 16-lane code paths on any machine.
//! - `rayon`: multi-core batches and retrieval (`Par::Rayon`), bit-identical
//!   to the serial run.
//! - `nalgebra`, `faer`, `ndarray`: adapters from those crates' matrices,
//!   factorizations and arrays to the crate's views (`interop`), borrowing
//!   where the memory layout allows.
//!
//! ## NaN, infinities and errors
//! No public function panics. Shapes are checked when a view is built and
//! when an operation fits its arguments together, and reported as an
//! [`Error`] that names the argument, what was expected and what was found,
//! and in a batch the Gaussian. Every operation checks everything before it
//! writes: on `Err` its outputs are untouched. Plain diagonal entries and
//! variances `≤ 0` are an error; NaN and infinite inputs are not: they
//! propagate to the result (NaN, or ±∞). A Cholesky factorization reports a
//! NaN pivot as [`Error::NotPositiveDefinite`], since positive-definiteness
//! cannot be established.
//!
//! ## Precision policy
//! `f32` inputs are computed in `f32`, `f64` in `f64`. The scalar reference
//! kernels use one accumulator per sum; their error against an exact result
//! grows as `O(d · cond(L_q) · ε)` for the solve and `O(d² ε)` for the sums.
//! The measured figures are in the repository's `docs/accuracy.md`, the
//! design in `docs/architecture.md`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Index loops mirror the subscripts of the linear algebra they implement.
#![allow(clippy::needless_range_loop)]

// The unit tests use `std` (`Vec`) whatever the features: the test harness
// links it anyway.
#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(feature = "std")]
pub mod batch;
pub mod diag;
pub mod error;
#[cfg(feature = "std")]
mod exec;
pub mod full;
#[cfg(any(feature = "nalgebra", feature = "faer", feature = "ndarray"))]
pub mod interop;
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
