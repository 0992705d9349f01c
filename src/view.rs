//! Borrowed input views and gradient outputs, validated once when built.
//!
//! | view | holds | built by |
//! |---|---|---|
//! | [`PackedTril`] | one packed lower-triangular factor (`d(d+1)/2` numbers, any [`Layout`], log or plain diagonal) | [`PackedTril::new`], [`PackedTril::with_layout`] |
//! | [`MatRef`] | one dense `d × d` matrix with a row and a column stride (row-major, column-major, transposed, or a view into a larger array) | [`MatRef::row_major`], [`MatRef::col_major`], [`MatRef::from_strides`] |
//! | [`Factor`] | either of the two, as a Cholesky factor | `From` both |
//! | [`Gaussian`] | a mean and a factor | [`Gaussian::new`], [`Gaussian::packed`] |
//! | [`Gaussians`] | `n` Gaussians: `n × d` means and `n × d(d+1)/2` packed factors, PyTorch's memory layout | [`Gaussians::new`], [`Gaussians::with_layout`] |
//! | [`DiagGaussian`] | a diagonal Gaussian: mean and variances (or log-variances) | [`DiagGaussian::var`], [`DiagGaussian::log_var`] |
//! | [`DiagGaussians`] | `n` diagonal Gaussians, `n × d` each | [`DiagGaussians::var`], [`DiagGaussians::log_var`] |
//! | [`GradMut`], [`DiagGradMut`], [`Grads`] | gradient outputs, overwritten or accumulated ([`Mode`]) | `new` |
//!
//! A constructor checks every length (naming the argument and, in a batch,
//! the Gaussian) and every plain diagonal entry or variance (`> 0`); the
//! operations that take a view never check it again. NaN and infinite
//! values pass the checks (a NaN is not `≤ 0`): they propagate into results.

use crate::error::{Error, check_len};
use crate::real::Real;
use crate::tril::{Diagonal, Layout, tril_len};

/// A borrowed packed lower-triangular factor `L` of dimension `d`.
///
/// Only the lower triangle is stored: `d(d+1)/2` numbers in one of the
/// [`Layout`]s, the diagonal as raw log-values (`Lᵢᵢ = exp(raw)`, what a
/// VAE encoder emits) or as plain values (checked `> 0`).
///
/// ```
/// use gaussian_kl::{Diagonal, Layout, PackedTril};
/// // d = 2, PyTorch order, raw log diagonal: L = [[e^0, 0], [0.5, e^1]]
/// let raw = [0.0f64, 0.5, 1.0];
/// let l = PackedTril::new(2, &raw)?;
/// assert_eq!((l.layout(), l.diagonal()), (Layout::RowMajor, Diagonal::Log));
/// let mut dense = [0.0; 4];
/// l.expand_dense(&mut dense)?;
/// assert_eq!(dense[..3], [1.0, 0.0, 0.5]);
/// assert!((dense[3] - 1f64.exp()).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackedTril<'a, T> {
    pub(crate) d: usize,
    pub(crate) data: &'a [T],
    pub(crate) layout: Layout,
    pub(crate) diagonal: Diagonal,
}

impl<'a, T: Real> PackedTril<'a, T> {
    /// Row-major (PyTorch `tril_indices`) order with a raw log diagonal.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"factor"`) unless `data` holds
    /// `d(d+1)/2` numbers; [`Error::DimensionTooLarge`].
    #[inline]
    pub fn new(d: usize, data: &'a [T]) -> Result<Self, Error> {
        Self::with_layout(d, data, Layout::RowMajor, Diagonal::Log)
    }

