//! KL divergence between two full-rank Gaussians (seed 000).
//!
//! `p = N(μ_p, L_p L_pᵀ)`, `q = N(μ_q, L_q L_qᵀ)`, `L` lower triangular with a
//! positive diagonal:
//!
//! ```text
//! KL(p‖q) = ½ ( ‖y‖² + ‖M‖²_F − 2 (Σᵢ log L_pᵢᵢ − Σᵢ log L_qᵢᵢ) − d ),
//!           L_q y = μ_q − μ_p,   L_q M = L_p.
//! ```
//!
//! Entry points, all checked (they return [`Error`], never panic):
//!
//! | function | factors given as | memory |
//! |---|---|---|
//! | [`kl`] | [`PackedTril`] (any [`Layout`](crate::Layout), log or plain diagonal) | caller's workspace, [`workspace_len`] |
//! | [`kl_dense`] | dense `d × d` row-major, plain diagonal (PyTorch `scale_tril`) | caller's workspace |
//! | [`kl_cov`] | dense covariance matrices `Σ` (factored here by Cholesky) | caller's workspace |
//! | [`kl_std_normal`], [`kl_std_normal_dense`] | `q = N(0, I)`, the VAE prior | none |
//! | [`kl_fixed`], [`kl_packed_fixed`] | compile-time `D`, arrays on the stack | none |
//! | [`kl_grad`], [`kl_grad_dense`] | KL and its gradient (packed / dense) | caller's workspace, [`grad_workspace_len`] |
//! | [`kl_std_normal_grad`], [`kl_std_normal_grad_dense`] | the VAE prior's KL and gradient | none |
//! | [`kl_grad_fixed`], [`kl_grad_packed_fixed`] | KL and gradient, compile-time `D` | none |
//! | [`kl_wide_f32x8`], [`kl_wide_f64x4`] | 8 / 4 pairs of compile-time `D` in lockstep (`wide` vectors) | none |
//!
//! `d = 0` is allowed everywhere and gives `KL = 0` (two distributions on the
//! zero-dimensional space are the same point mass).

// The SIMD batch kernels are reached through the `std` batch layer.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod blocked;
mod cholesky;
mod fixed;
pub(crate) mod grad;
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod lanes;
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod lanes_grad;
pub(crate) mod scalar;
mod wide_fixed;

pub use cholesky::{cholesky_in_place, cholesky_packed_in_place};
pub use fixed::{kl_fixed, kl_packed_fixed};
pub use grad::{
    KlGrad, KlGradFixed, grad_workspace_len, kl_grad, kl_grad_dense, kl_grad_fixed,
    kl_grad_packed_fixed, kl_std_normal_grad, kl_std_normal_grad_dense,
};
pub use wide_fixed::{kl_wide_f32x8, kl_wide_f64x4};

use crate::error::{Error, check_len};
use crate::real::Real;
use crate::tril::{pack_dense_lower, plain_log_diag_sum, row_start};
use crate::view::PackedTril;

/// Workspace length (in scalars) that [`kl`], [`kl_dense`] and [`kl_cov`] need
/// for dimension `d`: `d(d+1) + d` (two packed triangles and one vector).
/// Saturates at `usize::MAX` for absurd `d`, which no slice can reach.
///
/// ```
/// assert_eq!(gaussian_kl::full::workspace_len(3), 15);
/// let mut work = [0.0f32; gaussian_kl::full::workspace_len(3)];
/// # let _ = &mut work;
/// ```
pub const fn workspace_len(d: usize) -> usize {
    d.saturating_mul(d.saturating_add(2))
}

/// The workspace split into `(L_q, L_p → M, y)`.
type Parts<'w, T> = (&'w mut [T], &'w mut [T], &'w mut [T]);

/// Splits the workspace into `(L_q, L_p → M, y)`.
fn split_work<T>(d: usize, work: &mut [T]) -> Result<Parts<'_, T>, Error> {
    let need = workspace_len(d);
    if work.len() < need {
        return Err(Error::WorkspaceTooSmall {
            expected: need,
            found: work.len(),
        });
    }
    let t = row_start(d);
    let (l2, rest) = work[..need].split_at_mut(t);
    let (m, y) = rest.split_at_mut(t);
    Ok((l2, m, y))
}

/// Checks the shapes of a pair and returns `d`.
fn check_pair<T: Real>(
    mean_p: &[T],
    l_p: &PackedTril<'_, T>,
    mean_q: &[T],
    l_q: &PackedTril<'_, T>,
) -> Result<usize, Error> {
    let d = l_p.d;
    l_p.check("l_p")?;
    if l_q.d != d {
        return Err(Error::DimensionMismatch {
            what: "l_q",
            expected: d,
            found: l_q.d,
        });
    }
    l_q.check("l_q")?;
    check_len("mean_p", d, mean_p.len())?;
    check_len("mean_q", d, mean_q.len())?;
    Ok(d)
}

