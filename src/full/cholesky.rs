//! In-place Cholesky factorization, `no_std`, no allocation.

use crate::error::{Error, check_len};
use crate::real::Real;
use crate::tril::{row_start, tril_len};

/// Factors a symmetric positive-definite `Σ` (row-major packed lower
/// triangle, `d(d+1)/2` numbers) in place into its Cholesky factor `L`
/// (`Σ = L Lᵀ`, same packed form).
///
/// Row-by-row (Cholesky–Banachiewicz) with dot products:
/// `Lᵢⱼ = (Σᵢⱼ − Σ_{k<j} Lᵢₖ Lⱼₖ) / Lⱼⱼ`, `Lᵢᵢ = √(Σᵢᵢ − Σ_{k<i} Lᵢₖ²)`.
///
/// # Errors
/// [`Error::NotPositiveDefinite`] with the first row whose pivot
/// `Σᵢᵢ − Σ_{k<i} Lᵢₖ²` is zero, negative or NaN (the rows before it are
/// factored, the rest of `a` is unspecified); [`Error::LengthMismatch`] if
/// `a.len() != d(d+1)/2`.
///
/// ```
/// use gaussian_kl::full::cholesky_packed_in_place;
/// // Σ = [[4, 2], [2, 10]] = L Lᵀ with L = [[2, 0], [1, 3]]
/// let mut a = [4.0f64, 2.0, 10.0];
/// cholesky_packed_in_place(2, &mut a).unwrap();
/// assert_eq!(a, [2.0, 1.0, 3.0]);
/// let mut bad = [1.0f64, 2.0, 1.0];
/// assert!(cholesky_packed_in_place(2, &mut bad).is_err());
/// ```
pub fn cholesky_packed_in_place<T: Real>(d: usize, a: &mut [T]) -> Result<(), Error> {
    let n = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    check_len("a", n, a.len())?;
    factor_packed("a", d, a)
}

/// Factors a dense row-major `d × d` symmetric positive-definite matrix in
/// place: its lower triangle is read (the upper is ignored, as LAPACK's
/// `'L'`) and overwritten by `L`; the strict upper triangle is set to zero.
///
/// # Errors
/// As [`cholesky_packed_in_place`], with `a.len() != d²`.
///
/// ```
/// use gaussian_kl::full::cholesky_in_place;
/// let mut a = [4.0f64, 99.0, 2.0, 10.0]; // 99 is above the diagonal: ignored
/// cholesky_in_place(2, &mut a).unwrap();
/// assert_eq!(a, [2.0, 0.0, 1.0, 3.0]);
/// ```
pub fn cholesky_in_place<T: Real>(d: usize, a: &mut [T]) -> Result<(), Error> {
    let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
    check_len("a", n, a.len())?;
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            if j < i {
                a[i * d + j] = s / a[j * d + j];
            } else {
                if s <= T::ZERO || s.is_nan() {
                    return Err(Error::NotPositiveDefinite {
                        what: "a",
                        pivot: i,
                    });
                }
                a[i * d + i] = s.sqrt();
            }
        }
        for v in &mut a[i * d + i + 1..(i + 1) * d] {
            *v = T::ZERO;
        }
    }
    Ok(())
}

/// The packed factorization, shapes already checked.
pub(crate) fn factor_packed<T: Real>(
    what: &'static str,
    d: usize,
    a: &mut [T],
) -> Result<(), Error> {
    for i in 0..d {
        let ri = row_start(i);
        for j in 0..=i {
            let rj = row_start(j);
            let mut s = a[ri + j];
            for k in 0..j {
                s -= a[ri + k] * a[rj + k];
            }
            if j < i {
                a[ri + j] = s / a[rj + j];
            } else {
                if s <= T::ZERO || s.is_nan() {
                    return Err(Error::NotPositiveDefinite { what, pivot: i });
                }
                a[ri + i] = s.sqrt();
            }
        }
    }
    Ok(())
}
