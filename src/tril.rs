//! Packed lower-triangular layouts, their index maps and their expansion.
//!
//! A lower-triangular `d × d` factor `L` has `d(d+1)/2` free numbers. They
//! arrive packed in one of three orders ([`Layout`]), with the diagonal
//! either as raw log-values (`Lᵢᵢ = exp(raw)`, seed 000's parameterization)
//! or as plain positive values ([`Diagonal`]).
//!
//! | layout | order of the packed numbers | `(i, j)` (`j ≤ i`) ↦ position |
//! |---|---|---|
//! | [`Layout::RowMajor`] | PyTorch `tril_indices`: row by row | `i(i+1)/2 + j` |
//! | [`Layout::ColMajor`] | LAPACK `'L'` packed: column by column | `j·d − j(j−1)/2 + (i − j)` |
//! | [`Layout::DiagFirst`] | the `d` diagonal entries, then the strict lower triangle row by row | `i` if `i = j`, else `d + i(i−1)/2 + j` |

use crate::error::{Error, check_len};
use crate::real::Real;

/// Order of the packed lower-triangle numbers (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Row by row, PyTorch `torch.tril_indices(d, d)` order (the default).
    #[default]
    RowMajor,
    /// Column by column, LAPACK `'L'` packed storage (`dpptrf`, `dtpsv`).
    ColMajor,
    /// The diagonal first, then the strictly lower entries row by row.
    DiagFirst,
}

/// How the diagonal entries of a packed factor are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Diagonal {
    /// Raw log-values: `Lᵢᵢ = exp(raw)` (seed 000, the default). Any finite
    /// raw value gives a valid factor, and `log Lᵢᵢ` is the raw value itself.
    #[default]
    Log,
    /// Plain values, which must be positive (checked).
    Plain,
}

/// Number of packed entries of a `d × d` lower triangle, `d(d+1)/2`, or
/// `None` if that overflows `usize`.
///
/// ```
/// assert_eq!(gaussian_kl::tril::tril_len(3), Some(6));
/// assert_eq!(gaussian_kl::tril::tril_len(usize::MAX), None);
/// ```
#[inline]
pub const fn tril_len(d: usize) -> Option<usize> {
    // d(d+1)/2 without overflowing in the intermediate product.
    let (a, b) = if d % 2 == 0 {
        (d / 2, d + 1)
    } else {
        (d, d.div_ceil(2))
    };
    if d == usize::MAX {
        return None;
    }
    a.checked_mul(b)
}

/// Start of row `i` in a row-major packed triangle: `i(i+1)/2`.
///
/// Wrapping arithmetic: exact for every row of a triangle that fits in
/// memory, and no overflow panic for any other `i`.
#[inline(always)]
pub(crate) const fn row_start(i: usize) -> usize {
    i.wrapping_mul(i.wrapping_add(1)) / 2
}

impl Layout {
    /// Position of entry `(i, j)`, `j ≤ i < d`, in a packed vector of this layout.
    ///
    /// Outside that domain the position is unspecified (the arithmetic
    /// wraps), but the call never panics.
    ///
    /// ```
    /// use gaussian_kl::Layout;
    /// assert_eq!(Layout::RowMajor.index(3, 2, 1), 4);
    /// assert_eq!(Layout::ColMajor.index(3, 2, 1), 4);
    /// assert_eq!(Layout::DiagFirst.index(3, 2, 1), 5);
    /// assert_eq!(Layout::ColMajor.index(3, 1, 0), 1);
    /// assert_eq!(Layout::DiagFirst.index(3, 1, 1), 1);
    /// ```
    #[inline(always)]
    pub const fn index(self, d: usize, i: usize, j: usize) -> usize {
        match self {
            Layout::RowMajor => row_start(i).wrapping_add(j),
            Layout::ColMajor => j
                .wrapping_mul(d)
                .wrapping_sub(row_start(j.wrapping_sub(1)))
                .wrapping_add(i.wrapping_sub(j)),
            Layout::DiagFirst => {
                if i == j {
                    i
                } else {
                    d.wrapping_add(row_start(i.wrapping_sub(1))).wrapping_add(j)
                }
            }
        }
    }
}

