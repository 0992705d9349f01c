//! KL divergence between diagonal Gaussians, the MRL Eq. 10 score, and their
//! dot-product (MIPS) representations (seed 004).
//!
//! Query `Q = N(μ_Q, diag σ²_Q)`, document `D = N(μ_D, diag σ²_D)`, `k`
//! dimensions:
//!
//! ```text
//! KL(Q‖D)   = ½ Σᵢ ( log σ²_Dᵢ − log σ²_Qᵢ − 1 + σ²_Qᵢ/σ²_Dᵢ + (μ_Qᵢ − μ_Dᵢ)²/σ²_Dᵢ )
//! eq10(Q,D) = −Σᵢ ( log σ²_Dᵢ + σ²_Qᵢ/σ²_Dᵢ + (μ_Qᵢ − μ_Dᵢ)²/σ²_Dᵢ )      (larger is better)
//!           = −(2 KL(Q‖D) + k + Σᵢ log σ²_Qᵢ)
//! ```
//!
//! The Eq. 10 score is KL with the terms that do not depend on the document
//! removed, negated as the seed does so that a larger score is a better match:
//! ranking documents by descending score is ranking them by ascending KL.
//!
//! | function | computes |
//! |---|---|
//! | [`kl`], [`kl_log_var`] | `KL(Q‖D)` for one pair (variances or log-variances) |
//! | [`kl_std_normal`] | `KL(N(μ, diag σ²) ‖ N(0, I))` from `(μ, log σ²)`, the VAE prior |
//! | [`eq10_score`] | the Eq. 10 score for one pair |
//! | [`pairwise_kl`], [`pairwise_eq10`] | the `nq × nd` matrices, row-major |
//! | [`query_rep`], [`doc_rep`], [`Rep`] | MIPS vectors: `score = q · d` |
//! | [`grad`] | gradients (vector-Jacobian products) of KL and Eq. 10 |

//!
//! Batches of Gaussians are [`DiagBatch`]es: `n × k` row-major means and
//! variances (or log-variances), PyTorch's memory layout.
//!
//! Everything here is `no_std` and never allocates. Top-k retrieval over many
//! documents, with a fused SIMD scoring kernel, is in `search` (feature `std`).
//!
//! # Errors and NaN
//! Shapes are checked ([`Error::LengthMismatch`], [`Error::DimensionMismatch`],
//! [`Error::DimensionTooLarge`]); a plain variance `≤ 0` is
//! [`Error::NonPositiveVariance`] (with its flat index). NaN and infinities are
//! not errors: a NaN mean or variance makes the affected results NaN, an
//! infinite one gives ±∞ or NaN as IEEE arithmetic dictates. Log-variances may
//! be any real number (`exp` of a large one overflows to `∞`).

pub mod grad;
// The kernel serves the `std` search layer; it is `no_std` itself.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod kernel;
mod mips;
mod pairwise;

pub use kernel::ScoreReal;
pub use mips::{Rep, doc_rep, kl_from_dot, query_rep};
pub use pairwise::{pairwise_eq10, pairwise_kl};

use crate::error::{Error, check_len};
use crate::real::Real;

/// How the spread of a diagonal Gaussian is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scale {
    /// Variances `σ²`; each must be `> 0` (checked).
    #[default]
    Var,
    /// Log-variances `log σ²` (a VAE encoder's output); any real number.
    LogVar,
}

/// `n` diagonal Gaussians in `k` dimensions: row-major `n × k` means and
/// variances (or log-variances, see [`Scale`]).
///
/// ```
/// use gaussian_kl::diag::{DiagBatch, Scale};
/// let mean = [0.0f64, 1.0, 2.0, 3.0];
/// let var = [1.0, 2.0, 0.5, 4.0];
/// let b = DiagBatch::var(2, 2, &mean, &var);
/// assert_eq!((b.n, b.k, b.scale), (2, 2, Scale::Var));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DiagBatch<'a, T> {
    /// Number of Gaussians (rows).
    pub n: usize,
    /// Dimension (columns).
    pub k: usize,
    /// `n × k` means, row-major.
    pub mean: &'a [T],
    /// `n × k` variances or log-variances, row-major.
    pub spread: &'a [T],
    /// What `spread` holds.
    pub scale: Scale,
}

