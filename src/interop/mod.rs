//! Adapters from the numeric crates users already hold to the crate's views
//! (features `nalgebra`, `faer`, `ndarray`, off by default).
//!
//! Each adapter returns an ordinary view ([`Gaussian`](crate::Gaussian),
//! [`MatRef`](crate::MatRef), [`PackedTril`], [`Gaussians`](crate::Gaussians),
//! [`DiagGaussians`](crate::DiagGaussians), [`GradMut`](crate::GradMut), …)
//! that the ordinary operations (`full::kl`, `batch::kl`, `diag::kl_all_pairs`,
//! …) take. An adapter **borrows** the caller's memory when that memory is one
//! slice the crate can index with non-negative strides, and otherwise either
//! returns an [`Error`] saying what layout it needs or, in the functions that
//! take a `buf` argument, **copies** into that caller buffer (never an
//! allocation). A copy gives bit-identical results: every dense stride
//! pattern and the packed plain-diagonal form of the same factor reach the
//! same arithmetic in the same order.
//!
//! | module | feature | `no_std` |
//! |---|---|---|
//! | `nalgebra` | `nalgebra` | yes |
//! | `faer` | `faer` | yes (`alloc`) |
//! | `ndarray` | `ndarray` | yes (`alloc`) |
//!
//! Only the lower triangle of a factor is ever read, so the strict upper
//! triangle may hold anything (nalgebra's `Cholesky::l_dirty`, LAPACK's
//! `potrf` output). Layout errors use [`Error::Unsupported`] with the
//! argument's name in `what`; shape errors use the usual variants.
//!
//! ```
//! # #[cfg(feature = "nalgebra")] {
//! use gaussian_kl::{full, interop};
//! use nalgebra::{Matrix2, Vector2};
//! let (m, l) = (Vector2::new(0.5f64, -1.0), Matrix2::new(1.0, 0.0, 0.3, 2.0));
//! let p = interop::nalgebra::gaussian(&m, &l)?;
//! assert!(full::kl_std_normal(&p)? > 0.0);
//! # }
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

// Each helper below serves some of the three modules.
#![cfg_attr(
    not(all(feature = "nalgebra", feature = "faer", feature = "ndarray")),
    allow(dead_code)
)]

#[cfg(feature = "faer")]
pub mod faer;
#[cfg(feature = "nalgebra")]
pub mod nalgebra;
#[cfg(feature = "ndarray")]
pub mod ndarray;

use crate::error::Error;
use crate::real::Real;
use crate::tril::{Diagonal, Layout, tril_len};
use crate::view::PackedTril;

/// Why an array with gaps in memory cannot be borrowed.
#[cfg(feature = "ndarray")]
pub(crate) const GAPS: &str = "is not one contiguous block of memory (a sub-block or a stepped \
     slice): pass a contiguous array, or use the function that copies into a `buf`";

/// The dimension of a square `rows × cols` matrix.
pub(crate) fn square(what: &'static str, rows: usize, cols: usize) -> Result<usize, Error> {
    if rows == cols {
        Ok(rows)
    } else {
        Err(Error::DimensionMismatch {
            what,
            expected: rows,
            found: cols,
        })
    }
}

/// Renames the argument of a view constructor's error.
pub(crate) fn rename(what: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::LengthMismatch {
            expected, found, ..
        } => Error::LengthMismatch {
            what,
            expected,
            found,
        },
        Error::NonPositiveDiagonal {
            item, index, value, ..
        } => Error::NonPositiveDiagonal {
            what,
            item,
            index,
            value,
        },
        e => e,
    }
}

/// The first `need` numbers of the caller's `buf`.
fn take<T>(buf: &mut [T], need: usize) -> Result<&mut [T], Error> {
    let found = buf.len();
    buf.get_mut(..need).ok_or(Error::LengthMismatch {
        what: "buf",
        expected: need,
        found,
    })
}

/// Copies the lower triangle of a `d × d` matrix (entry `(i, j)` is
/// `get(i, j)`) into `buf` as a row-major packed factor with a plain
/// diagonal. Checks the diagonal (`> 0`) and `buf` before writing.
pub(crate) fn pack_lower<'a, T: Real>(
    what: &'static str,
    d: usize,
    get: impl Fn(usize, usize) -> T,
    buf: &'a mut [T],
) -> Result<PackedTril<'a, T>, Error> {
    let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    for i in 0..d {
        let v = get(i, i);
        if v <= T::ZERO {
            return Err(Error::NonPositiveDiagonal {
                what,
                item: None,
                index: i,
                value: v.to_f64(),
            });
        }
    }
    let out = take(buf, t)?;
    let mut k = 0;
    for i in 0..d {
        for j in 0..=i {
            out[k] = get(i, j);
            k += 1;
        }
    }
    PackedTril::with_layout(d, out, Layout::RowMajor, Diagonal::Plain).map_err(rename(what))
}

/// Copies a whole `d × d` matrix into `buf`, row-major.
#[cfg(any(feature = "faer", feature = "ndarray"))]
pub(crate) fn copy_dense<'a, T: Real>(
    what: &'static str,
    d: usize,
    get: impl Fn(usize, usize) -> T,
    buf: &'a mut [T],
) -> Result<crate::view::MatRef<'a, T>, Error> {
    let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
    let out = take(buf, n)?;
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = get(i, j);
        }
    }
    crate::view::MatRef::row_major(d, out).map_err(rename(what))
}