    /// Any layout and diagonal encoding.
    ///
    /// # Errors
    /// As [`PackedTril::new`]; [`Error::NonPositiveDiagonal`] (`"factor"`)
    /// for a plain diagonal entry `≤ 0`.
    ///
    /// ```
    /// use gaussian_kl::{Diagonal, Error, Layout, PackedTril};
    /// // LAPACK 'L' packed, plain diagonal: L = [[2, 0], [1, 3]]
    /// let l = PackedTril::with_layout(2, &[2.0f32, 1.0, 3.0], Layout::ColMajor, Diagonal::Plain)?;
    /// assert_eq!(l.dim(), 2);
    /// let bad = PackedTril::with_layout(2, &[2.0f32, 1.0, -0.0], Layout::ColMajor, Diagonal::Plain);
    /// assert!(matches!(bad, Err(Error::NonPositiveDiagonal { what: "factor", index: 1, .. })));
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn with_layout(
        d: usize,
        data: &'a [T],
        layout: Layout,
        diagonal: Diagonal,
    ) -> Result<Self, Error> {
        let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
        check_len("factor", t, data.len())?;
        let l = PackedTril {
            d,
            data,
            layout,
            diagonal,
        };
        l.check_diagonal("factor", None)?;
        Ok(l)
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The `d(d+1)/2` packed numbers.
    #[inline]
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// Their order.
    #[inline]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The encoding of the diagonal.
    #[inline]
    pub fn diagonal(&self) -> Diagonal {
        self.diagonal
    }

    /// Entry `(i, j)`, `j ≤ i < d`, as stored (a raw log-value on a log diagonal).
    #[inline(always)]
    pub(crate) fn raw(&self, i: usize, j: usize) -> T {
        self.data[self.layout.index(self.d, i, j)]
    }

    /// Checks that `data` holds `d(d+1)/2` numbers (for views built as
    /// struct literals inside the crate).
    pub(crate) fn check(&self, what: &'static str) -> Result<(), Error> {
        let t = tril_len(self.d).ok_or(Error::DimensionTooLarge { d: self.d })?;
        check_len(what, t, self.data.len())
    }

    /// Checks every plain diagonal entry (`> 0`, NaN passes).
    pub(crate) fn check_diagonal(
        &self,
        what: &'static str,
        item: Option<usize>,
    ) -> Result<(), Error> {
        if self.diagonal == Diagonal::Plain {
            for i in 0..self.d {
                let v = self.raw(i, i);
                if v <= T::ZERO {
                    return Err(Error::NonPositiveDiagonal {
                        what,
                        item,
                        index: i,
                        value: v.to_f64(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Expands into a dense row-major `d × d` matrix with plain values
    /// (`exp` applied to a log diagonal) and zeros above the diagonal.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"out"`) unless `out` holds `d²` numbers.
    pub fn expand_dense(&self, out: &mut [T]) -> Result<(), Error> {
        let d = self.d;
        let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
        check_len("out", n, out.len())?;
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] = if j <= i { self.raw(i, j) } else { T::ZERO };
            }
            if self.diagonal == Diagonal::Log {
                out[i * d + i] = out[i * d + i].exp();
            }
        }
        Ok(())
    }
}

/// A borrowed dense `d × d` matrix: entry `(i, j)` is
/// `data[i · row_stride + j · col_stride]`, as faer's `MatRef` reads it, so
/// row-major (`row_stride = d`, `col_stride = 1`: PyTorch's `scale_tril`),
/// column-major (`1`, `d`: nalgebra, faer, LAPACK, Fortran-order ndarray),
/// transposed data and views into larger arrays are all read in place.
///
/// As a Cholesky factor, only the lower triangle (`j ≤ i`) is read and the
/// strict upper triangle is ignored (LAPACK's `potrf` leaves the original
/// matrix there); the diagonal holds plain values, checked `> 0` when the
/// [`Gaussian`] is built.
///
/// ```
/// use gaussian_kl::MatRef;
/// // L = [[1, 0], [5, 1]] stored column by column
/// let l = MatRef::col_major(2, &[1.0f64, 5.0, 0.0, 1.0])?;
/// assert_eq!(l.get(1, 0), 5.0);
/// assert_eq!(l.get(0, 1), 0.0);
/// assert_eq!(l.transpose().get(0, 1), 5.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatRef<'a, T> {
    pub(crate) d: usize,
    pub(crate) data: &'a [T],
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a, T: Real> MatRef<'a, T> {
    /// A row-major `d × d` matrix (`data.len() == d²`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"matrix"`); [`Error::DimensionTooLarge`].
    pub fn row_major(d: usize, data: &'a [T]) -> Result<Self, Error> {
        let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
        check_len("matrix", n, data.len())?;
        Ok(MatRef {
            d,
            data,
            row_stride: d,
            col_stride: 1,
        })
    }

    /// A column-major `d × d` matrix (`data.len() == d²`).
    ///
    /// # Errors
    /// As [`MatRef::row_major`].
    pub fn col_major(d: usize, data: &'a [T]) -> Result<Self, Error> {
        Ok(Self::row_major(d, data)?.transpose())
    }

    /// Any strides: entry `(i, j)` at `i · row_stride + j · col_stride`.
    /// `data` must reach the last entry; it may be longer (a view into a
    /// larger array) and strides may overlap (a broadcast matrix).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"matrix"`, the length the strides reach)
    /// when `data` is too short; [`Error::DimensionTooLarge`] when that
    /// length overflows `usize`.
    ///
    /// ```
    /// use gaussian_kl::MatRef;
    /// // the top-left 2 × 2 block of a row-major 3 × 3 array
    /// let a = [1.0f32, 0.0, 9.0, 0.5, 2.0, 9.0, 9.0, 9.0, 9.0];
    /// let l = MatRef::from_strides(2, &a, 3, 1)?;
    /// assert_eq!((l.get(1, 0), l.get(1, 1)), (0.5, 2.0));
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn from_strides(
        d: usize,
        data: &'a [T],
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, Error> {
        if d > 0 {
            let last = (d - 1)
                .checked_mul(row_stride)
                .and_then(|r| (d - 1).checked_mul(col_stride)?.checked_add(r))
                .and_then(|l| l.checked_add(1))
                .ok_or(Error::DimensionTooLarge { d })?;
            if data.len() < last {
                return Err(Error::LengthMismatch {
                    what: "matrix",
                    expected: last,
                    found: data.len(),
                });
            }
        }
        Ok(MatRef {
            d,
            data,
            row_stride,
            col_stride,
        })
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.d
    }

    /// `(row_stride, col_stride)`.
    #[inline]
    pub fn strides(&self) -> (usize, usize) {
        (self.row_stride, self.col_stride)
    }

    /// The transposed view (no copy).
    #[inline]
    pub fn transpose(self) -> Self {
        MatRef {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Entry `(i, j)`; NaN outside `0..d` (never a panic).
    #[inline(always)]
    pub fn get(&self, i: usize, j: usize) -> T {
        if i < self.d && j < self.d {
            // In bounds: the constructor checked the last entry.
            self.data[i * self.row_stride + j * self.col_stride]
        } else {
            T::NAN
        }
    }

    /// Checks every diagonal entry (`> 0`, NaN passes).
    pub(crate) fn check_diagonal(
        &self,
        what: &'static str,
        item: Option<usize>,
    ) -> Result<(), Error> {
        for i in 0..self.d {
            let v = self.get(i, i);
            if v <= T::ZERO {
                return Err(Error::NonPositiveDiagonal {
                    what,
                    item,
                    index: i,
                    value: v.to_f64(),
                });
            }
        }
        Ok(())
    }
}

/// A lower Cholesky factor, packed or dense.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Factor<'a, T> {
    /// `d(d+1)/2` packed numbers.
    Packed(PackedTril<'a, T>),
    /// A dense matrix whose lower triangle is read (plain diagonal).
    Dense(MatRef<'a, T>),
}

impl<T: Real> Factor<'_, T> {
    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        match self {
            Factor::Packed(l) => l.d,
            Factor::Dense(l) => l.d,
        }
    }
}

impl<'a, T> From<PackedTril<'a, T>> for Factor<'a, T> {
    fn from(l: PackedTril<'a, T>) -> Self {
        Factor::Packed(l)
    }
}

impl<'a, T> From<MatRef<'a, T>> for Factor<'a, T> {
    fn from(l: MatRef<'a, T>) -> Self {
        Factor::Dense(l)
    }
}

/// One full-rank Gaussian `N(μ, L Lᵀ)`: a mean and a lower Cholesky factor.
///
/// ```
/// use gaussian_kl::{Gaussian, MatRef};
/// // packed: d = 2 from the mean, 3 raw packed numbers, exp on the diagonal
/// let p = Gaussian::packed(&[0.1f64, -0.3], &[0.2, 0.5, -0.1])?;
/// assert_eq!(p.dim(), 2);
/// // a dense column-major factor
/// let q = Gaussian::new(&[0.0, 0.0], MatRef::col_major(2, &[1.0, 5.0, 0.0, 1.0])?)?;
/// assert_eq!(q.dim(), 2);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gaussian<'a, T> {
    pub(crate) mean: &'a [T],
    pub(crate) factor: Factor<'a, T>,
}

impl<'a, T: Real> Gaussian<'a, T> {
    /// A mean and a factor of the same dimension.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"mean"`, expected the factor's `d`);
    /// [`Error::NonPositiveDiagonal`] (`"factor"`) for a dense factor with a
    /// diagonal entry `≤ 0`.
    pub fn new(mean: &'a [T], factor: impl Into<Factor<'a, T>>) -> Result<Self, Error> {
        let factor = factor.into();
        check_len("mean", factor.dim(), mean.len())?;
        if let Factor::Dense(l) = &factor {
            l.check_diagonal("factor", None)?;
        }
        Ok(Gaussian { mean, factor })
    }

    /// The packed parameterization of a VAE posterior: `d = mean.len()`, the factor as
    /// `d(d+1)/2` raw numbers in PyTorch `tril_indices` order, `exp` on the
    /// diagonal.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"factor"`).
    pub fn packed(mean: &'a [T], factor: &'a [T]) -> Result<Self, Error> {
        Ok(Gaussian {
            mean,
            factor: Factor::Packed(PackedTril::new(mean.len(), factor)?),
        })
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean.
    #[inline]
    pub fn mean(&self) -> &'a [T] {
        self.mean
    }

    /// The factor.
    #[inline]
    pub fn factor(&self) -> Factor<'a, T> {
        self.factor
    }
}

/// `n` full-rank Gaussians of dimension `d` in PyTorch's memory layout:
/// `n × d` means, row by row, and `n × d(d+1)/2` packed factors, one after
/// the other, every factor in the same [`Layout`] and [`Diagonal`] encoding.
///
/// ```
/// use gaussian_kl::{Error, Gaussians};
/// let means = [0.1f32, -0.3, 0.0, 0.2];
/// let factors = [0.2f32, 0.5, -0.1, 0.0, 0.0, 0.0];
/// let g = Gaussians::new(2, 2, &means, &factors)?;
/// assert_eq!((g.len(), g.dim()), (2, 2));
/// assert_eq!(g.get(1).unwrap().mean(), &[0.0, 0.2]);
/// let err = Gaussians::new(2, 2, &means, &factors[..5]).unwrap_err();
/// assert_eq!(err, Error::LengthMismatch { what: "factors", expected: 6, found: 5 });
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gaussians<'a, T> {
    pub(crate) n: usize,
    pub(crate) d: usize,
    pub(crate) means: &'a [T],
    pub(crate) factors: &'a [T],
    pub(crate) layout: Layout,
    pub(crate) diagonal: Diagonal,
}

impl<'a, T: Real> Gaussians<'a, T> {
    /// `n` Gaussians with row-major packed factors and raw log diagonals.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"means"`: `n · d`; `"factors"`:
    /// `n · d(d+1)/2`); [`Error::DimensionTooLarge`].
    pub fn new(n: usize, d: usize, means: &'a [T], factors: &'a [T]) -> Result<Self, Error> {
        Self::with_layout(n, d, means, factors, Layout::RowMajor, Diagonal::Log)
    }