impl<'a, T: Real> DiagBatch<'a, T> {
    /// A batch given by variances.
    pub fn var(n: usize, k: usize, mean: &'a [T], var: &'a [T]) -> Self {
        Self {
            n,
            k,
            mean,
            spread: var,
            scale: Scale::Var,
        }
    }

    /// A batch given by log-variances.
    pub fn log_var(n: usize, k: usize, mean: &'a [T], log_var: &'a [T]) -> Self {
        Self {
            n,
            k,
            mean,
            spread: log_var,
            scale: Scale::LogVar,
        }
    }

    /// Checks lengths (`n·k` each) and, for [`Scale::Var`], positivity.
    /// `names` are the argument names used in errors: `[mean, spread]`.
    pub(crate) fn check(&self, names: [&'static str; 2]) -> Result<(), Error> {
        let len = self
            .n
            .checked_mul(self.k)
            .ok_or(Error::DimensionTooLarge { d: self.k })?;
        check_len(names[0], len, self.mean.len())?;
        check_len(names[1], len, self.spread.len())?;
        if self.scale == Scale::Var {
            check_positive(names[1], self.spread)?;
        }
        Ok(())
    }

    /// Row `i`: `(mean, spread)`. Callers have checked the shape.
    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> (&'a [T], &'a [T]) {
        let r = i * self.k..(i + 1) * self.k;
        (&self.mean[r.clone()], &self.spread[r])
    }
}

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

/// Rejects an entry `≤ 0` (NaN passes: it propagates instead).
pub(crate) fn check_positive<T: Real>(what: &'static str, v: &[T]) -> Result<(), Error> {
    match v.iter().position(|&x| x <= T::ZERO) {
        Some(index) => Err(Error::NonPositiveVariance {
            what,
            item: None,
            index,
            value: v[index].to_f64(),
        }),
        None => Ok(()),
    }
}

/// Checks that a query batch and a document batch agree on `k`.
pub(crate) fn check_qd<T: Real>(q: &DiagBatch<'_, T>, d: &DiagBatch<'_, T>) -> Result<(), Error> {
    q.check(["query mean", "query spread"])?;
    if d.k != q.k {
        return Err(Error::DimensionMismatch {
            what: "documents",
            expected: q.k,
            found: d.k,
        });
    }
    d.check(["document mean", "document spread"])
}

/// Checks one pair of vectors given as slices and returns `k`.
fn check_pair<T: Real>(
    mean_q: &[T],
    s_q: &[T],
    mean_d: &[T],
    s_d: &[T],
    scale: Scale,
) -> Result<usize, Error> {
    let k = mean_q.len();
    check_len("var_q", k, s_q.len())?;
    check_len("mean_d", k, mean_d.len())?;
    check_len("var_d", k, s_d.len())?;
    if scale == Scale::Var {
        check_positive("var_q", s_q)?;
        check_positive("var_d", s_d)?;
    }
    Ok(k)
}

/// `KL(Q‖D)` for one pair given by means and variances.
///
/// # Errors
/// [`Error::LengthMismatch`] when the four slices are not all as long as
/// `mean_q`; [`Error::NonPositiveVariance`] for a variance `≤ 0`.
///
/// ```
/// use gaussian_kl::diag;
/// let kl = diag::kl(&[0.0f64, 1.0], &[1.0, 2.0], &[0.5, 1.0], &[2.0, 2.0])?;
/// let expect = 0.5 * ((2f64.ln() - 0.0 - 1.0 + 0.5 + 0.125) + (0.0 - 1.0 + 1.0));
/// assert!((kl - expect).abs() < 1e-15);
/// assert_eq!(diag::kl(&[1.0f64], &[3.0], &[1.0], &[3.0])?, 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl<T: Real>(mean_q: &[T], var_q: &[T], mean_d: &[T], var_d: &[T]) -> Result<T, Error> {
    let k = check_pair(mean_q, var_q, mean_d, var_d, Scale::Var)?;
    Ok(pairwise::kl_pair(
        k,
        mean_q,
        var_q,
        mean_d,
        var_d,
        Scale::Var,
        Scale::Var,
    ))
}

