//! nalgebra matrices, vectors and `Cholesky` as the crate's views (feature
//! `nalgebra`, `no_std`).
//!
//! | function | input | result | memory |
//! |---|---|---|---|
//! | [`mat_ref`] | any contiguous matrix (`SMatrix`, `DMatrix`, `Matrix3`, …) | [`MatRef`] (column-major strides) | borrows |
//! | [`gaussian`] | a contiguous mean vector (or column view) and factor | [`Gaussian`] | borrows |
//! | [`cholesky_gaussian`] | a mean and a `Cholesky` | [`Gaussian`] reading `l_dirty()` | borrows |
//! | [`pack_lower`] | any matrix, including strided views | [`PackedTril`] in a caller `buf` | copies `d(d+1)/2` |
//! | [`grad_mut`] | contiguous gradient outputs shaped as the inputs | [`GradMut`] | borrows |
//!
//! nalgebra stores matrices column by column; [`mat_ref`] passes its strides
//! (`(1, nrows)`) to [`MatRef::from_strides`], so the lower triangle is read
//! correctly (a column-major slice passed as row-major would silently give
//! the KL of `Lᵀ`). A covariance matrix goes through [`mat_ref`] to
//! `full::kl_cov`.
//!
//! A matrix view with a column stride larger than its row count (a
//! sub-block, `fixed_view`) is not contiguous: nalgebra exposes its memory as
//! a slice only through `unsafe` code, which this crate forbids, so such
//! views are not accepted by [`mat_ref`] (a compile error, not a wrong
//! answer) and [`pack_lower`] copies them instead.
//!
//! ```
//! use gaussian_kl::{full, interop::nalgebra as na_kl};
//! use nalgebra::{Matrix3, Vector3};
//! let mean = Vector3::new(0.1f64, -0.2, 0.3);
//! let cov = Matrix3::new(2.0, 0.3, 0.1, 0.3, 1.0, 0.2, 0.1, 0.2, 0.5);
//! let chol = cov.cholesky().unwrap();
//! let p = na_kl::cholesky_gaussian(&mean, &chol)?;
//! let prior = Matrix3::identity();
//! let mut work = [0.0; full::kl_cov_scratch(3)];
//! let via_cov = full::kl_cov(
//!     mean.as_slice(), na_kl::mat_ref(&cov)?,
//!     &[0.0; 3], na_kl::mat_ref(&prior)?, &mut work,
//! )?;
//! assert!((full::kl_std_normal(&p)? - via_cov).abs() < 1e-14);
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

use ::nalgebra::allocator::Allocator;
use ::nalgebra::storage::{IsContiguous, RawStorage, RawStorageMut};
use ::nalgebra::{Cholesky, ComplexField, DefaultAllocator, Dim, Matrix, Scalar, U1};

use super::{rename, square};
use crate::error::Error;
use crate::real::Real;
use crate::view::{Gaussian, GradMut, MatRef, PackedTril};

/// A contiguous square matrix as a [`MatRef`] with nalgebra's own strides
/// (column-major), borrowed.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"matrix"`, expected the row count) for a
/// matrix that is not square.
///
/// ```
/// use gaussian_kl::{interop::nalgebra::mat_ref, Error};
/// use nalgebra::{DMatrix, Matrix2};
/// let l = Matrix2::new(1.0f32, 0.0, 5.0, 1.0); // rows: [1, 0], [5, 1]
/// let v = mat_ref(&l)?;
/// assert_eq!((v.get(1, 0), v.get(0, 1)), (5.0, 0.0));
/// let err = mat_ref(&DMatrix::<f64>::zeros(2, 3)).unwrap_err();
/// assert_eq!(err, Error::DimensionMismatch { what: "matrix", expected: 2, found: 3 });
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn mat_ref<'a, T, R, C, S>(m: &'a Matrix<T, R, C, S>) -> Result<MatRef<'a, T>, Error>
where
    T: Real + Scalar,
    R: Dim,
    C: Dim,
    S: RawStorage<T, R, C> + IsContiguous,
{
    mat_ref_named("matrix", m)
}

fn mat_ref_named<'a, T, R, C, S>(
    what: &'static str,
    m: &'a Matrix<T, R, C, S>,
) -> Result<MatRef<'a, T>, Error>
where
    T: Real + Scalar,
    R: Dim,
    C: Dim,
    S: RawStorage<T, R, C> + IsContiguous,
{
    let d = square(what, m.nrows(), m.ncols())?;
    let (rs, cs) = m.strides();
    MatRef::from_strides(d, m.as_slice(), rs, cs).map_err(rename(what))
}

/// A Gaussian from a contiguous mean vector and a lower Cholesky factor,
/// both borrowed. Only the factor's lower triangle is read.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"factor"`) for a non-square factor;
/// [`Error::LengthMismatch`] (`"mean"`); [`Error::NonPositiveDiagonal`]
/// (`"factor"`).
///
/// ```
/// use gaussian_kl::{full, interop::nalgebra::gaussian, Error};
/// use nalgebra::{DMatrix, DVector};
/// let m = DVector::from_vec(vec![1.0f64, 0.0]);
/// let l = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.5, 1.0]);
/// let p = gaussian(&m, &l)?;
/// assert_eq!(full::kl_std_normal(&p)?, 0.5 * (1.0 + 2.25 - 2.0));
/// let bad = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.5, -1.0]);
/// assert!(matches!(gaussian(&m, &bad), Err(Error::NonPositiveDiagonal { what: "factor", index: 1, .. })));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn gaussian<'a, T, D, S1, R, C, S2>(
    mean: &'a Matrix<T, D, U1, S1>,
    factor: &'a Matrix<T, R, C, S2>,
) -> Result<Gaussian<'a, T>, Error>
where
    T: Real + Scalar,
    D: Dim,
    R: Dim,
    C: Dim,
    S1: RawStorage<T, D, U1> + IsContiguous,
    S2: RawStorage<T, R, C> + IsContiguous,
{
    Gaussian::new(mean.as_slice(), mat_ref_named("factor", factor)?)
}