    /// Any packed layout and diagonal encoding.
    ///
    /// # Errors
    /// As [`Gaussians::new`]; [`Error::NonPositiveDiagonal`] (`"factors"`,
    /// with the Gaussian's index) for a plain diagonal entry `≤ 0`.
    pub fn with_layout(
        n: usize,
        d: usize,
        means: &'a [T],
        factors: &'a [T],
        layout: Layout,
        diagonal: Diagonal,
    ) -> Result<Self, Error> {
        let too_large = Error::DimensionTooLarge { d };
        let t = tril_len(d).ok_or(too_large)?;
        check_len("means", n.checked_mul(d).ok_or(too_large)?, means.len())?;
        check_len("factors", n.checked_mul(t).ok_or(too_large)?, factors.len())?;
        let g = Gaussians {
            n,
            d,
            means,
            factors,
            layout,
            diagonal,
        };
        // With d = 0 there is no diagonal, whatever n is (which may be huge).
        if diagonal == Diagonal::Plain && d > 0 {
            for k in 0..n {
                g.factor(k).check_diagonal("factors", Some(k))?;
            }
        }
        Ok(g)
    }

    /// The number of Gaussians `n`.
    #[inline]
    pub fn len(&self) -> usize {
        self.n
    }

    /// `true` when `n = 0`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The `n × d` means.
    #[inline]
    pub fn means(&self) -> &'a [T] {
        self.means
    }

