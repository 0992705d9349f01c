//! Gradients (vector-Jacobian products) of `KL(Q‖D)` and of the Eq. 10 score
//! with respect to query and document means and spreads, for training loops.
//!
//! # Calling convention
//! - The gradient with respect to a spread is taken in the batch's own
//!   [`Scale`]: `∂/∂σ²` for [`Scale::Var`],
//!   `∂/∂ log σ²` for [`Scale::LogVar`].
//! - Outputs are **overwritten**, not accumulated into; shapes mirror the
//!   inputs (`n × k`, row-major). Add them to your own accumulators.
//! - The upstream gradient `g = ∂L/∂value` weights each pair: [`pairs_backward`]
//!   takes one per pair or one for all ([`Upstream`]); [`pairwise_backward`]
//!   takes the `nq × nd` matrix `∂L/∂value[i][j]` and sums over the pairs each
//!   Gaussian takes part in.
//!
//! With `δ = μ_Q − μ_D` and `r = (σ²_Q + δ²)/σ²_D`, per dimension:
//!
//! | | `KL(Q‖D)` | Eq. 10 score |
//! |---|---|---|
//! | `∂/∂μ_Q = −∂/∂μ_D` | `δ/σ²_D` | `−2δ/σ²_D` |
//! | `∂/∂σ²_Q` | `½(1/σ²_D − 1/σ²_Q)` | `−1/σ²_D` |
//! | `∂/∂σ²_D` | `½(1 − r)/σ²_D` | `−(1 − r)/σ²_D` |
//! | `∂/∂ log σ²_Q` | `½(σ²_Q/σ²_D − 1)` | `−σ²_Q/σ²_D` |
//! | `∂/∂ log σ²_D` | `½(1 − r)` | `−(1 − r)` |

use super::{DiagBatch, Scale, check_qd, over_var, var_of};
use crate::error::{Error, check_len};
use crate::real::Real;

/// Which value to differentiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Objective {
    /// `KL(Q‖D)`.
    Kl,
    /// The Eq. 10 score (larger is better).
    Eq10,
}

/// The upstream gradient of a batch of pairs.
#[derive(Clone, Copy, Debug)]
pub enum Upstream<'a, T> {
    /// One weight for every pair (`1` for the plain gradient).
    Scalar(T),
    /// One weight per pair (`n` of them).
    PerPair(&'a [T]),
}

/// Where the gradients of one batch go: `n × k` each, overwritten.
#[derive(Debug)]
pub struct GradOut<'a, T> {
    /// `∂L/∂μ`.
    pub mean: &'a mut [T],
    /// `∂L/∂σ²` or `∂L/∂ log σ²` (the batch's scale).
    pub spread: &'a mut [T],
}

impl<T> GradOut<'_, T> {
    fn check(&self, len: usize, names: [&'static str; 2]) -> Result<(), Error> {
        check_len(names[0], len, self.mean.len())?;
        check_len(names[1], len, self.spread.len())
    }
}

/// `(∂/∂μ_Q, ∂/∂s_Q, ∂/∂s_D)` of one dimension (`∂/∂μ_D = −∂/∂μ_Q`).
#[inline(always)]
fn elem<T: Real>(
    obj: Objective,
    sq_scale: Scale,
    sd_scale: Scale,
    mq: T,
    sq: T,
    md: T,
    sd: T,
) -> [T; 3] {
    let vq = var_of(sq_scale, sq);
    let inv_d = over_var(sd_scale, T::ONE, sd);
    let delta = mq - md;
    let r = over_var(sd_scale, vq + delta * delta, sd);
    // KL first; Eq. 10 = −(2 KL + k + Σ log σ²_Q).
    let gm = delta * inv_d;
    let gq = match (obj, sq_scale) {
        (Objective::Kl, Scale::Var) => T::HALF * (inv_d - T::ONE / vq),
        (Objective::Kl, Scale::LogVar) => T::HALF * (vq * inv_d - T::ONE),
        (Objective::Eq10, Scale::Var) => -inv_d,
        (Objective::Eq10, Scale::LogVar) => -(vq * inv_d),
    };
    let one_minus_r = T::ONE - r;
    let gd = match sd_scale {
        Scale::Var => one_minus_r * inv_d,
        Scale::LogVar => one_minus_r,
    };
    match obj {
        Objective::Kl => [gm, gq, T::HALF * gd],
        Objective::Eq10 => [-(gm + gm), gq, -gd],
    }
}

