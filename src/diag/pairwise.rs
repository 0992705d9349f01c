//! Direct (reference) kernels: one pair, and the `n_p × n_q` matrices.
//!
//! Every result is assembled from three sums, in the same order everywhere, so
//! that a matrix entry is bit-identical to the single-pair function:
//! `Λ_q = Σ log σ²_q`, `Λ_p = Σ log σ²_p`, `R = Σ (σ²_p + (μ_p − μ_q)²)/σ²_q`, and
//! `KL = ½((Λ_q − Λ_p) + R − d)`, `eq10 = −(Λ_q + R)`.

use super::{Scale, check_dim, log_var_of, over_var, var_of};
use crate::error::{Error, check_len};
use crate::real::Real;
use crate::view::{DiagGaussian, DiagGaussians};

/// Gaussian `i < n` of a checked batch.
#[inline(always)]
pub(crate) fn row<'a, T>(b: &DiagGaussians<'a, T>, i: usize) -> DiagGaussian<'a, T> {
    let r = i * b.d..(i + 1) * b.d;
    DiagGaussian {
        mean: &b.means[r.clone()],
        spread: &b.spread[r],
        scale: b.scale,
    }
}

/// `Σ log σ²` of one Gaussian.
#[inline(always)]
pub(crate) fn log_det<T: Real>(scale: Scale, s: &[T]) -> T {
    let mut acc = T::ZERO;
    for &x in s {
        acc += log_var_of(scale, x);
    }
    acc
}

/// `R = Σ (σ²_p + (μ_p − μ_q)²)/σ²_q` of one pair of equal dimensions.
#[inline(always)]
pub(crate) fn ratio_sum<T: Real>(p: &DiagGaussian<'_, T>, q: &DiagGaussian<'_, T>) -> T {
    let mut acc = T::ZERO;
    for i in 0..p.mean.len() {
        let delta = p.mean[i] - q.mean[i];
        acc += over_var(
            q.scale,
            var_of(p.scale, p.spread[i]) + delta * delta,
            q.spread[i],
        );
    }
    acc
}

#[inline(always)]
fn finish_kl<T: Real>(d: usize, lq: T, lp: T, r: T) -> T {
    T::HALF * ((lq - lp) + r - T::from_usize(d))
}

#[inline(always)]
fn finish_eq10<T: Real>(lq: T, r: T) -> T {
    -(lq + r)
}

/// `KL(p‖q)` of one pair of equal dimensions.
pub(crate) fn kl_pair<T: Real>(p: &DiagGaussian<'_, T>, q: &DiagGaussian<'_, T>) -> T {
    let lq = log_det(q.scale, q.spread);
    let lp = log_det(p.scale, p.spread);
    finish_kl(p.dim(), lq, lp, ratio_sum(p, q))
}

/// The Eq. 10 score of one pair of equal dimensions.
pub(crate) fn eq10_pair<T: Real>(p: &DiagGaussian<'_, T>, q: &DiagGaussian<'_, T>) -> T {
    let lq = log_det(q.scale, q.spread);
    finish_eq10(lq, ratio_sum(p, q))
}

/// Checks two batches of one dimension and an output of `n_p · n_q` values.
pub(crate) fn check_all_pairs<T: Real>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    what: &'static str,
    found: usize,
) -> Result<usize, Error> {
    check_dim("q", p.d, q.d)?;
    let len =
        p.n.checked_mul(q.n)
            .ok_or(Error::DimensionTooLarge { d: p.d })?;
    check_len(what, len, found)?;
    Ok(len)
}

/// Shared driver: checks shapes, puts `Λ_q` of every `q` in row 0 of `out`
/// (the only scratch the kernel needs), then fills rows from the last to the
/// first so that row 0 is overwritten last, entry by entry, each `Λ_q` read
/// just before its slot is written.
fn matrix<T: Real>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    out: &mut [T],
    finish: impl Fn(T, T, T) -> T,
) -> Result<(), Error> {
    if check_all_pairs(p, q, "out", out.len())? == 0 {
        return Ok(());
    }
    let nq = q.n;
    for j in 0..nq {
        out[j] = log_det(q.scale, row(q, j).spread);
    }
    for i in (0..p.n).rev() {
        let pi = row(p, i);
        let lp = log_det(p.scale, pi.spread);
        for j in 0..nq {
            let r = ratio_sum(&pi, &row(q, j));
            let lq = out[j];
            out[i * nq + j] = finish(lq, lp, r);
        }
    }
    Ok(())
}

/// The `n_p × n_q` matrix `out[i·n_q + j] = KL(p_i ‖ q_j)`, row-major.
///
/// Each entry is bit-identical to [`kl`](super::kl) on the same pair.
/// `O(n_p·n_q·d)` work with a division (or an `exp` for log-variances) per
/// term; to rank many documents use the fused kernel of `search` (feature
/// `std`).
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`) if the batches' `d` differ;
/// [`Error::LengthMismatch`] (`"out"`) for an `out` that is not `n_p · n_q`
/// long; [`Error::DimensionTooLarge`] if that length overflows. `out` is
/// untouched on error.
///
/// ```
/// use gaussian_kl::{DiagGaussians, diag};
/// let p = DiagGaussians::var(1, 2, &[0.0f64, 1.0], &[1.0, 2.0])?;
/// let q = DiagGaussians::var(2, 2, &[0.0, 1.0, 0.5, 0.0], &[1.0, 2.0, 3.0, 0.5])?;
/// let mut out = [f64::NAN; 2];
/// diag::kl_all_pairs(&p, &q, &mut out)?;
/// assert_eq!(out[0], 0.0);
/// assert_eq!(out[1], diag::kl(&p.get(0).unwrap(), &q.get(1).unwrap())?);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_all_pairs<T: Real>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    let d = p.d;
    matrix(p, q, out, |lq, lp, r| finish_kl(d, lq, lp, r))
}

/// The `n_p × n_q` matrix of Eq. 10 scores (`p` the queries, `q` the
/// documents; larger is better), row-major.
///
/// Each entry is bit-identical to [`eq10`](super::eq10) on the same pair.
///
/// # Errors
/// As [`kl_all_pairs`].
///
/// ```
/// use gaussian_kl::{DiagGaussians, diag};
/// let p = DiagGaussians::var(1, 2, &[0.0f64, 1.0], &[1.0, 2.0])?;
/// let q = DiagGaussians::var(2, 2, &[0.0, 1.0, 0.5, 0.0], &[1.0, 2.0, 3.0, 0.5])?;
/// let mut out = [0.0; 2];
/// diag::eq10_all_pairs(&p, &q, &mut out)?;
/// assert_eq!(out[1], diag::eq10(&p.get(0).unwrap(), &q.get(1).unwrap())?);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn eq10_all_pairs<T: Real>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    matrix(p, q, out, |lq, _lp, r| finish_eq10(lq, r))
}
