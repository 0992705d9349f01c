//! Packed lower-triangular layouts, their index maps and their expansion.
//!
//! A lower-triangular `d × d` factor `L` has `d(d+1)/2` free numbers. They
//! arrive packed in one of three orders ([`Layout`]), with the diagonal
//! either as raw log-values (`Lᵢᵢ = exp(raw)`, a VAE encoder's parameterization)
//! or as plain positive values ([`Diagonal`]).
//!
//! | layout | order of the packed numbers | `(i, j)` (`j ≤ i`) ↦ position |
//! |---|---|---|
//! | [`Layout::RowMajor`] | PyTorch `tril_indices`: row by row | `i(i+1)/2 + j` |
//! | [`Layout::ColMajor`] | LAPACK `'L'` packed: column by column | `j·d − j(j−1)/2 + (i − j)` |
//! | [`Layout::DiagFirst`] | the `d` diagonal entries, then the strict lower triangle row by row | `i` if `i = j`, else `d + i(i−1)/2 + j` |

use crate::error::Error;
use crate::real::Real;
use crate::view::PackedTril;

/// Order of the packed lower-triangle numbers (see the [module docs](self)).
///
/// ```
/// use gaussian_kl::{Layout, PackedTril, Diagonal};
/// // L = [[1, 0], [2, 3]] stored column by column (LAPACK 'L' packed).
/// let l = PackedTril::with_layout(2, &[1.0f64, 2.0, 3.0], Layout::ColMajor, Diagonal::Plain)?;
/// let mut dense = [0.0; 4];
/// l.expand_dense(&mut dense)?;
/// assert_eq!(dense, [1.0, 0.0, 2.0, 3.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
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
///
/// ```
/// use gaussian_kl::{Diagonal, Error, Layout, PackedTril};
/// let mut dense = [0.0f64; 1];
/// // A log diagonal: L₀₀ = exp(0) = 1.
/// PackedTril::new(1, &[0.0])?.expand_dense(&mut dense)?;
/// assert_eq!(dense, [1.0]);
/// // A plain diagonal must be positive.
/// let err = PackedTril::with_layout(1, &[0.0], Layout::RowMajor, Diagonal::Plain);
/// assert!(matches!(err, Err(Error::NonPositiveDiagonal { what: "factor", index: 0, .. })));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Diagonal {
    /// Raw log-values: `Lᵢᵢ = exp(raw)` (a VAE encoder's output, the default). Any finite
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
    let (a, b) = if d.is_multiple_of(2) {
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

impl<T: Real> PackedTril<'_, T> {
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
                        return Err(Error::NonPositiveDiagonal {
                            what,
                            item: None,
                            index: i,
                            value: raw.to_f64(),
                        });
                    }
                    log_sum += raw.ln();
                    raw
                }
            };
        }
        Ok(log_sum)
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
            return Err(Error::NonPositiveDiagonal {
                what,
                item: None,
                index: i,
                value: v.to_f64(),
            });
        }
        log_sum += v.ln();
    }
    Ok(log_sum)
}
