//! Batched full-rank KL gradients over contiguous slices (PyTorch's memory
//! layout: `n × d` means, `n × d(d+1)/2` packed factors), with broadcasting.
//!
//! Each pair is computed by the single-pair kernel
//! [`full::kl_grad`](crate::full::kl_grad) in a loop, so a batch gives
//! bit-for-bit the results of looping over it yourself; the batch layer adds
//! shape checks, broadcasting and the accumulation of a shared argument's
//! gradient. It never allocates: the caller passes the workspace.
//!
//! ## Broadcasting
//! The batch size `n` is `kl.len()`. Each side (`p`, `q`) holds either `n`
//! Gaussians or one, shared by every pair. The gradient of a shared side is
//! the sum over the batch of the per-pair gradients (each weighted by its
//! upstream), which is what an autodiff framework expects for a broadcast
//! argument. `upstream` likewise holds `n` weights or one.

use crate::error::{Error, check_len};
use crate::full::grad::{GradWork, kl_grad_split};
use crate::full::{KlGrad, grad_workspace_len};
use crate::real::Real;
use crate::tril::{Diagonal, Layout, PackedTril, tril_len};

/// A batch of Gaussians with packed factors: `means` is `count × d`,
/// `factors` is `count × d(d+1)/2`, every factor in the same layout and
/// diagonal encoding. `count` is the batch size `n` or `1` (broadcast).
#[derive(Clone, Copy, Debug)]
pub struct GaussianBatch<'a, T> {
    /// The means, one row of `d` per Gaussian.
    pub means: &'a [T],
    /// The packed factors, one row of `d(d+1)/2` per Gaussian.
    pub factors: &'a [T],
    /// The layout of every packed factor.
    pub layout: Layout,
    /// The diagonal encoding of every packed factor.
    pub diagonal: Diagonal,
}

impl<'a, T> GaussianBatch<'a, T> {
    /// Row-major (PyTorch) factors with a raw log diagonal (seed 000's form).
    pub const fn new(means: &'a [T], factors: &'a [T]) -> Self {
        GaussianBatch {
            means,
            factors,
            layout: Layout::RowMajor,
            diagonal: Diagonal::Log,
        }
    }

    /// The same numbers read in another layout.
    pub const fn layout(self, layout: Layout) -> Self {
        GaussianBatch { layout, ..self }
    }

    /// The same numbers with another diagonal encoding.
    pub const fn diagonal(self, diagonal: Diagonal) -> Self {
        GaussianBatch { diagonal, ..self }
    }
}

/// The gradient outputs of [`kl_grad_packed`]: each slice has the shape of
/// the corresponding input (`n` rows, or one row for a broadcast side) and
/// is overwritten.
#[derive(Debug)]
pub struct BatchGrad<'a, T> {
    /// `∂/∂μ_p`, shaped as `p.means`.
    pub means_p: &'a mut [T],
    /// `∂/∂L_p`, shaped as `p.factors` (same layout and diagonal encoding).
    pub factors_p: &'a mut [T],
    /// `∂/∂μ_q`, shaped as `q.means`.
    pub means_q: &'a mut [T],
    /// `∂/∂L_q`, shaped as `q.factors`.
    pub factors_q: &'a mut [T],
}

/// Workspace length (in scalars) that [`kl_grad_packed`] needs for
/// dimension `d`: the single-pair workspace plus room to accumulate the
/// gradients of up to two broadcast sides. Saturates at `usize::MAX`.
///
/// ```
/// use gaussian_kl::{batch_grad, full};
/// assert_eq!(batch_grad::workspace_len(3), full::grad_workspace_len(3) + 2 * (3 + 6));
/// ```
pub const fn workspace_len(d: usize) -> usize {
    let per_side = match tril_len(d) {
        Some(t) => t.saturating_add(d),
        None => usize::MAX,
    };
    grad_workspace_len(d).saturating_add(per_side.saturating_mul(2))
}

