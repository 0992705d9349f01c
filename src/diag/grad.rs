//! Gradients (vector-Jacobian products) of `KL(p‖q)` and of the Eq. 10 score
//! with respect to the means and spreads of both sides.
//!
//! With `δ = μ_p − μ_q` and `r = (σ²_p + δ²)/σ²_q`, per dimension:
//!
//! | | `KL(p‖q)` | Eq. 10 score |
//! |---|---|---|
//! | `∂/∂μ_p = −∂/∂μ_q` | `δ/σ²_q` | `−2δ/σ²_q` |
//! | `∂/∂σ²_p` | `½(1/σ²_q − 1/σ²_p)` | `−1/σ²_q` |
//! | `∂/∂σ²_q` | `½(1 − r)/σ²_q` | `−(1 − r)/σ²_q` |
//! | `∂/∂ log σ²_p` | `½(σ²_p/σ²_q − 1)` | `−σ²_p/σ²_q` |
//! | `∂/∂ log σ²_q` | `½(1 − r)` | `−(1 − r)` |

use super::pairwise::{check_all_pairs, eq10_pair, kl_pair, row};
use super::{Scale, check_dim, over_var, var_of};
use crate::error::{Error, check_len};
use crate::real::Real;
use crate::view::{DiagGaussian, DiagGaussians, DiagGradMut, Grads, Mode};

/// Which value to differentiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Kl,
    Eq10,
}

/// `(∂/∂μ_p, ∂/∂s_p, ∂/∂s_q)` of one dimension (`∂/∂μ_q = −∂/∂μ_p`), from
/// `p = (μ_p, s_p)` and `q = (μ_q, s_q)` in the scales `scales = (p, q)`.
#[inline(always)]
fn elem<T: Real>(value: Value, scales: (Scale, Scale), p: (T, T), q: (T, T)) -> [T; 3] {
    let (sp_scale, sq_scale) = scales;
    let ((mp, sp), (mq, sq)) = (p, q);
    let vp = var_of(sp_scale, sp);
    let inv_q = over_var(sq_scale, T::ONE, sq);
    let delta = mp - mq;
    let r = over_var(sq_scale, vp + delta * delta, sq);
    // KL first; Eq. 10 = −(2 KL + d + Σ log σ²_p).
    let gm = delta * inv_q;
    let gp = match (value, sp_scale) {
        (Value::Kl, Scale::Var) => T::HALF * (inv_q - T::ONE / vp),
        (Value::Kl, Scale::LogVar) => T::HALF * (vp * inv_q - T::ONE),
        (Value::Eq10, Scale::Var) => -inv_q,
        (Value::Eq10, Scale::LogVar) => -(vp * inv_q),
    };
    let one_minus_r = T::ONE - r;
    let gq = match sq_scale {
        Scale::Var => one_minus_r * inv_q,
        Scale::LogVar => one_minus_r,
    };
    match value {
        Value::Kl => [gm, gp, T::HALF * gq],
        Value::Eq10 => [-(gm + gm), gp, -gq],
    }
}

