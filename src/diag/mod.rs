//! KL divergence between diagonal Gaussians, the MRL Eq. 10 score, their
//! all-pairs matrices, gradients and dot-product (MIPS) representations.
//!
//! `p = N(μ_p, diag σ²_p)` (for retrieval: the query), `q = N(μ_q, diag σ²_q)`
//! (the document), `d` dimensions:
//!
//! ```text
//! KL(p‖q)   = ½ Σᵢ ( log σ²_qᵢ − log σ²_pᵢ − 1 + σ²_pᵢ/σ²_qᵢ + (μ_pᵢ − μ_qᵢ)²/σ²_qᵢ )
//! eq10(p,q) = −Σᵢ ( log σ²_qᵢ + σ²_pᵢ/σ²_qᵢ + (μ_pᵢ − μ_qᵢ)²/σ²_qᵢ )      (larger is better)
//!           = −(2 KL(p‖q) + d + Σᵢ log σ²_pᵢ)
//! ```
//!
//! The Eq. 10 score of the MRL paper is the KL with the terms that do not
//! depend on the document removed, negated so that a larger score is a better
//! match: ranking documents by descending score is ranking them by ascending KL.
//!
//! | function | computes |
//! |---|---|
//! | [`kl`], [`eq10`] | `KL(p‖q)` / the Eq. 10 score of one pair |
//! | [`kl_std_normal`] | `KL(p ‖ N(0, I))`, the VAE prior term |
//! | [`kl_all_pairs`], [`eq10_all_pairs`] | the `n_p × n_q` matrices, row-major |
//! | [`kl_grad`], [`eq10_grad`], [`kl_std_normal_grad`] | value and gradient of one pair |
//! | [`kl_all_pairs_grad`], [`eq10_all_pairs_grad`] | gradients through the matrices |
//! | [`query_vectors`], [`doc_vectors`], [`Rep`], [`kl_from_dot`] | MIPS vectors: `score = q · d` |
//!
//! Inputs are the crate's views: one [`DiagGaussian`] or
//! a batch [`DiagGaussians`](crate::DiagGaussians) (`n × d` row-major means
//! and variances or log-variances, PyTorch's memory layout, see [`Scale`]).
//! Either side may use either [`Scale`].
//!
//! Everything here is `no_std` and never allocates. Top-k retrieval over many
//! documents, with a fused SIMD scoring kernel, is in `search` (feature `std`).
//!
//! # Errors and NaN
//! The views check lengths and variances when they are built (naming the
//! argument, and in a batch the Gaussian and the coordinate). An operation
//! checks how its arguments fit together: [`Error::DimensionMismatch`]
//! naming `q` (or `grad.…`) when the dimensions differ,
//! [`Error::LengthMismatch`] naming `out`, `upstream` or the gradient buffer
//! (`grad.p.mean`, `grad.p.spread`, `grad.q.mean`, `grad.q.spread`). Every
//! check runs before any output is written: on `Err` the outputs are
//! untouched. NaN and infinities are not errors: a NaN mean or variance makes
//! the affected results NaN, an infinite one gives ±∞ or NaN as IEEE
//! arithmetic dictates. Log-variances may be any real number (`exp` of a
//! large one overflows to `∞`).

mod grad;
// The kernel serves the `std` search layer; it is `no_std` itself.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod kernel;
mod mips;
mod pairwise;

pub use crate::Scale;
pub use grad::{eq10_all_pairs_grad, eq10_grad, kl_all_pairs_grad, kl_grad, kl_std_normal_grad};
pub use mips::{Rep, doc_vectors, kl_from_dot, query_vectors};
pub use pairwise::{eq10_all_pairs, kl_all_pairs};

use crate::error::Error;
use crate::real::Real;
use crate::view::DiagGaussian;

/// `log σ²` of a spread entry.
#[inline(always)]
pub(crate) fn log_var_of<T: Real>(scale: Scale, s: T) -> T {
    match scale {
        Scale::Var => s.ln(),
        Scale::LogVar => s,
    }
}

/// `σ²` of a spread entry.
#[inline(always)]
pub(crate) fn var_of<T: Real>(scale: Scale, s: T) -> T {
    match scale {
        Scale::Var => s,
        Scale::LogVar => s.exp(),
    }
}

/// `x / σ²` for a spread entry `s` (a division for variances, for accuracy).
#[inline(always)]
pub(crate) fn over_var<T: Real>(scale: Scale, x: T, s: T) -> T {
    match scale {
        Scale::Var => x / s,
        Scale::LogVar => x * (-s).exp(),
    }
}