/// How many Gaussians a side holds: `n` or `1` (broadcast).
fn side_count<T>(
    d: usize,
    t: usize,
    n: usize,
    side: &GaussianBatch<'_, T>,
    names: [&'static str; 2],
) -> Result<bool, Error> {
    let too_large = Error::DimensionTooLarge { d };
    let nd = n.checked_mul(d).ok_or(too_large)?;
    let nt = n.checked_mul(t).ok_or(too_large)?;
    let broadcast = side.means.len() != nd && side.means.len() == d;
    if broadcast {
        check_len(names[1], t, side.factors.len())?;
    } else {
        check_len(names[0], nd, side.means.len())?;
        check_len(names[1], nt, side.factors.len())?;
    }
    Ok(broadcast)
}

/// `KL(p_b‖q_b)` and `upstream_b · ∇KL(p_b‖q_b)` for every pair `b` of a
/// batch, with broadcasting (see the [module docs](self)).
///
/// - `kl` (length `n`, the batch size) receives the KL values, unweighted.
/// - `upstream` holds `n` weights `∂loss/∂KL_b`, or one weight for all.
/// - `grad` receives the gradients, each shaped as its input; a broadcast
///   side's gradient is summed over the batch.
/// - `work` must hold at least [`workspace_len`]`(d)` scalars.
///
/// # Errors
/// [`Error::LengthMismatch`] naming the offending slice (`p.means`,
/// `p.factors`, `q.means`, `q.factors`, `upstream`, `grad.means_p`, …);
/// [`Error::WorkspaceTooSmall`]; [`Error::NonPositiveDiagonal`] (`l_p` or
/// `l_q`) for a plain diagonal entry `≤ 0`, in which case the outputs of
/// earlier pairs are written and the rest unspecified.
///
/// ```
/// use gaussian_kl::batch_grad::{self, BatchGrad, GaussianBatch};
/// // Three posteriors p_b against one shared prior q (d = 2).
/// let means_p = [0.1, -0.3, 0.5, 0.2, -0.4, 0.0];
/// let raw_p = [0.2, 0.5, -0.1, 0.0, 0.1, 0.3, -0.2, 0.0, 0.1];
/// let (mean_q, raw_q) = ([0.0, 0.4], [0.0, -0.2, 0.3]);
/// let mut kl = [0.0f64; 3];
/// let (mut g_mp, mut g_lp) = ([0.0; 6], [0.0; 9]);
/// let (mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 3]); // one q: its gradient is summed
/// let mut work = vec![0.0; batch_grad::workspace_len(2)];
/// batch_grad::kl_grad_packed(
///     2,
///     GaussianBatch::new(&means_p, &raw_p),
///     GaussianBatch::new(&mean_q, &raw_q),
///     &[1.0],
///     &mut kl,
///     BatchGrad { means_p: &mut g_mp, factors_p: &mut g_lp, means_q: &mut g_mq, factors_q: &mut g_lq },
///     &mut work,
/// )?;
/// // ∂/∂μ_q summed over the batch = −Σ_b ∂/∂μ_p_b.
/// let s0 = -(g_mp[0] + g_mp[2] + g_mp[4]);
/// assert!((g_mq[0] - s0).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_packed<T: Real>(
    d: usize,
    p: GaussianBatch<'_, T>,
    q: GaussianBatch<'_, T>,
    upstream: &[T],
    kl: &mut [T],
    grad: BatchGrad<'_, T>,
    work: &mut [T],
) -> Result<(), Error> {
    let n = kl.len();
    let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    let bp = side_count(d, t, n, &p, ["p.means", "p.factors"])?;
    let bq = side_count(d, t, n, &q, ["q.means", "q.factors"])?;
    let shared_upstream = upstream.len() != n && upstream.len() == 1;
    if !shared_upstream {
        check_len("upstream", n, upstream.len())?;
    }
    check_len("grad.means_p", p.means.len(), grad.means_p.len())?;
    check_len("grad.factors_p", p.factors.len(), grad.factors_p.len())?;
    check_len("grad.means_q", q.means.len(), grad.means_q.len())?;
    check_len("grad.factors_q", q.factors.len(), grad.factors_q.len())?;
    let need = workspace_len(d);
    if work.len() < need {
        return Err(Error::WorkspaceTooSmall {
            expected: need,
            found: work.len(),
        });
    }
    let (pair_work, scratch) = work[..need].split_at_mut(grad_workspace_len(d));
    let (s_mp, rest) = scratch.split_at_mut(d);
    let (s_lp, rest) = rest.split_at_mut(t);
    let (s_mq, s_lq) = rest.split_at_mut(d);
    let mut wk = GradWork::split(d, pair_work)?;

    let BatchGrad {
        means_p: g_mp,
        factors_p: g_lp,
        means_q: g_mq,
        factors_q: g_lq,
    } = grad;
    if bp {
        g_mp.fill(T::ZERO);
        g_lp.fill(T::ZERO);
    }
    if bq {
        g_mq.fill(T::ZERO);
        g_lq.fill(T::ZERO);
    }
    let row = |b: usize, shared: bool| if shared { 0 } else { b };
    for (b, kl_b) in kl.iter_mut().enumerate() {
        let (ip, iq) = (row(b, bp), row(b, bq));
        let mut out = KlGrad {
            mean_p: if bp {
                &mut *s_mp
            } else {
                &mut g_mp[ip * d..(ip + 1) * d]
            },
            l_p: if bp {
                &mut *s_lp
            } else {
                &mut g_lp[ip * t..(ip + 1) * t]
            },
            mean_q: if bq {
                &mut *s_mq
            } else {
                &mut g_mq[iq * d..(iq + 1) * d]
            },
            l_q: if bq {
                &mut *s_lq
            } else {
                &mut g_lq[iq * t..(iq + 1) * t]
            },
        };
        *kl_b = kl_grad_split(
            &p.means[ip * d..(ip + 1) * d],
            factor(&p, d, t, ip),
            &q.means[iq * d..(iq + 1) * d],
            factor(&q, d, t, iq),
            upstream[row(b, shared_upstream)],
            &mut out,
            &mut wk,
        )?;
        if bp {
            accumulate(g_mp, s_mp);
            accumulate(g_lp, s_lp);
        }
        if bq {
            accumulate(g_mq, s_mq);
            accumulate(g_lq, s_lq);
        }
    }
    Ok(())
}