    /// The `n × d(d+1)/2` packed factors.
    #[inline]
    pub fn factors(&self) -> &'a [T] {
        self.factors
    }

    /// The layout of every factor.
    #[inline]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The diagonal encoding of every factor.
    #[inline]
    pub fn diagonal(&self) -> Diagonal {
        self.diagonal
    }

    /// Gaussian `k`, or `None` past the end.
    pub fn get(&self, k: usize) -> Option<Gaussian<'a, T>> {
        (k < self.n).then(|| Gaussian {
            mean: &self.means[k * self.d..(k + 1) * self.d],
            factor: Factor::Packed(self.factor(k)),
        })
    }

    /// The factor of Gaussian `k < n` (the caller checks `k`).
    #[inline]
    pub(crate) fn factor(&self, k: usize) -> PackedTril<'a, T> {
        let t = row_len(self.d);
        PackedTril {
            d: self.d,
            data: &self.factors[k * t..(k + 1) * t],
            layout: self.layout,
            diagonal: self.diagonal,
        }
    }
}

/// `d(d+1)/2` for a `d` whose triangle is known to fit (a validated view's).
#[inline(always)]
pub(crate) fn row_len(d: usize) -> usize {
    crate::tril::row_start(d)
}

/// How the spread of a diagonal Gaussian is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scale {
    /// Variances `σ²`; each must be `> 0` (checked).
    #[default]
    Var,
    /// Log-variances `log σ²` (a VAE encoder's output); any real number.
    LogVar,
}

