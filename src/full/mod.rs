//! KL divergence between two full-rank Gaussians.
//!
//! `p = N(μ_p, L_p L_pᵀ)`, `q = N(μ_q, L_q L_qᵀ)`, `L` lower triangular with a
//! positive diagonal:
//!
//! ```text
//! KL(p‖q) = ½ ( ‖y‖² + ‖M‖²_F − 2 (Σᵢ log L_pᵢᵢ − Σᵢ log L_qᵢᵢ) − d ),
//!           L_q y = μ_q − μ_p,   L_q M = L_p.
//! ```
//!
//! Each side is a [`Gaussian`]: a mean and a [`Factor`],
//! either packed ([`PackedTril`]: `d(d+1)/2` numbers in
//! any [`Layout`](crate::Layout), log or plain diagonal) or dense
//! ([`MatRef`]: any strides, so row-major, column-major, transposed data
//! and sub-views are read in place; only the lower triangle is read).
//!
//! | operation | what | scratch |
//! |---|---|---|
//! | [`kl`] | `KL(p‖q)` | [`kl_scratch`] |
//! | [`kl_std_normal`] | `KL(p‖N(0, I))`, the VAE prior | none |
//! | [`kl_grad`] | KL and `upstream · ∇KL` into [`GradMut`](crate::GradMut) buffers | [`kl_grad_scratch`] |
//! | [`kl_std_normal_grad`] | the VAE prior's KL and gradient | none |
//! | [`kl_cov`] | KL from covariance matrices `Σ` (factored here by Cholesky) | [`kl_cov_scratch`] |
//! | [`kl_fixed`], [`kl_packed_fixed`], [`kl_grad_fixed`], [`kl_grad_packed_fixed`] | compile-time `D`, on the stack | none |
//! | [`kl_wide_f32x8`], [`kl_wide_f64x4`] | 8 / 4 pairs of compile-time `D` in lockstep (`wide` vectors) | none |
//! | [`cholesky_in_place`], [`cholesky_packed_in_place`] | `Σ = L Lᵀ` in place | none |
//!
//! Every operation checks how its arguments fit together and every output
//! and workspace shape before it writes anything: on `Err` the outputs are
//! untouched. `d = 0` is allowed everywhere and gives `KL = 0` (two
//! distributions on the zero-dimensional space are the same point mass).
//! Every input form of the same factor (each packed layout, a plain or log
//! diagonal with the same values, each dense stride pattern) reaches the same
//! arithmetic in the same order: the results are bit-identical.

// The SIMD batch kernels are reached through the `std` batch layer.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod blocked;
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod blocked_grad;
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
    KlGradFixed, kl_grad, kl_grad_fixed, kl_grad_packed_fixed, kl_grad_scratch, kl_std_normal_grad,
};
pub use wide_fixed::{kl_wide_f32x8, kl_wide_f64x4};

use crate::error::{Error, check_len, check_work};
use crate::real::Real;
use crate::tril::{Diagonal, plain_log_diag_sum, row_start};
use crate::view::{Factor, Gaussian, MatRef, PackedTril};

/// Scratch length (in scalars) that [`kl`] needs for dimension `d`:
/// `d(d+1) + d` (two packed triangles and one vector). Saturates at
/// `usize::MAX` for absurd `d`, which no slice can reach.
///
/// ```
/// assert_eq!(gaussian_kl::full::kl_scratch(3), 15);
/// let mut work = [0.0f32; gaussian_kl::full::kl_scratch(3)];
/// # let _ = &mut work;
/// ```
pub const fn kl_scratch(d: usize) -> usize {
    d.saturating_mul(d.saturating_add(2))
}

/// Scratch length (in scalars) that [`kl_cov`] needs for dimension `d`
/// (the same as [`kl_scratch`]: the factors are computed into it).
///
/// ```
/// assert_eq!(gaussian_kl::full::kl_cov_scratch(2), 8);
/// ```
pub const fn kl_cov_scratch(d: usize) -> usize {
    kl_scratch(d)
}

/// The workspace split into `(L_q, L_p → M, y)`.
type Parts<'w, T> = (&'w mut [T], &'w mut [T], &'w mut [T]);