/// `KL(Q‖D)` for one pair given by means and log-variances.
///
/// # Errors
/// [`Error::LengthMismatch`] when the four slices are not all as long as
/// `mean_q`.
///
/// ```
/// use gaussian_kl::diag;
/// let (lq, ld) = ([0.3f64, -0.2], [0.1, 0.4]);
/// let a = diag::kl_log_var(&[0.0, 1.0], &lq, &[0.5, 1.0], &ld)?;
/// let b = diag::kl(&[0.0, 1.0], &lq.map(f64::exp), &[0.5, 1.0], &ld.map(f64::exp))?;
/// assert!((a - b).abs() < 1e-14);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_log_var<T: Real>(
    mean_q: &[T],
    log_var_q: &[T],
    mean_d: &[T],
    log_var_d: &[T],
) -> Result<T, Error> {
    let k = check_pair(mean_q, log_var_q, mean_d, log_var_d, Scale::LogVar)?;
    Ok(pairwise::kl_pair(
        k,
        mean_q,
        log_var_q,
        mean_d,
        log_var_d,
        Scale::LogVar,
        Scale::LogVar,
    ))
}

/// `KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²)` from `(μ, log σ²)`:
/// the VAE prior term, with one `exp` per dimension and no logarithm.
///
/// # Errors
/// [`Error::LengthMismatch`] when `log_var` is not as long as `mean`.
///
/// ```
/// use gaussian_kl::diag;
/// assert_eq!(diag::kl_std_normal(&[0.0f32; 4], &[0.0; 4])?, 0.0);
/// let kl = diag::kl_std_normal(&[1.0f64], &[0.5])?;
/// assert!((kl - 0.5 * (1.0 + 0.5f64.exp() - 1.0 - 0.5)).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal<T: Real>(mean: &[T], log_var: &[T]) -> Result<T, Error> {
    check_len("log_var", mean.len(), log_var.len())?;
    let mut s = T::ZERO;
    for (&m, &l) in mean.iter().zip(log_var) {
        s += m * m + l.exp() - T::ONE - l;
    }
    Ok(T::HALF * s)
}

/// The Eq. 10 score of one pair (variances): `−Σ (log σ²_D + σ²_Q/σ²_D + (μ_Q − μ_D)²/σ²_D)`.
/// Larger is better; `eq10 = −(2 KL + k + Σ log σ²_Q)`.
///
/// # Errors
/// As [`kl`].
///
/// ```
/// use gaussian_kl::diag;
/// let (mq, vq, md, vd) = ([0.2f64, 0.7], [0.5, 0.9], [1.1, 1.3], [1.5, 2.0]);
/// let s = diag::eq10_score(&mq, &vq, &md, &vd)?;
/// let kl = diag::kl(&mq, &vq, &md, &vd)?;
/// let log_det_q: f64 = vq.iter().map(|v| v.ln()).sum();
/// assert!((s + 2.0 * kl + 2.0 + log_det_q).abs() < 1e-14);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn eq10_score<T: Real>(
    mean_q: &[T],
    var_q: &[T],
    mean_d: &[T],
    var_d: &[T],
) -> Result<T, Error> {
    check_pair(mean_q, var_q, mean_d, var_d, Scale::Var)?;
    Ok(pairwise::eq10_pair(
        mean_q,
        var_q,
        mean_d,
        var_d,
        Scale::Var,
        Scale::Var,
    ))
}
