//! Fixed-dimension kernels: `const D`, everything on the stack, loops the
//! compiler unrolls completely for small `D`.

use super::scalar::finish;
use crate::error::Error;
use crate::real::Real;
use crate::tril::Diagonal;
use crate::view::PackedTril;

/// `KL(p‖q)` for compile-time dimension `D` with dense row-major
/// lower-triangular factors (`factor[i][j]`, `j ≤ i`; the upper triangle is
/// ignored) with a plain positive diagonal. Same arithmetic, in the same
/// order, as [`kl`](super::kl): the results are bit-identical.
///
/// # Errors
/// [`Error::NonPositiveDiagonal`] (`"factor_p"`, `"factor_q"`) if a
/// diagonal entry is `≤ 0`.
///
/// ```
/// use gaussian_kl::full::kl_fixed;
/// let l = [[1.0f64, 0.0], [0.5, 2.0]];
/// let kl = kl_fixed(&[0.0, 0.0], &l, &[0.0, 1.0], &l)?;
/// assert!((kl - 0.125).abs() < 1e-15); // y = L⁻¹(0, 1) = (0, ½)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_fixed<T: Real, const D: usize>(
    mean_p: &[T; D],
    factor_p: &[[T; D]; D],
    mean_q: &[T; D],
    factor_q: &[[T; D]; D],
) -> Result<T, Error> {
    let log_q = log_diag("factor_q", factor_q)?;
    let log_p = log_diag("factor_p", factor_p)?;
    Ok(kl_fixed_unchecked(
        mean_p,
        factor_p,
        mean_q,
        factor_q,
        log_p - log_q,
    ))
}

/// `KL(p‖q)` for compile-time dimension `D` from packed factors in any
/// layout and diagonal encoding (expanded onto the stack first).
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"factor_p"`, `"factor_q"`) if a factor's
/// `d` is not `D`.
///
/// ```
/// use gaussian_kl::{full, Gaussian, PackedTril};
/// let (mu_p, raw_p) = ([0.1f32, -0.3], [0.2, 0.5, -0.1]);
/// let (mu_q, raw_q) = ([0.0f32, 0.4], [0.0, -0.2, 0.3]);
/// let (l_p, l_q) = (PackedTril::new(2, &raw_p)?, PackedTril::new(2, &raw_q)?);
/// let fixed = full::kl_packed_fixed::<f32, 2>(&mu_p, l_p, &mu_q, l_q)?;
/// let mut work = [0.0; full::kl_scratch(2)];
/// let runtime = full::kl(&Gaussian::new(&mu_p, l_p)?, &Gaussian::new(&mu_q, l_q)?, &mut work)?;
/// assert_eq!(fixed, runtime);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_packed_fixed<T: Real, const D: usize>(
    mean_p: &[T; D],
    factor_p: PackedTril<'_, T>,
    mean_q: &[T; D],
    factor_q: PackedTril<'_, T>,
) -> Result<T, Error> {
    let (a_q, log_q) = expand("factor_q", &factor_q)?;
    let (a_p, log_p) = expand("factor_p", &factor_p)?;
    Ok(kl_fixed_unchecked(
        mean_p,
        &a_p,
        mean_q,
        &a_q,
        log_p - log_q,
    ))
}

fn log_diag<T: Real, const D: usize>(what: &'static str, l: &[[T; D]; D]) -> Result<T, Error> {
    let mut s = T::ZERO;
    for (i, row) in l.iter().enumerate() {
        if row[i] <= T::ZERO {
            return Err(Error::NonPositiveDiagonal {
                what,
                item: None,
                index: i,
                value: row[i].to_f64(),
            });
        }
        s += row[i].ln();
    }
    Ok(s)
}

fn expand<T: Real, const D: usize>(
    what: &'static str,
    l: &PackedTril<'_, T>,
) -> Result<([[T; D]; D], T), Error> {
    if l.d != D {
        return Err(Error::DimensionMismatch {
            what,
            expected: D,
            found: l.d,
        });
    }
    l.check(what)?;
    let mut a = [[T::ZERO; D]; D];
    let mut log_sum = T::ZERO;
    for (i, row) in a.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate().take(i) {
            *v = l.data[l.layout.index(D, i, j)];
        }
        let raw = l.data[l.layout.index(D, i, i)];
        row[i] = match l.diagonal {
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
    Ok((a, log_sum))
}

/// The stack kernel: the operation order of `scalar::kl_unpacked`.
#[inline(always)]
fn kl_fixed_unchecked<T: Real, const D: usize>(
    mean_p: &[T; D],
    l_p: &[[T; D]; D],
    mean_q: &[T; D],
    l_q: &[[T; D]; D],
    log_det_diff: T,
) -> T {
    let mut y = [T::ZERO; D];
    let mut y_sq = T::ZERO;
    for i in 0..D {
        let mut s = mean_q[i] - mean_p[i];
        for k in 0..i {
            s -= l_q[i][k] * y[k];
        }
        let v = s / l_q[i][i];
        y[i] = v;
        y_sq += v * v;
    }
    let mut m = *l_p;
    let mut m_sq = T::ZERO;
    for i in 0..D {
        for j in 0..=i {
            let mut s = m[i][j];
            for k in j..i {
                s -= l_q[i][k] * m[k][j];
            }
            let v = s / l_q[i][i];
            m[i][j] = v;
            m_sq += v * v;
        }
    }
    finish(D, y_sq, m_sq, log_det_diff)
}