/// Checks that every variance is `> 0` (NaN passes).
fn check_var<T: Real>(what: &'static str, item: Option<usize>, spread: &[T]) -> Result<(), Error> {
    match spread.iter().position(|&v| v <= T::ZERO) {
        Some(index) => Err(Error::NonPositiveVariance {
            what,
            item,
            index,
            value: spread[index].to_f64(),
        }),
        None => Ok(()),
    }
}

/// One diagonal Gaussian `N(μ, diag σ²)`.
///
/// ```
/// use gaussian_kl::{DiagGaussian, Error};
/// let g = DiagGaussian::var(&[0.0f64, 1.0], &[1.0, 2.0])?;
/// assert_eq!(g.dim(), 2);
/// let err = DiagGaussian::var(&[0.0f64, 1.0], &[1.0, 0.0]).unwrap_err();
/// assert_eq!(err.to_string(), "var: variance 1 is 0.0, not positive");
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiagGaussian<'a, T> {
    pub(crate) mean: &'a [T],
    pub(crate) spread: &'a [T],
    pub(crate) scale: Scale,
}

impl<'a, T: Real> DiagGaussian<'a, T> {
    /// From the mean and the variances.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"var"`, expected `mean.len()`);
    /// [`Error::NonPositiveVariance`] (`"var"`).
    pub fn var(mean: &'a [T], var: &'a [T]) -> Result<Self, Error> {
        check_len("var", mean.len(), var.len())?;
        check_var("var", None, var)?;
        Ok(DiagGaussian {
            mean,
            spread: var,
            scale: Scale::Var,
        })
    }