/// `KL(p‖q)` for factors in any packed layout and diagonal encoding.
///
/// `work` must hold at least [`workspace_len`]`(d)` scalars; its contents on
/// entry do not matter and on return are unspecified.
///
/// Every [`Layout`](crate::Layout) gives a bit-identical result for the same
/// factor, and a [`Diagonal::Plain`](crate::Diagonal::Plain) factor gives a
/// result bit-identical to [`kl_dense`] on its dense expansion.
///
/// # Errors
/// [`Error::DimensionMismatch`] if `l_q.d != l_p.d`; [`Error::LengthMismatch`]
/// for a packed slice that is not `d(d+1)/2` long or a mean that is not `d`
/// long; [`Error::WorkspaceTooSmall`]; [`Error::NonPositiveDiagonal`] for a
/// plain diagonal entry `≤ 0`. NaN and infinite inputs are not errors: they
/// propagate into the result (NaN, or ±∞ when a log-diagonal overflows `exp`).
///
/// ```
/// use gaussian_kl::{full, PackedTril};
/// // Seed 000's parameterization: raw numbers, exp on the diagonal.
/// let (mu_p, raw_p) = ([0.1f64, -0.3], [0.2, 0.5, -0.1]);
/// let (mu_q, raw_q) = ([0.0f64, 0.4], [0.0, -0.2, 0.3]);
/// let mut work = [0.0; full::workspace_len(2)];
/// let kl = full::kl(&mu_p, PackedTril::new(2, &raw_p), &mu_q, PackedTril::new(2, &raw_q), &mut work)?;
/// assert!(kl > 0.0);
/// // KL(p‖p) = 0
/// let same = full::kl(&mu_p, PackedTril::new(2, &raw_p), &mu_p, PackedTril::new(2, &raw_p), &mut work)?;
/// assert!(same.abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl<T: Real>(
    mean_p: &[T],
    l_p: PackedTril<'_, T>,
    mean_q: &[T],
    l_q: PackedTril<'_, T>,
    work: &mut [T],
) -> Result<T, Error> {
    let d = check_pair(mean_p, &l_p, mean_q, &l_q)?;
    let (l2, m, y) = split_work(d, work)?;
    let log_q = l_q.unpack_row_major("l_q", l2)?;
    let log_p = l_p.unpack_row_major("l_p", m)?;
    Ok(scalar::kl_unpacked(
        d,
        mean_p,
        mean_q,
        l2,
        m,
        y,
        log_p - log_q,
    ))
}

/// Checks a dense `d × d` argument and means, returning `d` (taken from `mean_p`).
fn check_dense<T>(
    mean_p: &[T],
    a_p: &[T],
    mean_q: &[T],
    a_q: &[T],
    names: [&'static str; 2],
) -> Result<usize, Error> {
    let d = mean_p.len();
    check_len("mean_q", d, mean_q.len())?;
    let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
    check_len(names[0], n, a_p.len())?;
    check_len(names[1], n, a_q.len())?;
    Ok(d)
}

/// `KL(p‖q)` for dense row-major `d × d` lower-triangular factors with a
/// plain positive diagonal (PyTorch's `scale_tril`); the strict upper
/// triangle is ignored. `d` is `mean_p.len()`.
///
/// # Errors
/// As [`kl`]; `l_p` and `l_q` must be `d²` long.
///
/// ```
/// use gaussian_kl::full;
/// let l = [1.0f64, 0.0, 0.5, 2.0];
/// let mut work = [0.0; full::workspace_len(2)];
/// let kl = full::kl_dense(&[0.0, 0.0], &l, &[0.0, 1.0], &l, &mut work)?;
/// assert!((kl - 0.125).abs() < 1e-15); // ½‖y‖², y = L⁻¹(0, 1) = (0, ½)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_dense<T: Real>(
    mean_p: &[T],
    l_p: &[T],
    mean_q: &[T],
    l_q: &[T],
    work: &mut [T],
) -> Result<T, Error> {
    let d = check_dense(mean_p, l_p, mean_q, l_q, ["l_p", "l_q"])?;
    let (l2, m, y) = split_work(d, work)?;
    pack_dense_lower(d, l_q, l2);
    pack_dense_lower(d, l_p, m);
    let log_q = plain_log_diag_sum("l_q", d, l2)?;
    let log_p = plain_log_diag_sum("l_p", d, m)?;
    Ok(scalar::kl_unpacked(
        d,
        mean_p,
        mean_q,
        l2,
        m,
        y,
        log_p - log_q,
    ))
}

