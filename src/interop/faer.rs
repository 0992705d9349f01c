//! faer matrices and `Llt` factorizations as the crate's views (feature
//! `faer`, `no_std` with `alloc`).
//!
//! | function | input | result | memory |
//! |---|---|---|---|
//! | [`mean`] | a `ColRef` with unit row stride | `&[T]` | borrows |
//! | [`pack_lower`] | a `MatRef`, any strides (negative too) | [`PackedTril`] in a caller `buf` | copies `d(d+1)/2` |
//! | [`gaussian`] | a mean `ColRef` and a factor `MatRef` | [`Gaussian`] | borrows the mean, copies the factor |
//! | [`llt_gaussian`] | a mean and a faer `Llt` | [`Gaussian`] (its `L()` factor) | borrows the mean, copies the factor |
//! | [`copy_dense`] | a `MatRef` (a covariance for `full::kl_cov`) | [`MatRef`] in a caller `buf` | copies `d²` |
//!
//! faer exposes a matrix's memory as a slice only column by column (a
//! `Mat`'s columns are padded for alignment, so they are not one slice);
//! reading the whole matrix through one slice would need `unsafe` code,
//! which this crate forbids. The factor is therefore copied, once, into the
//! caller's `buf`: `d(d+1)/2` numbers, the same copy `full::kl` makes into
//! its workspace for a dense factor anyway, and bit-identical to it. The
//! copy reads through faer's own indexing, so any strides work, negative
//! ones (`reverse_rows`) included.
//!
//! ```
//! use gaussian_kl::{full, interop::faer as faer_kl};
//! use faer::{Col, Mat};
//! let cov = Mat::from_fn(3, 3, |i, j| if i == j { 2.0f64 } else { 0.5 });
//! let llt = cov.llt(faer::Side::Lower).unwrap();
//! let mean = Col::from_fn(3, |i| i as f64);
//! let mut buf = [0.0; 6];
//! let p = faer_kl::llt_gaussian(mean.as_ref(), &llt, &mut buf)?;
//! let (mut cov_buf, mut id_buf) = ([0.0; 9], [0.0; 9]);
//! let c = faer_kl::copy_dense(cov.as_ref(), &mut cov_buf)?;
//! let id = faer_kl::copy_dense(Mat::<f64>::identity(3, 3).as_ref(), &mut id_buf)?;
//! let mut work = [0.0; full::kl_cov_scratch(3)];
//! let via_cov = full::kl_cov(faer_kl::mean(mean.as_ref())?, c, &[0.0; 3], id, &mut work)?;
//! assert!((full::kl_std_normal(&p)? - via_cov).abs() < 1e-13);
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

use ::faer::linalg::solvers::Llt;
use ::faer::traits::ComplexField;
use ::faer::{ColRef, MatRef as FaerMatRef};

use super::square;
use crate::error::Error;
use crate::real::Real;
use crate::view::{Gaussian, MatRef, PackedTril};

/// A mean vector with unit row stride, borrowed as a slice.
///
/// # Errors
/// [`Error::Unsupported`] (`"mean"`) for a column with a non-unit stride.
///
/// ```
/// use gaussian_kl::{interop::faer::mean, Error};
/// use faer::Mat;
/// let m = Mat::from_fn(2, 2, |i, j| (i + 2 * j) as f64);
/// assert_eq!(mean(m.col(1))?, &[2.0, 3.0]);
/// assert!(matches!(mean(m.row(0).transpose()), Err(Error::Unsupported { what: "mean", .. })));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn mean<'a, T: Real>(mean: ColRef<'a, T>) -> Result<&'a [T], Error> {
    match mean.try_as_col_major() {
        Some(c) => Ok(c.as_slice()),
        None => Err(Error::Unsupported {
            what: "mean",
            why: "must have unit stride to be borrowed as a slice",
        }),
    }
}