/// Checks the two buffers of one side: `len` values each.
fn check_side<T>(
    g: &DiagGradMut<'_, T>,
    len: usize,
    names: [&'static str; 2],
) -> Result<(), Error> {
    check_len(names[0], len, g.mean.len())?;
    check_len(names[1], len, g.spread.len())
}

const P_NAMES: [&str; 2] = ["grad.p.mean", "grad.p.spread"];
const Q_NAMES: [&str; 2] = ["grad.q.mean", "grad.q.spread"];

/// Writes (or adds, per the side's [`Mode`]) `x` into `slot`.
#[inline(always)]
fn put<T: Real>(mode: Mode, slot: &mut T, x: T) {
    match mode {
        Mode::Overwrite => *slot = x,
        Mode::Accumulate => *slot += x,
    }
}

/// The shared single-pair driver.
fn pair_grad<T: Real>(
    value: Value,
    p: &DiagGaussian<'_, T>,
    q: &DiagGaussian<'_, T>,
    upstream: T,
    grad: Grads<DiagGradMut<'_, T>>,
) -> Result<T, Error> {
    let d = p.dim();
    check_dim("q", d, q.dim())?;
    let Grads { p: gp, q: gq } = grad;
    check_side(&gp, d, P_NAMES)?;
    check_side(&gq, d, Q_NAMES)?;
    let scales = (p.scale, q.scale);
    for i in 0..d {
        let [m, sp, sq] = elem(
            value,
            scales,
            (p.mean[i], p.spread[i]),
            (q.mean[i], q.spread[i]),
        );
        put(gp.mode, &mut gp.mean[i], upstream * m);
        put(gp.mode, &mut gp.spread[i], upstream * sp);
        put(gq.mode, &mut gq.mean[i], -(upstream * m));
        put(gq.mode, &mut gq.spread[i], upstream * sq);
    }
    Ok(match value {
        Value::Kl => kl_pair(p, q),
        Value::Eq10 => eq10_pair(p, q),
    })
}

/// `KL(p‖q)` and its gradient times `upstream` (`∂L/∂KL`): `grad.p` gets
/// `upstream · ∂KL/∂p`, `grad.q` gets `upstream · ∂KL/∂q`, each overwritten
/// or accumulated per its [`Mode`]. Returns the KL.
///
/// Each buffer has `d` entries; a spread's gradient is taken in its own
/// [`Scale`] (`∂/∂σ²` or `∂/∂ log σ²`). With `δ = μ_p − μ_q`,
/// `r = (σ²_p + δ²)/σ²_q`:
///
/// | | `∂KL/∂·` |
/// |---|---|
/// | `μ_p` (`μ_q`: the negative) | `δ/σ²_q` |
/// | `σ²_p` / `log σ²_p` | `½(1/σ²_q − 1/σ²_p)` / `½(σ²_p/σ²_q − 1)` |
/// | `σ²_q` / `log σ²_q` | `½(1 − r)/σ²_q` / `½(1 − r)` |
///
/// A batch of zipped pairs `(p_i, q_i)` is a loop over
/// [`DiagGaussians::get`](crate::DiagGaussians::get) with row slices of the
/// gradient buffers (see the example).
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`); [`Error::LengthMismatch`]
/// (`"grad.p.mean"`, `"grad.p.spread"`, `"grad.q.mean"`, `"grad.q.spread"`,
/// expected `d`). Nothing is written on error.
///
/// ```
/// use gaussian_kl::{DiagGaussian, DiagGaussians, DiagGradMut, Grads, Mode, diag};
/// let p = DiagGaussian::var(&[0.5f64], &[2.0])?;
/// let q = DiagGaussian::var(&[0.0], &[1.0])?;
/// let (mut pm, mut ps, mut qm, mut qs) = ([0.0], [0.0], [0.0], [0.0]);
/// let grad = Grads::new(DiagGradMut::new(&mut pm, &mut ps), DiagGradMut::new(&mut qm, &mut qs));
/// let kl = diag::kl_grad(&p, &q, 1.0, grad)?;
/// assert_eq!(kl, diag::kl(&p, &q)?);
/// assert_eq!((pm[0], qm[0]), (0.5, -0.5)); // δ/σ²_q
/// assert_eq!(ps[0], 0.25); // ½(1/σ²_q − 1/σ²_p)
///
/// // zipped pairs (p_i, q_i), gradients summed into one q (Mode::Accumulate)
/// let ps_ = DiagGaussians::var(2, 1, &[0.5, 1.0], &[2.0, 1.0])?;
/// let (mut gpm, mut gps, mut gqm, mut gqs) = ([0.0; 2], [0.0; 2], [0.0], [0.0]);
/// for i in 0..ps_.len() {
///     let grad = Grads::new(
///         DiagGradMut::new(&mut gpm[i..i + 1], &mut gps[i..i + 1]),
///         DiagGradMut::new(&mut gqm, &mut gqs).mode(Mode::Accumulate),
///     );
///     diag::kl_grad(&ps_.get(i).unwrap(), &q, 1.0, grad)?;
/// }
/// assert_eq!(gqm[0], -(0.5 + 1.0));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad<T: Real>(
    p: &DiagGaussian<'_, T>,
    q: &DiagGaussian<'_, T>,
    upstream: T,
    grad: Grads<DiagGradMut<'_, T>>,
) -> Result<T, Error> {
    pair_grad(Value::Kl, p, q, upstream, grad)
}