/// A borrowed packed lower-triangular factor `L` of dimension `d`.
///
/// ```
/// use gaussian_kl::{Diagonal, Layout, PackedTril};
/// // d = 2, PyTorch order, raw log diagonal: L = [[e^0, 0], [0.5, e^1]]
/// let raw = [0.0f64, 0.5, 1.0];
/// let l = PackedTril::new(2, &raw);
/// assert_eq!((l.layout, l.diagonal), (Layout::RowMajor, Diagonal::Log));
/// let mut dense = [0.0; 4];
/// l.expand_dense(&mut dense).unwrap();
/// assert_eq!(dense[..3], [1.0, 0.0, 0.5]);
/// assert!((dense[3] - 1f64.exp()).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackedTril<'a, T> {
    /// The dimension `d`.
    pub d: usize,
    /// The `d(d+1)/2` packed numbers.
    pub data: &'a [T],
    /// Their order.
    pub layout: Layout,
    /// The encoding of the diagonal.
    pub diagonal: Diagonal,
}

impl<'a, T: Real> PackedTril<'a, T> {
    /// Row-major (PyTorch) order with a raw log diagonal: seed 000's parameterization.
    #[inline]
    pub const fn new(d: usize, data: &'a [T]) -> Self {
        PackedTril {
            d,
            data,
            layout: Layout::RowMajor,
            diagonal: Diagonal::Log,
        }
    }

    /// The same numbers read in another layout.
    #[inline]
    pub const fn layout(self, layout: Layout) -> Self {
        PackedTril { layout, ..self }
    }

    /// The same numbers with another diagonal encoding.
    #[inline]
    pub const fn diagonal(self, diagonal: Diagonal) -> Self {
        PackedTril { diagonal, ..self }
    }

    /// Checks that `data` holds exactly `d(d+1)/2` numbers.
    pub fn check(&self, what: &'static str) -> Result<(), Error> {
        let n = tril_len(self.d).ok_or(Error::DimensionTooLarge { d: self.d })?;
        check_len(what, n, self.data.len())
    }

    /// Expands into a dense row-major `d × d` matrix with plain values
    /// (`exp` applied to a log diagonal) and zeros above the diagonal.
    pub fn expand_dense(&self, out: &mut [T]) -> Result<(), Error> {
        self.check("packed")?;
        let d = self.d;
        let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
        check_len("out", n, out.len())?;
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] = if j <= i {
                    self.data[self.layout.index(d, i, j)]
                } else {
                    T::ZERO
                };
            }
            let v = out[i * d + i];
            out[i * d + i] = match self.diagonal {
                Diagonal::Log => v.exp(),
                Diagonal::Plain => v,
            };
        }
        Ok(())
    }

    /// Copies the factor into `out` as a row-major packed triangle of plain
    /// values and returns `Σᵢ log Lᵢᵢ`. The result does not depend on the
    /// layout: every layout gives bit-identical `out` and sum.
    ///
    /// Shapes are the caller's to check (`check`, `out.len() >= d(d+1)/2`).
    pub(crate) fn unpack_row_major(&self, what: &'static str, out: &mut [T]) -> Result<T, Error> {
        let d = self.d;
        let mut log_sum = T::ZERO;
        for i in 0..d {
            let r = row_start(i);
            for j in 0..i {
                out[r + j] = self.data[self.layout.index(d, i, j)];
            }
            let raw = self.data[self.layout.index(d, i, i)];
            out[r + i] = match self.diagonal {
                Diagonal::Log => {
                    log_sum += raw;
                    raw.exp()
                }
                Diagonal::Plain => {
                    if raw <= T::ZERO {
                        return Err(Error::NonPositiveDiagonal { what, index: i });
                    }
                    log_sum += raw.ln();
                    raw
                }
            };
        }
        Ok(log_sum)
    }
}

/// Copies the lower triangle of a dense row-major `d × d` matrix into a
/// row-major packed triangle (the upper triangle is ignored).
pub(crate) fn pack_dense_lower<T: Real>(d: usize, dense: &[T], out: &mut [T]) {
    for i in 0..d {
        let r = row_start(i);
        out[r..r + i + 1].copy_from_slice(&dense[i * d..i * d + i + 1]);
    }
}

/// `Σᵢ log Lᵢᵢ` of a row-major packed triangle of plain values, checking
/// that each diagonal entry is positive.
pub(crate) fn plain_log_diag_sum<T: Real>(
    what: &'static str,
    d: usize,
    packed: &[T],
) -> Result<T, Error> {
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let v = packed[row_start(i) + i];
        if v <= T::ZERO {
            return Err(Error::NonPositiveDiagonal { what, index: i });
        }
        log_sum += v.ln();
    }
    Ok(log_sum)
}