/// Splits the workspace into `(L_q, L_p → M, y)`.
fn split_work<T>(d: usize, work: &mut [T]) -> Result<Parts<'_, T>, Error> {
    let need = kl_scratch(d);
    check_work(need, work.len())?;
    let t = row_start(d);
    let (l2, rest) = work[..need].split_at_mut(t);
    let (m, y) = rest.split_at_mut(t);
    Ok((l2, m, y))
}

/// Checks that `q` has the dimension of `p` and returns it.
pub(crate) fn check_dims<T: Real>(
    p: &Gaussian<'_, T>,
    q: &Gaussian<'_, T>,
) -> Result<usize, Error> {
    let d = p.dim();
    if q.dim() != d {
        return Err(Error::DimensionMismatch {
            what: "q",
            expected: d,
            found: q.dim(),
        });
    }
    Ok(d)
}

/// Copies the lower triangle of a dense matrix into a row-major packed
/// triangle (`out.len() >= d(d+1)/2`; the upper triangle is not read).
pub(crate) fn pack_lower<T: Real>(a: &MatRef<'_, T>, out: &mut [T]) {
    for i in 0..a.d {
        let r = row_start(i);
        for j in 0..=i {
            out[r + j] = a.get(i, j);
        }
    }
}

/// Copies a factor into `out` as a row-major packed triangle of plain
/// values and returns `Σᵢ log Lᵢᵢ` (every input form gives the same bits).
pub(crate) fn unpack<T: Real>(
    what: &'static str,
    factor: &Factor<'_, T>,
    out: &mut [T],
) -> Result<T, Error> {
    match factor {
        Factor::Packed(l) => l.unpack_row_major(what, out),
        Factor::Dense(l) => {
            pack_lower(l, out);
            plain_log_diag_sum(what, l.d, out)
        }
    }
}

/// `KL(p‖q)` for factors in any packed layout, diagonal encoding or dense
/// strides (each side may have its own form).
///
/// `work` must hold at least [`kl_scratch`]`(d)` scalars; its contents on
/// entry do not matter and on return are unspecified.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`, expected `p.dim()`) when the two
/// sides differ in dimension; [`Error::WorkspaceTooSmall`]. The shapes and
/// diagonals of each side were checked when its [`Gaussian`] was built. NaN
/// and infinite inputs are not errors: they propagate into the result (NaN,
/// or ±∞ when a log-diagonal overflows `exp`).
///
/// ```
/// use gaussian_kl::{full, Gaussian, MatRef};
/// // raw numbers, exp on the diagonal (a VAE encoder's output)
/// let p = Gaussian::packed(&[0.1f64, -0.3], &[0.2, 0.5, -0.1])?;
/// let q = Gaussian::packed(&[0.0, 0.4], &[0.0, -0.2, 0.3])?;
/// let mut work = [0.0; full::kl_scratch(2)];
/// assert!(full::kl(&p, &q, &mut work)? > 0.0);
/// assert!(full::kl(&p, &p, &mut work)?.abs() < 1e-15);
/// // L = [[1, 0], [5, 1]] stored column by column, against N(0, I)
/// let l = Gaussian::new(&[0.0, 0.0], MatRef::col_major(2, &[1.0, 5.0, 0.0, 1.0])?)?;
/// let i = Gaussian::new(&[0.0, 0.0], MatRef::row_major(2, &[1.0, 0.0, 0.0, 1.0])?)?;
/// assert_eq!(full::kl(&l, &i, &mut work)?, 12.5);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl<T: Real>(p: &Gaussian<'_, T>, q: &Gaussian<'_, T>, work: &mut [T]) -> Result<T, Error> {
    let d = check_dims(p, q)?;
    let (l2, m, y) = split_work(d, work)?;
    let log_q = unpack("q.factor", &q.factor, l2)?;
    let log_p = unpack("p.factor", &p.factor, m)?;
    Ok(scalar::kl_unpacked(
        d,
        p.mean,
        q.mean,
        l2,
        m,
        y,
        log_p - log_q,
    ))
}