/// `KL(p‖q)` from dense row-major `d × d` covariance matrices (PyTorch's
/// `covariance_matrix`): each is factored by Cholesky into the workspace
/// (only the lower triangle is read), then the KL is computed as in
/// [`kl_dense`]. `d` is `mean_p.len()`; the inputs are not modified.
///
/// # Errors
/// [`Error::NotPositiveDefinite`] naming `cov_p` or `cov_q` and the failing
/// pivot (a NaN pivot counts as failing), and the shape errors of [`kl`].
///
/// ```
/// use gaussian_kl::full;
/// let cov = [4.0f64, 2.0, 2.0, 10.0];
/// let mut work = [0.0; full::workspace_len(2)];
/// assert!(full::kl_cov(&[0.0, 0.0], &cov, &[0.0, 0.0], &cov, &mut work)?.abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_cov<T: Real>(
    mean_p: &[T],
    cov_p: &[T],
    mean_q: &[T],
    cov_q: &[T],
    work: &mut [T],
) -> Result<T, Error> {
    let d = check_dense(mean_p, cov_p, mean_q, cov_q, ["cov_p", "cov_q"])?;
    let (l2, m, y) = split_work(d, work)?;
    pack_dense_lower(d, cov_q, l2);
    pack_dense_lower(d, cov_p, m);
    cholesky::factor_packed("cov_q", d, l2)?;
    cholesky::factor_packed("cov_p", d, m)?;
    let log_q = plain_log_diag_sum("cov_q", d, l2)?;
    let log_p = plain_log_diag_sum("cov_p", d, m)?;
    Ok(scalar::kl_unpacked(
        d,
        mean_p,
        mean_q,
        l2,
        m,
        y,
        log_p - log_q,
    ))
}

/// `KL(p‖N(0, I))`, the VAE prior: `½(‖μ‖² + ‖L‖²_F − 2 Σ log Lᵢᵢ − d)`.
/// No solve and no workspace. With a log diagonal no logarithm is evaluated.
///
/// # Errors
/// Shape errors as [`kl`]; [`Error::NonPositiveDiagonal`] for a plain diagonal.
///
/// ```
/// use gaussian_kl::{full, PackedTril};
/// // p = N(0, I) itself: raw log diagonal 0, off-diagonal 0.
/// assert_eq!(full::kl_std_normal(&[0.0f64; 2], PackedTril::new(2, &[0.0; 3]))?, 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal<T: Real>(mean: &[T], l: PackedTril<'_, T>) -> Result<T, Error> {
    let d = l.d;
    l.check("l")?;
    check_len("mean", d, mean.len())?;
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let raw = l.data[l.layout.index(d, i, i)];
        log_sum += match l.diagonal {
            crate::Diagonal::Log => raw,
            crate::Diagonal::Plain => {
                if raw <= T::ZERO {
                    return Err(Error::NonPositiveDiagonal {
                        what: "l",
                        index: i,
                        item: None,
                        value: raw.to_f64(),
                    });
                }
                raw.ln()
            }
        };
    }
    let entry = |i: usize, j: usize| {
        let raw = l.data[l.layout.index(d, i, j)];
        if i == j && l.diagonal == crate::Diagonal::Log {
            raw.exp()
        } else {
            raw
        }
    };
    Ok(scalar::kl_std_normal_with(d, mean, entry, log_sum))
}

/// [`kl_std_normal`] for a dense row-major `d × d` factor with a plain
/// diagonal (upper triangle ignored). `d` is `mean.len()`.
///
/// # Errors
/// [`Error::LengthMismatch`] if `l.len() != d²`; [`Error::NonPositiveDiagonal`].
///
/// ```
/// use gaussian_kl::full;
/// let kl = full::kl_std_normal_dense(&[1.0f64], &[1.0])?;
/// assert_eq!(kl, 0.5);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_dense<T: Real>(mean: &[T], l: &[T]) -> Result<T, Error> {
    let d = mean.len();
    let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
    check_len("l", n, l.len())?;
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let v = l[i * d + i];
        if v <= T::ZERO {
            return Err(Error::NonPositiveDiagonal {
                what: "l",
                index: i,
                item: None,
                value: v.to_f64(),
            });
        }
        log_sum += v.ln();
    }
    Ok(scalar::kl_std_normal_with(
        d,
        mean,
        |i, j| l[i * d + j],
        log_sum,
    ))
}
