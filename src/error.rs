//! The crate's one error type.

use core::fmt;

use crate::simd::Level;

/// Everything a checked entry point of the crate can reject.
///
/// Every variant names the argument the caller got wrong (`what`), with what
/// was expected and what was found, and for a batch the index of the
/// Gaussian, so that a shape bug can be fixed from the message alone. The
/// views ([`PackedTril`](crate::PackedTril), [`Gaussian`](crate::Gaussian),
/// [`Gaussians`](crate::Gaussians), …) check their own shapes when they are
/// built; an operation checks only how its arguments fit together.
///
/// ```
/// use gaussian_kl::{Error, Gaussian};
/// // d = 2 (from the mean) needs 3 packed numbers
/// let err = Gaussian::packed(&[0.0f64; 2], &[0.0; 2]).unwrap_err();
/// assert_eq!(err, Error::LengthMismatch { what: "factor", expected: 3, found: 2 });
/// assert_eq!(err.to_string(), "factor: expected length 3, found 2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
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
        /// The dimension the first argument set.
        expected: usize,
        /// The dimension of this argument.
        found: usize,
    },
    /// Two batches have sizes that neither agree nor broadcast (a batch of
    /// one broadcasts against any size).
    BatchMismatch {
        /// Which argument.
        what: &'static str,
        /// The batch size the first argument set.
        expected: usize,
        /// The batch size of this argument.
        found: usize,
    },
    /// The caller's workspace is shorter than the operation needs.
    WorkspaceTooSmall {
        /// The length needed (the operation's `*_scratch` function).
        expected: usize,
        /// The length passed.
        found: usize,
    },
    /// The dimension (or batch) is so large that a buffer size overflows `usize`.
    DimensionTooLarge {
        /// The dimension asked for.
        d: usize,
    },
    /// A diagonal entry of a factor given as a plain value (not a log) is
    /// zero or negative.
    NonPositiveDiagonal {
        /// Which argument.
        what: &'static str,
        /// The Gaussian's index in its batch (`None` for a single Gaussian).
        item: Option<usize>,
        /// The row (and column) of the entry.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A variance of a diagonal Gaussian is zero or negative.
    NonPositiveVariance {
        /// Which argument.
        what: &'static str,
        /// The Gaussian's index in its batch (`None` for a single Gaussian).
        item: Option<usize>,
        /// The coordinate.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A covariance matrix is not positive definite: the Cholesky pivot at
    /// this row was zero, negative or NaN.
    NotPositiveDefinite {
        /// Which argument.
        what: &'static str,
        /// The row whose pivot failed.
        pivot: usize,
    },
    /// A SIMD level was forced that this CPU (or this build) cannot run.
    LevelUnavailable {
        /// The level asked for.
        level: Level,
    },
    /// A setting of the execution policy does not apply to this operation
    /// (for example a kernel the operation does not have).
    Unsupported {
        /// The setting.
        what: &'static str,
        /// Why it does not apply.
        why: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::LengthMismatch {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected length {expected}, found {found}"),
            Error::DimensionMismatch {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected dimension {expected}, found {found}"),
            Error::BatchMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: expected a batch of {expected} (or 1, which broadcasts), found {found}"
            ),
            Error::WorkspaceTooSmall { expected, found } => write!(
                f,
                "work: expected length at least {expected}, found {found}"
            ),
            Error::DimensionTooLarge { d } => {
                write!(f, "dimension {d} is too large: buffer sizes overflow usize")
            }
            Error::NonPositiveDiagonal {
                what,
                item,
                index,
                value,
            } => not_positive(f, what, item, "diagonal entry", index, value),
            Error::NonPositiveVariance {
                what,
                item,
                index,
                value,
            } => not_positive(f, what, item, "variance", index, value),
            Error::NotPositiveDefinite { what, pivot } => write!(
                f,
                "{what}: not positive definite (Cholesky pivot {pivot} is not positive)"
            ),
            Error::LevelUnavailable { level } => {
                write!(f, "level: {level:?} is not available on this CPU or build")
            }
            Error::Unsupported { what, why } => write!(f, "{what}: {why}"),
        }
    }
}

/// `what: [Gaussian k, ]entry index is value, not positive`.
fn not_positive(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    item: Option<usize>,
    entry: &str,
    index: usize,
    value: f64,
) -> fmt::Result {
    write!(f, "{what}: ")?;
    if let Some(k) = item {
        write!(f, "Gaussian {k}, ")?;
    }
    write!(f, "{entry} {index} is {value:?}, not positive")
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

/// Checks that a workspace of `found` scalars holds the `expected` ones.
#[inline]
pub(crate) fn check_work(expected: usize, found: usize) -> Result<(), Error> {
    if found >= expected {
        Ok(())
    } else {
        Err(Error::WorkspaceTooSmall { expected, found })
    }
}