    /// From the mean and the log-variances (any real numbers).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"log_var"`, expected `mean.len()`).
    pub fn log_var(mean: &'a [T], log_var: &'a [T]) -> Result<Self, Error> {
        check_len("log_var", mean.len(), log_var.len())?;
        Ok(DiagGaussian {
            mean,
            spread: log_var,
            scale: Scale::LogVar,
        })
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean.
    #[inline]
    pub fn mean(&self) -> &'a [T] {
        self.mean
    }

    /// The variances or log-variances (see [`DiagGaussian::scale`]).
    #[inline]
    pub fn spread(&self) -> &'a [T] {
        self.spread
    }

    /// What [`DiagGaussian::spread`] holds.
    #[inline]
    pub fn scale(&self) -> Scale {
        self.scale
    }
}

/// `n` diagonal Gaussians of dimension `d`: row-major `n × d` means and
/// variances (or log-variances), PyTorch's memory layout.
///
/// ```
/// use gaussian_kl::{DiagGaussians, Error};
/// let means = [0.0f32, 1.0, 2.0, 3.0];
/// let err = DiagGaussians::var(2, 2, &means, &[1.0, 2.0, 0.5, -4.0]).unwrap_err();
/// assert_eq!(err.to_string(), "var: Gaussian 1, variance 1 is -4.0, not positive");
/// let b = DiagGaussians::log_var(2, 2, &means, &[0.0; 4])?;
/// assert_eq!((b.len(), b.dim()), (2, 2));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiagGaussians<'a, T> {
    pub(crate) n: usize,
    pub(crate) d: usize,
    pub(crate) means: &'a [T],
    pub(crate) spread: &'a [T],
    pub(crate) scale: Scale,
}

impl<'a, T: Real> DiagGaussians<'a, T> {
    /// From `n × d` means and variances.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"means"`, `"var"`: `n · d` each);
    /// [`Error::NonPositiveVariance`] (`"var"`, with the Gaussian's index);
    /// [`Error::DimensionTooLarge`].
    pub fn var(n: usize, d: usize, means: &'a [T], var: &'a [T]) -> Result<Self, Error> {
        let g = Self::build(n, d, means, var, Scale::Var, "var")?;
        if d > 0 {
            for (k, row) in var.chunks_exact(d).enumerate() {
                check_var("var", Some(k), row)?;
            }
        }
        Ok(g)
    }

    /// From `n × d` means and log-variances (any real numbers).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"means"`, `"log_var"`); [`Error::DimensionTooLarge`].
    pub fn log_var(n: usize, d: usize, means: &'a [T], log_var: &'a [T]) -> Result<Self, Error> {
        Self::build(n, d, means, log_var, Scale::LogVar, "log_var")
    }

    fn build(
        n: usize,
        d: usize,
        means: &'a [T],
        spread: &'a [T],
        scale: Scale,
        what: &'static str,
    ) -> Result<Self, Error> {
        let len = n.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
        check_len("means", len, means.len())?;
        check_len(what, len, spread.len())?;
        Ok(DiagGaussians {
            n,
            d,
            means,
            spread,
            scale,
        })
    }