/// Gradients for a batch of `n` pairs `(Q_i, D_i)`: `∂(g_i · value_i)/∂Q_i`
/// into `grad_q` and `∂(g_i · value_i)/∂D_i` into `grad_d`.
///
/// # Errors
/// [`Error::LengthMismatch`] if the batches differ in `n` or a slice has the
/// wrong length; [`Error::DimensionMismatch`] if they differ in `k`;
/// [`Error::NonPositiveVariance`].
///
/// ```
/// use gaussian_kl::diag::{self, DiagBatch};
/// use gaussian_kl::diag::grad::{self, GradOut, Objective, Upstream};
/// let (mq, vq, md, vd) = ([0.5f64], [2.0], [0.0], [1.0]);
/// let (mut gqm, mut gqs, mut gdm, mut gds) = ([0.0], [0.0], [0.0], [0.0]);
/// grad::pairs_backward(
///     Objective::Kl,
///     DiagBatch::var(1, 1, &mq, &vq),
///     DiagBatch::var(1, 1, &md, &vd),
///     Upstream::Scalar(1.0),
///     GradOut { mean: &mut gqm, spread: &mut gqs },
///     GradOut { mean: &mut gdm, spread: &mut gds },
/// )?;
/// assert_eq!((gqm[0], gdm[0]), (0.5, -0.5)); // δ/σ²_D
/// assert_eq!(gqs[0], 0.25); // ½(1/σ²_D − 1/σ²_Q)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn pairs_backward<T: Real>(
    objective: Objective,
    queries: DiagBatch<'_, T>,
    docs: DiagBatch<'_, T>,
    upstream: Upstream<'_, T>,
    grad_q: GradOut<'_, T>,
    grad_d: GradOut<'_, T>,
) -> Result<(), Error> {
    check_qd(&queries, &docs)?;
    let (n, k) = (queries.n, queries.k);
    if docs.n != n {
        return Err(Error::LengthMismatch {
            what: "documents (pairs)",
            expected: n,
            found: docs.n,
        });
    }
    if let Upstream::PerPair(g) = upstream {
        check_len("upstream", n, g.len())?;
    }
    let len = n * k;
    grad_q.check(len, ["grad_q.mean", "grad_q.spread"])?;
    grad_d.check(len, ["grad_d.mean", "grad_d.spread"])?;
    for i in 0..n {
        let g = match upstream {
            Upstream::Scalar(g) => g,
            Upstream::PerPair(g) => g[i],
        };
        for p in i * k..(i + 1) * k {
            let [gm, gq, gd] = elem(
                objective,
                queries.scale,
                docs.scale,
                queries.mean[p],
                queries.spread[p],
                docs.mean[p],
                docs.spread[p],
            );
            grad_q.mean[p] = g * gm;
            grad_q.spread[p] = g * gq;
            grad_d.mean[p] = -(g * gm);
            grad_d.spread[p] = g * gd;
        }
    }
    Ok(())
}

/// Gradients through the all-pairs matrix: with `G = ∂L/∂value` (`nq × nd`,
/// row-major), `grad_q[i] = Σ_j G[i][j] ∂value_ij/∂Q_i` and
/// `grad_d[j] = Σ_i G[i][j] ∂value_ij/∂D_j`.
///
/// # Errors
/// As [`pairs_backward`], with `upstream` `nq · nd` long, `grad_q`
/// `nq × k` and `grad_d` `nd × k`.
///
/// ```
/// use gaussian_kl::diag::DiagBatch;
/// use gaussian_kl::diag::grad::{self, GradOut, Objective};
/// let (mq, vq) = ([0.5f64], [2.0]);
/// let (md, vd) = ([0.0f64, 1.0], [1.0, 1.0]);
/// let (mut gqm, mut gqs, mut gdm, mut gds) = ([0.0], [0.0], [0.0; 2], [0.0; 2]);
/// grad::pairwise_backward(
///     Objective::Kl,
///     DiagBatch::var(1, 1, &mq, &vq),
///     DiagBatch::var(2, 1, &md, &vd),
///     &[1.0, 1.0],
///     GradOut { mean: &mut gqm, spread: &mut gqs },
///     GradOut { mean: &mut gdm, spread: &mut gds },
/// )?;
/// assert_eq!(gqm[0], 0.5 + -0.5); // Σ_j δ_j/σ²_Dj
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn pairwise_backward<T: Real>(
    objective: Objective,
    queries: DiagBatch<'_, T>,
    docs: DiagBatch<'_, T>,
    upstream: &[T],
    grad_q: GradOut<'_, T>,
    grad_d: GradOut<'_, T>,
) -> Result<(), Error> {
    check_qd(&queries, &docs)?;
    let (nq, nd, k) = (queries.n, docs.n, queries.k);
    let pairs = nq
        .checked_mul(nd)
        .ok_or(Error::DimensionTooLarge { d: nd })?;
    check_len("upstream", pairs, upstream.len())?;
    grad_q.check(nq * k, ["grad_q.mean", "grad_q.spread"])?;
    grad_d.check(nd * k, ["grad_d.mean", "grad_d.spread"])?;
    grad_q.mean.fill(T::ZERO);
    grad_q.spread.fill(T::ZERO);
    grad_d.mean.fill(T::ZERO);
    grad_d.spread.fill(T::ZERO);
    for i in 0..nq {
        for j in 0..nd {
            let g = upstream[i * nd + j];
            for p in 0..k {
                let (a, b) = (i * k + p, j * k + p);
                let [gm, gq, gd] = elem(
                    objective,
                    queries.scale,
                    docs.scale,
                    queries.mean[a],
                    queries.spread[a],
                    docs.mean[b],
                    docs.spread[b],
                );
                grad_q.mean[a] += g * gm;
                grad_q.spread[a] += g * gq;
                grad_d.mean[b] -= g * gm;
                grad_d.spread[b] += g * gd;
            }
        }
    }
    Ok(())
}