/// `KL(p‖q)` from covariance matrices `Σ_p`, `Σ_q` (PyTorch's
/// `covariance_matrix`, or any strides): each is factored by Cholesky into
/// the workspace, then the KL is computed as in [`kl`]. Only the lower
/// triangle of each matrix is read (the upper is ignored, as LAPACK's
/// `'L'`); the inputs are not modified. `d` is `cov_p.dim()`.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"mean_p"`, `"mean_q"`, expected `d`);
/// [`Error::DimensionMismatch`] (`"cov_q"`); [`Error::WorkspaceTooSmall`]
/// ([`kl_cov_scratch`]); [`Error::NotPositiveDefinite`] naming `cov_p` or
/// `cov_q` and the failing pivot (a NaN pivot counts as failing).
///
/// ```
/// use gaussian_kl::{full, MatRef};
/// let cov = [4.0f64, 2.0, 2.0, 10.0];
/// let mut work = [0.0; full::kl_cov_scratch(2)];
/// let c = MatRef::row_major(2, &cov)?;
/// assert!(full::kl_cov(&[0.0, 0.0], c, &[0.0, 0.0], c, &mut work)?.abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_cov<T: Real>(
    mean_p: &[T],
    cov_p: MatRef<'_, T>,
    mean_q: &[T],
    cov_q: MatRef<'_, T>,
    work: &mut [T],
) -> Result<T, Error> {
    let d = cov_p.d;
    check_len("mean_p", d, mean_p.len())?;
    if cov_q.d != d {
        return Err(Error::DimensionMismatch {
            what: "cov_q",
            expected: d,
            found: cov_q.d,
        });
    }
    check_len("mean_q", d, mean_q.len())?;
    let (l2, m, y) = split_work(d, work)?;
    pack_lower(&cov_q, l2);
    pack_lower(&cov_p, m);
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

/// `Σᵢ log Lᵢᵢ` of a packed factor (no logarithm on a log diagonal).
fn packed_log_diag<T: Real>(what: &'static str, l: &PackedTril<'_, T>) -> Result<T, Error> {
    let d = l.d;
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let raw = l.raw(i, i);
        log_sum += match l.diagonal {
            Diagonal::Log => raw,
            Diagonal::Plain => {
                if raw <= T::ZERO {
                    return Err(Error::NonPositiveDiagonal {
                        what,
                        index: i,
                        item: None,
                        value: raw.to_f64(),
                    });
                }
                raw.ln()
            }
        };
    }
    Ok(log_sum)
}

/// `Σᵢ log Lᵢᵢ` of a dense factor.
fn dense_log_diag<T: Real>(what: &'static str, l: &MatRef<'_, T>) -> Result<T, Error> {
    let mut log_sum = T::ZERO;
    for i in 0..l.d {
        let v = l.get(i, i);
        if v <= T::ZERO {
            return Err(Error::NonPositiveDiagonal {
                what,
                index: i,
                item: None,
                value: v.to_f64(),
            });
        }
        log_sum += v.ln();
    }
    Ok(log_sum)
}

/// `KL(p‖N(0, I))`, the VAE prior: `½(‖μ‖² + ‖L‖²_F − 2 Σ log Lᵢᵢ − d)`.
/// No solve and no workspace. With a log diagonal no logarithm is evaluated.
///
/// # Errors
/// None for a [`Gaussian`] built by its constructors (they check its
/// shapes and diagonal); the `Result` is kept for symmetry with [`kl`].
///
/// ```
/// use gaussian_kl::{full, Gaussian, MatRef};
/// // p = N(0, I) itself: raw log diagonal 0, off-diagonal 0.
/// assert_eq!(full::kl_std_normal(&Gaussian::packed(&[0.0f64; 2], &[0.0; 3])?)?, 0.0);
/// let p = Gaussian::new(&[1.0f64], MatRef::row_major(1, &[1.0])?)?;
/// assert_eq!(full::kl_std_normal(&p)?, 0.5);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal<T: Real>(p: &Gaussian<'_, T>) -> Result<T, Error> {
    let d = p.dim();
    match &p.factor {
        Factor::Packed(l) => {
            let log_sum = packed_log_diag("p.factor", l)?;
            let entry = |i: usize, j: usize| {
                let raw = l.raw(i, j);
                if i == j && l.diagonal == Diagonal::Log {
                    raw.exp()
                } else {
                    raw
                }
            };
            Ok(scalar::kl_std_normal_with(d, p.mean, entry, log_sum))
        }
        Factor::Dense(l) => {
            let log_sum = dense_log_diag("p.factor", l)?;
            Ok(scalar::kl_std_normal_with(
                d,
                p.mean,
                |i, j| l.get(i, j),
                log_sum,
            ))
        }
    }
}
