//! Direct (reference) kernels: one pair, and the `nq × nd` matrices.
//!
//! Every result is assembled from three sums, in the same order everywhere, so
//! that a matrix entry is bit-identical to the single-pair function:
//! `Λ_D = Σ log σ²_D`, `Λ_Q = Σ log σ²_Q`, `R = Σ (σ²_Q + (μ_Q − μ_D)²)/σ²_D`, and
//! `KL = ½((Λ_D − Λ_Q) + R − k)`, `eq10 = −(Λ_D + R)`.

use super::{DiagBatch, Scale, check_qd, log_var_of, over_var, var_of};
use crate::error::{Error, check_len};
use crate::real::Real;

/// `Σ log σ²` of one row.
#[inline(always)]
pub(crate) fn log_det<T: Real>(scale: Scale, s: &[T]) -> T {
    let mut acc = T::ZERO;
    for &x in s {
        acc += log_var_of(scale, x);
    }
    acc
}

/// `R = Σ (σ²_Q + (μ_Q − μ_D)²)/σ²_D` of one pair.
#[inline(always)]
pub(crate) fn ratio_sum<T: Real>(
    mq: &[T],
    sq: &[T],
    md: &[T],
    sd: &[T],
    scale_q: Scale,
    scale_d: Scale,
) -> T {
    let mut acc = T::ZERO;
    for p in 0..mq.len() {
        let delta = mq[p] - md[p];
        acc += over_var(scale_d, var_of(scale_q, sq[p]) + delta * delta, sd[p]);
    }
    acc
}

#[inline(always)]
fn finish_kl<T: Real>(k: usize, ld: T, lq: T, r: T) -> T {
    T::HALF * ((ld - lq) + r - T::from_usize(k))
}

#[inline(always)]
fn finish_eq10<T: Real>(ld: T, r: T) -> T {
    -(ld + r)
}

/// `KL(Q‖D)` of one pair; shapes already checked.
pub(crate) fn kl_pair<T: Real>(
    k: usize,
    mq: &[T],
    sq: &[T],
    md: &[T],
    sd: &[T],
    scale_q: Scale,
    scale_d: Scale,
) -> T {
    let ld = log_det(scale_d, sd);
    let lq = log_det(scale_q, sq);
    finish_kl(k, ld, lq, ratio_sum(mq, sq, md, sd, scale_q, scale_d))
}

/// The Eq. 10 score of one pair; shapes already checked.
pub(crate) fn eq10_pair<T: Real>(
    mq: &[T],
    sq: &[T],
    md: &[T],
    sd: &[T],
    scale_q: Scale,
    scale_d: Scale,
) -> T {
    let ld = log_det(scale_d, sd);
    finish_eq10(ld, ratio_sum(mq, sq, md, sd, scale_q, scale_d))
}

/// Shared driver: checks shapes, puts `Λ_D` of every document in row 0 of
/// `out` (the only scratch the kernel needs), then fills rows from the last
/// to the first so that row 0 is overwritten last, entry by entry, each
/// `Λ_D` read just before its slot is written.
fn matrix<T: Real>(
    queries: &DiagBatch<'_, T>,
    docs: &DiagBatch<'_, T>,
    out: &mut [T],
    finish: impl Fn(T, T, T) -> T,
) -> Result<(), Error> {
    check_qd(queries, docs)?;
    let (nq, nd) = (queries.n, docs.n);
    let len = nq
        .checked_mul(nd)
        .ok_or(Error::DimensionTooLarge { d: nd })?;
    check_len("out", len, out.len())?;
    if len == 0 {
        return Ok(());
    }
    for j in 0..nd {
        out[j] = log_det(docs.scale, docs.row(j).1);
    }
    for i in (0..nq).rev() {
        let (mq, sq) = queries.row(i);
        let lq = log_det(queries.scale, sq);
        for j in 0..nd {
            let (md, sd) = docs.row(j);
            let r = ratio_sum(mq, sq, md, sd, queries.scale, docs.scale);
            let ld = out[j];
            out[i * nd + j] = finish(ld, lq, r);
        }
    }
    Ok(())
}

/// The `nq × nd` matrix `out[i·nd + j] = KL(Q_i ‖ D_j)`, row-major.
///
/// Each entry is bit-identical to [`kl`](super::kl) /
/// [`kl_log_var`](super::kl_log_var) on the same pair. `O(nq·nd·k)` work with
/// a division (or an `exp` for log-variances) per term; for ranking many
/// documents use the fused kernel of `search::DocIndex` (feature `std`).
///
/// # Errors
/// [`Error::DimensionMismatch`] if the batches' `k` differ;
/// [`Error::LengthMismatch`] for a batch slice that is not `n·k` long or an
/// `out` that is not `nq·nd` long; [`Error::NonPositiveVariance`].
///
/// ```
/// use gaussian_kl::diag::{self, DiagBatch};
/// let q = DiagBatch::var(1, 2, &[0.0f64, 1.0], &[1.0, 2.0]);
/// let d = DiagBatch::var(2, 2, &[0.0, 1.0, 0.5, 0.0], &[1.0, 2.0, 3.0, 0.5]);
/// let mut out = [f64::NAN; 2];
/// diag::pairwise_kl(q, d, &mut out)?;
/// assert_eq!(out[0], 0.0);
/// assert_eq!(out[1], diag::kl(&[0.0, 1.0], &[1.0, 2.0], &[0.5, 0.0], &[3.0, 0.5])?);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn pairwise_kl<T: Real>(
    queries: DiagBatch<'_, T>,
    docs: DiagBatch<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    let k = queries.k;
    matrix(&queries, &docs, out, |ld, lq, r| finish_kl(k, ld, lq, r))
}

/// The `nq × nd` matrix of Eq. 10 scores (larger is better), row-major.
///
/// Each entry is bit-identical to [`eq10_score`](super::eq10_score) on the
/// same pair.
///
/// # Errors
/// As [`pairwise_kl`].
///
/// ```
/// use gaussian_kl::diag::{self, DiagBatch};
/// let q = DiagBatch::var(1, 2, &[0.0f64, 1.0], &[1.0, 2.0]);
/// let d = DiagBatch::var(2, 2, &[0.0, 1.0, 0.5, 0.0], &[1.0, 2.0, 3.0, 0.5]);
/// let mut out = [0.0; 2];
/// diag::pairwise_eq10(q, d, &mut out)?;
/// assert_eq!(out[1], diag::eq10_score(&[0.0, 1.0], &[1.0, 2.0], &[0.5, 0.0], &[3.0, 0.5])?);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn pairwise_eq10<T: Real>(
    queries: DiagBatch<'_, T>,
    docs: DiagBatch<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    matrix(&queries, &docs, out, |ld, _lq, r| finish_eq10(ld, r))
}