/// A Gaussian from a mean and a nalgebra [`Cholesky`] decomposition of its
/// covariance, reading the factor in place (`l_dirty()`: the strict upper
/// triangle still holds the covariance, which is never read).
///
/// # Errors
/// As [`gaussian`].
///
/// ```
/// use gaussian_kl::{full, interop::nalgebra::cholesky_gaussian};
/// use nalgebra::{Matrix2, Vector2};
/// let chol = Matrix2::new(4.0f64, 2.0, 2.0, 10.0).cholesky().unwrap(); // L = [[2, 0], [1, 3]]
/// let mean = Vector2::zeros();
/// let p = cholesky_gaussian(&mean, &chol)?;
/// let expected = 0.5 * (4.0 + 1.0 + 9.0 - 2.0 * (2f64.ln() + 3f64.ln()) - 2.0);
/// assert!((full::kl_std_normal(&p)? - expected).abs() < 1e-14);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn cholesky_gaussian<'a, T, D, S>(
    mean: &'a Matrix<T, D, U1, S>,
    chol: &'a Cholesky<T, D>,
) -> Result<Gaussian<'a, T>, Error>
where
    T: Real + Scalar + ComplexField,
    D: Dim,
    S: RawStorage<T, D, U1> + IsContiguous,
    DefaultAllocator: Allocator<D, D>,
{
    gaussian(mean, chol.l_dirty())
}

/// Copies the lower triangle of any square matrix (a strided view
/// included) into the caller's `buf` (at least `d(d+1)/2` numbers) as a
/// packed factor, row-major with a plain diagonal. The result is
/// bit-identical to the dense view of the same numbers.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"factor"`); [`Error::NonPositiveDiagonal`]
/// (`"factor"`); [`Error::LengthMismatch`] (`"buf"`). `buf` is untouched on
/// error.
///
/// ```
/// use gaussian_kl::{full, interop::nalgebra::pack_lower, Gaussian};
/// use nalgebra::Matrix4;
/// let big = Matrix4::new(2.0f64, 0.0, 0.0, 9.0,
///                        0.5, 1.0, 0.0, 9.0,
///                        0.1, 0.2, 3.0, 9.0,
///                        9.0, 9.0, 9.0, 9.0);
/// let block = big.fixed_view::<3, 3>(0, 0); // column stride 4: not contiguous
/// let mut buf = [0.0; 6];
/// let p = Gaussian::new(&[0.0; 3], pack_lower(&block, &mut buf)?)?;
/// assert!(full::kl_std_normal(&p)? > 0.0);
/// assert_eq!(buf, [2.0, 0.5, 1.0, 0.1, 0.2, 3.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn pack_lower<'a, T, R, C, S>(
    factor: &Matrix<T, R, C, S>,
    buf: &'a mut [T],
) -> Result<PackedTril<'a, T>, Error>
where
    T: Real + Scalar,
    R: Dim,
    C: Dim,
    S: RawStorage<T, R, C>,
{
    let d = square("factor", factor.nrows(), factor.ncols())?;
    super::pack_lower("factor", d, |i, j| factor[(i, j)], buf)
}

/// Gradient outputs shaped as the inputs: a contiguous vector for the mean
/// and a contiguous matrix for the factor (the same shape as the factor
/// passed to [`gaussian`], so the gradient is written with its strides).
/// The operation checks the lengths.
///
/// ```
/// use gaussian_kl::{full, interop::nalgebra::{gaussian, grad_mut}};
/// use nalgebra::{Matrix2, Vector2};
/// let (m, l) = (Vector2::new(1.0f64, -2.0), Matrix2::new(1.0, 0.0, 0.5, 2.0));
/// let p = gaussian(&m, &l)?;
/// let (mut gm, mut gl) = (Vector2::zeros(), Matrix2::zeros());
/// full::kl_std_normal_grad(&p, 1.0, grad_mut(&mut gm, &mut gl))?;
/// assert_eq!(gm, m); // ∂/∂μ = μ
/// assert_eq!(gl[(1, 0)], 0.5); // ∂/∂L = L − diag(1/Lᵢᵢ)
/// assert_eq!(gl[(1, 1)], 2.0 - 0.5);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn grad_mut<'a, T, D, S1, R, C, S2>(
    mean: &'a mut Matrix<T, D, U1, S1>,
    factor: &'a mut Matrix<T, R, C, S2>,
) -> GradMut<'a, T>
where
    T: Real + Scalar,
    D: Dim,
    R: Dim,
    C: Dim,
    S1: RawStorageMut<T, D, U1> + IsContiguous,
    S2: RawStorageMut<T, R, C> + IsContiguous,
{
    GradMut::new(mean.as_mut_slice(), factor.as_mut_slice())
}