    /// The number of Gaussians `n`.
    #[inline]
    pub fn len(&self) -> usize {
        self.n
    }

    /// `true` when `n = 0`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The `n × d` means.
    #[inline]
    pub fn means(&self) -> &'a [T] {
        self.means
    }

    /// The `n × d` variances or log-variances.
    #[inline]
    pub fn spread(&self) -> &'a [T] {
        self.spread
    }

    /// What [`DiagGaussians::spread`] holds.
    #[inline]
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// Gaussian `k`, or `None` past the end.
    pub fn get(&self, k: usize) -> Option<DiagGaussian<'a, T>> {
        (k < self.n).then(|| DiagGaussian {
            mean: &self.means[k * self.d..(k + 1) * self.d],
            spread: &self.spread[k * self.d..(k + 1) * self.d],
            scale: self.scale,
        })
    }
}

/// Whether a gradient kernel overwrites its output buffers or adds into them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `out = ∂` (the default).
    #[default]
    Overwrite,
    /// `out += ∂`: a training loop sums the gradients of several loss terms
    /// without a temporary.
    Accumulate,
}

/// The gradient of one Gaussian (or one side of a batch): buffers shaped as
/// its inputs (`mean`: the means; `factor`: the factor in the input's own
/// form — the same packed layout, or the same strides for a dense factor —
/// differentiated with respect to the raw log-value on a log diagonal).
#[derive(Debug)]
pub struct GradMut<'a, T> {
    pub(crate) mean: &'a mut [T],
    pub(crate) factor: &'a mut [T],
    pub(crate) mode: Mode,
}

impl<'a, T> GradMut<'a, T> {
    /// Buffers that the kernel overwrites.
    pub fn new(mean: &'a mut [T], factor: &'a mut [T]) -> Self {
        GradMut {
            mean,
            factor,
            mode: Mode::Overwrite,
        }
    }

    /// The same buffers in another [`Mode`].
    pub fn mode(self, mode: Mode) -> Self {
        GradMut { mode, ..self }
    }

    /// Re-borrows the buffers (to call a kernel again with the same outputs).
    pub fn reborrow(&mut self) -> GradMut<'_, T> {
        GradMut {
            mean: self.mean,
            factor: self.factor,
            mode: self.mode,
        }
    }
}

/// The gradient of one diagonal Gaussian (or one side of a batch): `mean`
/// and `spread` shaped as the inputs, `spread` differentiated with respect
/// to what the input holds (variance or log-variance).
#[derive(Debug)]
pub struct DiagGradMut<'a, T> {
    pub(crate) mean: &'a mut [T],
    pub(crate) spread: &'a mut [T],
    pub(crate) mode: Mode,
}

impl<'a, T> DiagGradMut<'a, T> {
    /// Buffers that the kernel overwrites.
    pub fn new(mean: &'a mut [T], spread: &'a mut [T]) -> Self {
        DiagGradMut {
            mean,
            spread,
            mode: Mode::Overwrite,
        }
    }

    /// The same buffers in another [`Mode`].
    pub fn mode(self, mode: Mode) -> Self {
        DiagGradMut { mode, ..self }
    }

    /// Re-borrows the buffers.
    pub fn reborrow(&mut self) -> DiagGradMut<'_, T> {
        DiagGradMut {
            mean: self.mean,
            spread: self.spread,
            mode: self.mode,
        }
    }
}

/// The gradients of both sides of `KL(p‖q)`.
#[derive(Debug)]
pub struct Grads<G> {
    pub(crate) p: G,
    pub(crate) q: G,
}

impl<G> Grads<G> {
    /// `∂/∂p` and `∂/∂q`.
    pub fn new(p: G, q: G) -> Self {
        Grads { p, q }
    }
}