/// Checks that `found` (the dimension of argument `what`) is `expected`.
#[inline]
pub(crate) fn check_dim(what: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            what,
            expected,
            found,
        })
    }
}

/// `KL(p‖q)` of two diagonal Gaussians, each given by variances or
/// log-variances.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`, expected `p`'s dimension).
///
/// ```
/// use gaussian_kl::{DiagGaussian, Error, diag};
/// let p = DiagGaussian::var(&[0.0f64, 1.0], &[1.0, 2.0])?;
/// let q = DiagGaussian::var(&[0.5, 1.0], &[2.0, 2.0])?;
/// let expect = 0.5 * ((2f64.ln() - 0.0 - 1.0 + 0.5 + 0.125) + (0.0 - 1.0 + 1.0));
/// assert!((diag::kl(&p, &q)? - expect).abs() < 1e-15);
/// assert_eq!(diag::kl(&q, &q)?, 0.0);
/// // the same q through log-variances
/// let log_var = [2f64.ln(); 2];
/// let q_log = DiagGaussian::log_var(&[0.5, 1.0], &log_var)?;
/// assert!((diag::kl(&p, &q_log)? - expect).abs() < 1e-15);
/// let short = DiagGaussian::var(&[0.5], &[2.0])?;
/// assert_eq!(
///     diag::kl(&p, &short),
///     Err(Error::DimensionMismatch { what: "q", expected: 2, found: 1 })
/// );
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl<T: Real>(p: &DiagGaussian<'_, T>, q: &DiagGaussian<'_, T>) -> Result<T, Error> {
    check_dim("q", p.dim(), q.dim())?;
    Ok(pairwise::kl_pair(p, q))
}

/// The Eq. 10 score of one pair, `p` the query and `q` the document:
/// `−Σ (log σ²_q + σ²_p/σ²_q + (μ_p − μ_q)²/σ²_q)`. Larger is better;
/// `eq10 = −(2 KL + d + Σ log σ²_p)`.
///
/// # Errors
/// As [`kl`].
///
/// ```
/// use gaussian_kl::{DiagGaussian, diag};
/// let p = DiagGaussian::var(&[0.2f64, 0.7], &[0.5, 0.9])?;
/// let q = DiagGaussian::var(&[1.1, 1.3], &[1.5, 2.0])?;
/// let log_det_p: f64 = [0.5f64, 0.9].iter().map(|v| v.ln()).sum();
/// let s = diag::eq10(&p, &q)?;
/// assert!((s + 2.0 * diag::kl(&p, &q)? + 2.0 + log_det_p).abs() < 1e-14);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn eq10<T: Real>(p: &DiagGaussian<'_, T>, q: &DiagGaussian<'_, T>) -> Result<T, Error> {
    check_dim("q", p.dim(), q.dim())?;
    Ok(pairwise::eq10_pair(p, q))
}

/// `KL(p ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²)`: the VAE prior term, with
/// one `exp` per dimension (and no logarithm) from log-variances.
///
/// The KL against `N(0, I)` is a sum over coordinates, so the total of a
/// batch of posteriors is this function on the batch's flat `n · d` means
/// and spreads viewed as one Gaussian.
///
/// # Errors
/// None today (the view is checked); the `Result` keeps the signature of
/// every other operation.
///
/// ```
/// use gaussian_kl::{DiagGaussian, diag};
/// assert_eq!(diag::kl_std_normal(&DiagGaussian::log_var(&[0.0f32; 4], &[0.0; 4])?)?, 0.0);
/// let p = DiagGaussian::log_var(&[1.0f64], &[0.5])?;
/// let kl = diag::kl_std_normal(&p)?;
/// assert!((kl - 0.5 * (1.0 + 0.5f64.exp() - 1.0 - 0.5)).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal<T: Real>(p: &DiagGaussian<'_, T>) -> Result<T, Error> {
    let mut s = T::ZERO;
    match p.scale {
        Scale::LogVar => {
            for (&m, &l) in p.mean.iter().zip(p.spread) {
                s += m * m + l.exp() - T::ONE - l;
            }
        }
        Scale::Var => {
            for (&m, &v) in p.mean.iter().zip(p.spread) {
                s += m * m + v - T::ONE - v.ln();
            }
        }
    }
    Ok(T::HALF * s)
}