/// The Eq. 10 score (`p` the query, `q` the document) and its gradient times
/// `upstream`; returns the score. With `δ = μ_p − μ_q`,
/// `r = (σ²_p + δ²)/σ²_q`:
///
/// | | `∂eq10/∂·` |
/// |---|---|
/// | `μ_p` (`μ_q`: the negative) | `−2δ/σ²_q` |
/// | `σ²_p` / `log σ²_p` | `−1/σ²_q` / `−σ²_p/σ²_q` |
/// | `σ²_q` / `log σ²_q` | `−(1 − r)/σ²_q` / `−(1 − r)` |
///
/// # Errors
/// As [`kl_grad`].
///
/// ```
/// use gaussian_kl::{DiagGaussian, DiagGradMut, Grads, diag};
/// let p = DiagGaussian::var(&[0.5f64], &[2.0])?;
/// let q = DiagGaussian::var(&[0.0], &[1.0])?;
/// let (mut pm, mut ps, mut qm, mut qs) = ([0.0], [0.0], [0.0], [0.0]);
/// let grad = Grads::new(DiagGradMut::new(&mut pm, &mut ps), DiagGradMut::new(&mut qm, &mut qs));
/// let s = diag::eq10_grad(&p, &q, 2.0, grad)?;
/// assert_eq!(s, diag::eq10(&p, &q)?);
/// assert_eq!((pm[0], ps[0]), (2.0 * -1.0, 2.0 * -1.0));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn eq10_grad<T: Real>(
    p: &DiagGaussian<'_, T>,
    q: &DiagGaussian<'_, T>,
    upstream: T,
    grad: Grads<DiagGradMut<'_, T>>,
) -> Result<T, Error> {
    pair_grad(Value::Eq10, p, q, upstream, grad)
}

/// `KL(p ‖ N(0, I))` and its gradient times `upstream` into `grad` (`d`
/// entries each; `∂/∂μ = μ`, `∂/∂σ² = ½(1 − 1/σ²)`,
/// `∂/∂ log σ² = ½(σ² − 1)`). Returns the KL.
///
/// As for [`kl_std_normal`](super::kl_std_normal), a batch of posteriors is
/// one call on the flat `n · d` arrays.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"grad.mean"`, `"grad.spread"`, expected `d`).
///
/// ```
/// use gaussian_kl::{DiagGaussian, DiagGradMut, diag};
/// let p = DiagGaussian::log_var(&[1.0f64, -2.0], &[0.0, 0.0])?;
/// let (mut gm, mut gs) = ([0.0; 2], [0.0; 2]);
/// let kl = diag::kl_std_normal_grad(&p, 1.0, DiagGradMut::new(&mut gm, &mut gs))?;
/// assert_eq!(kl, 2.5);
/// assert_eq!((gm, gs), ([1.0, -2.0], [0.0, 0.0]));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad<T: Real>(
    p: &DiagGaussian<'_, T>,
    upstream: T,
    grad: DiagGradMut<'_, T>,
) -> Result<T, Error> {
    check_side(&grad, p.dim(), ["grad.mean", "grad.spread"])?;
    let mode = grad.mode;
    for i in 0..p.dim() {
        let (m, s) = (p.mean[i], p.spread[i]);
        let gs = match p.scale {
            Scale::Var => T::HALF * (T::ONE - T::ONE / s),
            Scale::LogVar => T::HALF * (s.exp() - T::ONE),
        };
        put(mode, &mut grad.mean[i], upstream * m);
        put(mode, &mut grad.spread[i], upstream * gs);
    }
    super::kl_std_normal(p)
}

