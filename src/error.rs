//! The crate's one error type.

use core::fmt;

/// Everything a checked entry point of the crate can reject.
///
/// Every variant names what was expected and what was found (or the offending
/// index), so that a shape bug can be fixed from the message alone.
///
/// ```
/// use gaussian_kl::{full, Error, PackedTril};
/// let mut work = [0.0f64; 16];
/// let l = [0.0f64; 3]; // d = 2 needs 3 packed numbers
/// let err = full::kl(&[0.0; 2], PackedTril::new(2, &l), &[0.0; 3], PackedTril::new(2, &l), &mut work)
///     .unwrap_err();
/// assert_eq!(err, Error::LengthMismatch { what: "mean_q", expected: 2, found: 3 });
/// assert_eq!(err.to_string(), "mean_q: expected length 2, found 3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A slice does not have the length the dimension calls for.
    LengthMismatch {
        /// Which argument.
        what: &'static str,
        /// The length the other arguments imply.
        expected: usize,
        /// The length passed.
        found: usize,
    },
    /// Two arguments disagree on the dimension `d`.
    DimensionMismatch {
        /// Which argument.
        what: &'static str,
        /// The dimension of the first argument.
        expected: usize,
        /// The dimension of this argument.
        found: usize,
    },
    /// The caller's workspace is shorter than the kernel needs.
    WorkspaceTooSmall {
        /// The length needed (see `full::workspace_len`).
        expected: usize,
        /// The length passed.
        found: usize,
    },
    /// The dimension is so large that its buffer sizes overflow `usize`.
    DimensionTooLarge {
        /// The dimension asked for.
        d: usize,
    },
    /// A diagonal entry given as a plain value (not a log) is zero or negative.
    NonPositiveDiagonal {
        /// Which argument.
        what: &'static str,
        /// The row (and column) of the entry.
        index: usize,
    },
    /// A variance (diagonal Gaussian) is zero or negative.
    NonPositiveVariance {
        /// Which argument.
        what: &'static str,
        /// The flat index of the entry in its slice.
        index: usize,
    },
    /// A covariance matrix is not positive definite: the Cholesky pivot at
    /// this row was zero, negative or NaN.
    NotPositiveDefinite {
        /// Which argument.
        what: &'static str,
        /// The row whose pivot failed.
        pivot: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::LengthMismatch {
                what,
                expected,
                found,
            } => {
                write!(f, "{what}: expected length {expected}, found {found}")
            }
            Error::DimensionMismatch {
                what,
                expected,
                found,
            } => {
                write!(f, "{what}: expected dimension {expected}, found {found}")
            }
            Error::WorkspaceTooSmall { expected, found } => {
                write!(
                    f,
                    "workspace: expected length at least {expected}, found {found}"
                )
            }
            Error::DimensionTooLarge { d } => {
                write!(f, "dimension {d} is too large: buffer sizes overflow usize")
            }
            Error::NonPositiveDiagonal { what, index } => {
                write!(f, "{what}: diagonal entry {index} is not positive")
            }
            Error::NonPositiveVariance { what, index } => {
                write!(f, "{what}: variance at index {index} is not positive")
            }
            Error::NotPositiveDefinite { what, pivot } => {
                write!(
                    f,
                    "{what}: not positive definite (Cholesky pivot {pivot} is not positive)"
                )
            }
        }
    }
}

impl core::error::Error for Error {}

/// Checks that `found == expected`, naming `what` otherwise.
#[inline]
pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            found,
        })
    }
}