/// Gaussian `i`'s factor.
#[inline]
fn factor<'a, T: Real>(
    side: &GaussianBatch<'a, T>,
    d: usize,
    t: usize,
    i: usize,
) -> PackedTril<'a, T> {
    PackedTril {
        d,
        data: &side.factors[i * t..(i + 1) * t],
        layout: side.layout,
        diagonal: side.diagonal,
    }
}

#[inline]
fn accumulate<T: Real>(acc: &mut [T], x: &[T]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// `KL(p_b‖N(0, I))` and `upstream_b · ∇KL` for every Gaussian of a batch
/// (the VAE prior path): `p.means` is `n × d`, `p.factors` `n × d(d+1)/2`,
/// `n = kl.len()`; `upstream` holds `n` weights or one. `grad_means` and
/// `grad_factors` are shaped as `p.means` and `p.factors`. Each Gaussian is
/// computed by [`full::kl_std_normal_grad`](crate::full::kl_std_normal_grad),
/// so the results are bit-identical to a loop over it. No workspace.
///
/// # Errors
/// [`Error::LengthMismatch`] naming the offending slice;
/// [`Error::NonPositiveDiagonal`] for a plain diagonal entry `≤ 0`.
///
/// ```
/// use gaussian_kl::batch_grad::{self, GaussianBatch};
/// let (means, raw) = ([0.5f64, -1.0, 0.0, 0.0], [0.1, 0.3, -0.2, 0.0, 0.0, 0.0]);
/// let mut kl = [0.0; 2];
/// let (mut g_mu, mut g_l) = ([0.0; 4], [0.0; 6]);
/// batch_grad::kl_std_normal_grad_packed(
///     2, GaussianBatch::new(&means, &raw), &[1.0], &mut kl, &mut g_mu, &mut g_l)?;
/// assert_eq!(kl[1], 0.0); // the second one is N(0, I) itself
/// assert_eq!(g_mu[..2], [0.5, -1.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad_packed<T: Real>(
    d: usize,
    p: GaussianBatch<'_, T>,
    upstream: &[T],
    kl: &mut [T],
    grad_means: &mut [T],
    grad_factors: &mut [T],
) -> Result<(), Error> {
    let n = kl.len();
    let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    let too_large = Error::DimensionTooLarge { d };
    check_len("p.means", n.checked_mul(d).ok_or(too_large)?, p.means.len())?;
    check_len(
        "p.factors",
        n.checked_mul(t).ok_or(too_large)?,
        p.factors.len(),
    )?;
    let shared_upstream = upstream.len() != n && upstream.len() == 1;
    if !shared_upstream {
        check_len("upstream", n, upstream.len())?;
    }
    check_len("grad_means", p.means.len(), grad_means.len())?;
    check_len("grad_factors", p.factors.len(), grad_factors.len())?;
    for (b, kl_b) in kl.iter_mut().enumerate() {
        *kl_b = crate::full::kl_std_normal_grad(
            &p.means[b * d..(b + 1) * d],
            factor(&p, d, t, b),
            upstream[if shared_upstream { 0 } else { b }],
            &mut grad_means[b * d..(b + 1) * d],
            &mut grad_factors[b * t..(b + 1) * t],
        )?;
    }
    Ok(())
}