/// The shared all-pairs driver.
fn all_pairs_grad<T: Real>(
    value: Value,
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    upstream: &[T],
    grad: Grads<DiagGradMut<'_, T>>,
) -> Result<(), Error> {
    check_all_pairs(p, q, "upstream", upstream.len())?;
    let (np, nq, d) = (p.n, q.n, p.d);
    let Grads { p: gp, q: gq } = grad;
    // n·d fits: the views hold that many numbers.
    check_side(&gp, np * d, P_NAMES)?;
    check_side(&gq, nq * d, Q_NAMES)?;
    for g in [&mut *gp.mean, &mut *gp.spread] {
        if gp.mode == Mode::Overwrite {
            g.fill(T::ZERO);
        }
    }
    for g in [&mut *gq.mean, &mut *gq.spread] {
        if gq.mode == Mode::Overwrite {
            g.fill(T::ZERO);
        }
    }
    let scales = (p.scale, q.scale);
    for i in 0..np {
        let pi = row(p, i);
        for j in 0..nq {
            let qj = row(q, j);
            let g = upstream[i * nq + j];
            for k in 0..d {
                let (a, b) = (i * d + k, j * d + k);
                let [m, sp, sq] = elem(
                    value,
                    scales,
                    (pi.mean[k], pi.spread[k]),
                    (qj.mean[k], qj.spread[k]),
                );
                gp.mean[a] += g * m;
                gp.spread[a] += g * sp;
                gq.mean[b] -= g * m;
                gq.spread[b] += g * sq;
            }
        }
    }
    Ok(())
}

/// Gradients through the all-pairs KL matrix: with `G = upstream`
/// (`∂L/∂KL`, `n_p × n_q`, row-major), `grad.p[i] = Σ_j G[i][j] ∂KL_ij/∂p_i`
/// (`n_p × d`) and `grad.q[j] = Σ_i G[i][j] ∂KL_ij/∂q_j` (`n_q × d`), each
/// side overwritten or accumulated per its [`Mode`]. The derivatives are
/// those of [`kl_grad`].
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`); [`Error::LengthMismatch`]
/// (`"upstream"`: `n_p · n_q`; `"grad.p.mean"`, `"grad.p.spread"`: `n_p · d`;
/// `"grad.q.mean"`, `"grad.q.spread"`: `n_q · d`). Nothing is written on error.
///
/// ```
/// use gaussian_kl::{DiagGaussians, DiagGradMut, Grads, diag};
/// let p = DiagGaussians::var(1, 1, &[0.5f64], &[2.0])?;
/// let q = DiagGaussians::var(2, 1, &[0.0, 1.0], &[1.0, 1.0])?;
/// let (mut pm, mut ps, mut qm, mut qs) = ([0.0], [0.0], [0.0; 2], [0.0; 2]);
/// let grad = Grads::new(DiagGradMut::new(&mut pm, &mut ps), DiagGradMut::new(&mut qm, &mut qs));
/// diag::kl_all_pairs_grad(&p, &q, &[1.0, 1.0], grad)?;
/// assert_eq!(pm[0], 0.5 + -0.5); // Σ_j δ_j/σ²_qj
/// assert_eq!(qm, [-0.5, 0.5]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_all_pairs_grad<T: Real>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    upstream: &[T],
    grad: Grads<DiagGradMut<'_, T>>,
) -> Result<(), Error> {
    all_pairs_grad(Value::Kl, p, q, upstream, grad)
}

/// Gradients through the all-pairs Eq. 10 matrix (`p` the queries, `q` the
/// documents), as [`kl_all_pairs_grad`] with the derivatives of
/// [`eq10_grad`].
///
/// # Errors
/// As [`kl_all_pairs_grad`].
///
/// ```
/// use gaussian_kl::{DiagGaussians, DiagGradMut, Grads, Mode, diag};
/// let p = DiagGaussians::var(1, 1, &[0.5f64], &[2.0])?;
/// let q = DiagGaussians::var(2, 1, &[0.0, 1.0], &[1.0, 1.0])?;
/// let (mut pm, mut ps, mut qm, mut qs) = ([10.0], [0.0], [0.0; 2], [0.0; 2]);
/// let grad = Grads::new(
///     DiagGradMut::new(&mut pm, &mut ps).mode(Mode::Accumulate),
///     DiagGradMut::new(&mut qm, &mut qs),
/// );
/// diag::eq10_all_pairs_grad(&p, &q, &[1.0, 0.0], grad)?;
/// assert_eq!(pm[0], 10.0 - 2.0 * 0.5); // accumulated: 10 + (−2δ/σ²_q)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn eq10_all_pairs_grad<T: Real>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    upstream: &[T],
    grad: Grads<DiagGradMut<'_, T>>,
) -> Result<(), Error> {
    all_pairs_grad(Value::Eq10, p, q, upstream, grad)
}