/// Copies the lower triangle of a square `MatRef` (any strides) into the
/// caller's `buf` (at least `d(d+1)/2` numbers) as a packed factor,
/// row-major with a plain diagonal.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"factor"`); [`Error::NonPositiveDiagonal`]
/// (`"factor"`); [`Error::LengthMismatch`] (`"buf"`). `buf` is untouched on
/// error.
///
/// ```
/// use gaussian_kl::{interop::faer::pack_lower, Error};
/// use faer::mat;
/// let l = mat![[2.0f64, 9.0], [0.5, 1.0]]; // the 9 is above the diagonal: not read
/// let mut buf = [0.0; 3];
/// assert_eq!(pack_lower(l.as_ref(), &mut buf)?.data(), &[2.0, 0.5, 1.0]);
/// let err = pack_lower(l.as_ref(), &mut [0.0; 2]).unwrap_err();
/// assert_eq!(err, Error::LengthMismatch { what: "buf", expected: 3, found: 2 });
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn pack_lower<'a, T: Real>(
    factor: FaerMatRef<'_, T>,
    buf: &'a mut [T],
) -> Result<PackedTril<'a, T>, Error> {
    let d = square("factor", factor.nrows(), factor.ncols())?;
    super::pack_lower("factor", d, |i, j| factor[(i, j)], buf)
}

/// Copies a whole square `MatRef` (any strides) into the caller's `buf`
/// (at least `d²` numbers), row-major: a covariance for `full::kl_cov`.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"matrix"`); [`Error::LengthMismatch`]
/// (`"buf"`).
///
/// ```
/// use gaussian_kl::interop::faer::copy_dense;
/// use faer::mat;
/// let c = mat![[4.0f64, 2.0], [2.0, 10.0]];
/// let mut buf = [0.0; 4];
/// assert_eq!(copy_dense(c.as_ref().transpose(), &mut buf)?.get(0, 1), 2.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn copy_dense<'a, T: Real>(
    matrix: FaerMatRef<'_, T>,
    buf: &'a mut [T],
) -> Result<MatRef<'a, T>, Error> {
    let d = square("matrix", matrix.nrows(), matrix.ncols())?;
    super::copy_dense("matrix", d, |i, j| matrix[(i, j)], buf)
}

/// A Gaussian from a mean (borrowed) and a lower Cholesky factor (copied
/// into `buf`, at least `d(d+1)/2` numbers; see the module docs).
///
/// # Errors
/// As [`mean`] and [`pack_lower`]; [`Error::LengthMismatch`] (`"mean"`).
///
/// ```
/// use gaussian_kl::{full, interop::faer::gaussian};
/// use faer::{col, mat};
/// let (m, l) = (col![1.0f64, 0.0], mat![[1.0, 0.0], [0.5, 1.0]]);
/// let mut buf = [0.0; 3];
/// let p = gaussian(m.as_ref(), l.as_ref(), &mut buf)?;
/// assert_eq!(full::kl_std_normal(&p)?, 0.5 * (1.0 + 2.25 - 2.0));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn gaussian<'a, T: Real>(
    mean: ColRef<'a, T>,
    factor: FaerMatRef<'_, T>,
    buf: &'a mut [T],
) -> Result<Gaussian<'a, T>, Error> {
    let m = self::mean(mean)?;
    let d = square("factor", factor.nrows(), factor.ncols())?;
    crate::error::check_len("mean", d, m.len())?;
    Gaussian::new(m, pack_lower(factor, buf)?)
}

/// A Gaussian from a mean and a faer [`Llt`] of its covariance (its `L()`
/// factor, copied into `buf` as in [`gaussian`]).
///
/// # Errors
/// As [`gaussian`].
///
/// ```
/// use gaussian_kl::{full, interop::faer::llt_gaussian};
/// use faer::{col, mat};
/// let llt = mat![[4.0f64, 2.0], [2.0, 10.0]].llt(faer::Side::Lower).unwrap(); // L = [[2, 0], [1, 3]]
/// let mut buf = [0.0; 3];
/// let mean = col![0.0f64, 0.0];
/// let p = llt_gaussian(mean.as_ref(), &llt, &mut buf)?;
/// assert!(full::kl_std_normal(&p)? > 0.0);
/// assert_eq!(buf, [2.0, 1.0, 3.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn llt_gaussian<'a, T: Real + ComplexField>(
    mean: ColRef<'a, T>,
    llt: &Llt<T>,
    buf: &'a mut [T],
) -> Result<Gaussian<'a, T>, Error> {
    gaussian(mean, llt.L(), buf)
}
