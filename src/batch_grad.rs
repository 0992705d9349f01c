//! Batched full-rank KL gradients over contiguous slices (PyTorch's memory
//! layout: `n × d` means, `n × d(d+1)/2` packed factors), with broadcasting
//! and all pairs.
//!
//! | function | pairs | `kl.len()` |
//! |---|---|---|
//! | [`kl_grad_packed`] | `p[b]` vs `q[b]`; a side of one Gaussian broadcasts | `n` |
//! | [`kl_grad_all_pairs`] | every `p[i]` vs every `q[j]`, row-major | `n_p · n_q` |
//! | [`kl_std_normal_grad_packed`] | `p[b]` vs `N(0, I)` | `n` |
//!
//! ## Kernels
//! The pair functions run the lockstep SIMD kernel: one pair per SIMD lane
//! (16 `f32` with AVX-512, 8 with AVX2), the fused forward + backward pass
//! of [`full::kl_grad`](crate::full::kl_grad) in every lane at once. Its
//! results agree with a loop over `full::kl_grad` to rounding (it fuses
//! multiply-adds and multiplies by `1 / L_qᵢᵢ`), and do not depend on the
//! batch size or on a pair's position in it. [`Options`] (shared with
//! [`batch`](crate::batch)) picks the level, or [`Kernel::Scalar`]: a loop
//! over `full::kl_grad`, bit-identical to looping yourself. The other
//! kernels of `Kernel` all select the lockstep one, and the gradient layer
//! runs on one thread (`Options::parallel` does not apply). Nothing here
//! allocates: the caller passes the workspace.
//!
//! ## Broadcasting and accumulation
//! Each side (`p`, `q`) holds either `n` Gaussians or one, shared by every
//! pair. The gradient of a Gaussian that takes part in several pairs (a
//! broadcast side, or any Gaussian of [`kl_grad_all_pairs`]) is the sum of
//! its pairs' gradients, each weighted by its upstream, added in pair order:
//! what an autodiff framework expects for a broadcast argument. `upstream`
//! likewise holds one weight per pair, or one for all.

use crate::batch::{Kernel, Options};
use crate::error::{Error, check_len};
use crate::full::grad::{GradWork, kl_grad_split};
use crate::full::grad::{KlGrad, grad_workspace_len};
use crate::full::lanes::{Pairs, Side};
use crate::full::lanes_grad::{self, GradOut};
use crate::real::Real;
use crate::simd::SimdReal;
use crate::tril::{Diagonal, Layout, tril_len};
use crate::view::PackedTril;

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

    fn side(&self) -> Side<'a, T> {
        Side {
            means: self.means,
            tril: self.factors,
            layout: self.layout,
            diagonal: self.diagonal,
        }
    }
}

/// The gradient outputs of the pair functions: each slice has the shape of
/// the corresponding input (one row per Gaussian) and is overwritten.
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

/// Workspace length (in scalars) that [`kl_grad_packed`] and
/// [`kl_grad_all_pairs`] need for dimension `d`, whatever the options: the
/// larger of the scalar kernel's (the single-pair workspace and one pair's
/// gradients) and the lockstep kernel's (`0` for `d ≤ 16`, a block of
/// pairs above). Saturates at `usize::MAX`.
///
/// ```
/// use gaussian_kl::{batch_grad, full};
/// assert_eq!(batch_grad::workspace_len(3), full::grad_workspace_len(3) + 2 * (3 + 6));
/// ```
pub const fn workspace_len(d: usize) -> usize {
    let lanes = lanes_grad::work_len(d);
    let scalar = scalar_work_len(d);
    if lanes > scalar { lanes } else { scalar }
}

/// The scalar loop's workspace: one pair's, then its four gradients.
const fn scalar_work_len(d: usize) -> usize {
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

/// The number of Gaussians in a side of [`kl_grad_all_pairs`] (`d ≥ 1`).
fn count<T>(
    d: usize,
    t: usize,
    side: &GaussianBatch<'_, T>,
    names: [&'static str; 2],
) -> Result<usize, Error> {
    let n = side.means.len() / d;
    let too_large = Error::DimensionTooLarge { d };
    check_len(
        names[0],
        n.checked_mul(d).ok_or(too_large)?,
        side.means.len(),
    )?;
    check_len(
        names[1],
        n.checked_mul(t).ok_or(too_large)?,
        side.factors.len(),
    )?;
    Ok(n)
}

/// Checks the plain diagonal entries of a side (`index` = Gaussian · d + row).
fn check_diagonal<T: Real>(
    d: usize,
    t: usize,
    side: &GaussianBatch<'_, T>,
    what: &'static str,
) -> Result<(), Error> {
    if side.diagonal == Diagonal::Log || d == 0 {
        return Ok(());
    }
    for (g, f) in side.factors.chunks_exact(t).enumerate() {
        for i in 0..d {
            if f[side.layout.index(d, i, i)] <= T::ZERO {
                return Err(Error::NonPositiveDiagonal {
                    what,
                    item: Some(g),
                    index: i,
                    value: f[side.layout.index(d, i, i)].to_f64(),
                });
            }
        }
    }
    Ok(())
}

/// `KL(p_b‖q_b)` and `upstream_b · ∇KL(p_b‖q_b)` for every pair `b` of a
/// batch, with broadcasting (see the [module docs](self)), by the lockstep
/// SIMD kernel at the best level the host has.
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
/// [`Error::WorkspaceTooSmall`]; [`Error::NonPositiveDiagonal`]
/// (`p.factors` or `q.factors`, `index` = Gaussian · `d` + row) for a plain
/// diagonal entry `≤ 0`. On error the outputs are left untouched.
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
pub fn kl_grad_packed<T: SimdReal>(
    d: usize,
    p: GaussianBatch<'_, T>,
    q: GaussianBatch<'_, T>,
    upstream: &[T],
    kl: &mut [T],
    grad: BatchGrad<'_, T>,
    work: &mut [T],
) -> Result<(), Error> {
    Options::new().kl_grad_packed(d, p, q, upstream, kl, grad, work)
}

/// `KL(p_i‖q_j)` and `upstream_ij · ∇KL(p_i‖q_j)` for every pair of `n_p`
/// Gaussians `p` and `n_q` Gaussians `q`, by the lockstep SIMD kernel at the
/// best level the host has: the gradient of a training loss built on the
/// `n_p × n_q` KL matrix.
///
/// - `kl` (length `n_p · n_q`) receives the matrix, row-major:
///   `kl[i · n_q + j] = KL(p_i‖q_j)`.
/// - `upstream` holds `n_p · n_q` weights `∂loss/∂KL_ij` (same order), or one.
/// - `grad.means_p` and `grad.factors_p` receive `Σ_j upstream_ij ∇_{p_i}KL`,
///   `grad.means_q` and `grad.factors_q` receive `Σ_i upstream_ij ∇_{q_j}KL`,
///   each shaped as its input.
/// - `work` must hold at least [`workspace_len`]`(d)` scalars.
///
/// With `d = 0` the counts cannot be read from the (empty) slices: `kl` is
/// filled with `0` whatever its length.
///
/// # Errors
/// As [`kl_grad_packed`], with `kl` required to be `n_p · n_q` long.
///
/// ```
/// use gaussian_kl::batch_grad::{self, BatchGrad, GaussianBatch};
/// // Two 1-d Gaussians N(0, 1), N(1, 1) (raw log diagonal 0) against themselves.
/// let (means, raw) = ([0.0f64, 1.0], [0.0f64, 0.0]);
/// let g = GaussianBatch::new(&means, &raw);
/// let mut kl = [0.0; 4];
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
/// let mut work = vec![0.0; batch_grad::workspace_len(1)];
/// let out = BatchGrad { means_p: &mut g_mp, factors_p: &mut g_lp, means_q: &mut g_mq, factors_q: &mut g_lq };
/// batch_grad::kl_grad_all_pairs(1, g, g, &[1.0], &mut kl, out, &mut work)?;
/// assert_eq!(kl, [0.0, 0.5, 0.5, 0.0]);
/// // ∂/∂μ_p0 = Σ_j (μ_p0 − μ_qj) = (0 − 0) + (0 − 1).
/// assert_eq!(g_mp, [-1.0, 1.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_all_pairs<T: SimdReal>(
    d: usize,
    p: GaussianBatch<'_, T>,
    q: GaussianBatch<'_, T>,
    upstream: &[T],
    kl: &mut [T],
    grad: BatchGrad<'_, T>,
    work: &mut [T],
) -> Result<(), Error> {
    Options::new().kl_grad_all_pairs(d, p, q, upstream, kl, grad, work)
}

impl Options {
    /// [`kl_grad_packed`] with these options (level; [`Kernel::Scalar`] for
    /// the scalar loop).
    ///
    /// # Errors
    /// As [`kl_grad_packed`].
    #[allow(clippy::too_many_arguments)] // the batch, its outputs, its workspace
    pub fn kl_grad_packed<T: SimdReal>(
        &self,
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
        let pairs = Pairs::Zip {
            base: 0,
            step_p: usize::from(!bp),
            step_q: usize::from(!bq),
        };
        self.grad_pairs(d, t, p, q, pairs, upstream, kl, grad, work)
    }

    /// [`kl_grad_all_pairs`] with these options (level; [`Kernel::Scalar`]
    /// for the scalar loop).
    ///
    /// # Errors
    /// As [`kl_grad_all_pairs`].
    #[allow(clippy::too_many_arguments)] // the batch, its outputs, its workspace
    pub fn kl_grad_all_pairs<T: SimdReal>(
        &self,
        d: usize,
        p: GaussianBatch<'_, T>,
        q: GaussianBatch<'_, T>,
        upstream: &[T],
        kl: &mut [T],
        grad: BatchGrad<'_, T>,
        work: &mut [T],
    ) -> Result<(), Error> {
        let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
        if d == 0 {
            check_len("p.means", 0, p.means.len())?;
            check_len("p.factors", 0, p.factors.len())?;
            check_len("q.means", 0, q.means.len())?;
            check_len("q.factors", 0, q.factors.len())?;
            check_grad_lens(&p, &q, &grad)?;
            kl.fill(T::ZERO);
            return Ok(());
        }
        let np = count(d, t, &p, ["p.means", "p.factors"])?;
        let nq = count(d, t, &q, ["q.means", "q.factors"])?;
        let n = np.checked_mul(nq).ok_or(Error::DimensionTooLarge { d })?;
        check_len("kl", n, kl.len())?;
        self.grad_pairs(
            d,
            t,
            p,
            q,
            Pairs::All { base: 0, n_q: nq },
            upstream,
            kl,
            grad,
            work,
        )
    }

    /// The common part: the remaining checks, then the kernel.
    #[allow(clippy::too_many_arguments)] // internal: the pieces of one call
    fn grad_pairs<T: SimdReal>(
        &self,
        d: usize,
        t: usize,
        p: GaussianBatch<'_, T>,
        q: GaussianBatch<'_, T>,
        pairs: Pairs,
        upstream: &[T],
        kl: &mut [T],
        grad: BatchGrad<'_, T>,
        work: &mut [T],
    ) -> Result<(), Error> {
        let n = kl.len();
        if upstream.len() != 1 {
            check_len("upstream", n, upstream.len())?;
        }
        check_grad_lens(&p, &q, &grad)?;
        let need = workspace_len(d);
        if work.len() < need {
            return Err(Error::WorkspaceTooSmall {
                expected: need,
                found: work.len(),
            });
        }
        check_diagonal(d, t, &p, "p.factors")?;
        check_diagonal(d, t, &q, "q.factors")?;
        let BatchGrad {
            means_p,
            factors_p,
            means_q,
            factors_q,
        } = grad;
        let (level, kernel) = self.level_and_kernel();
        let simd = kernel != Kernel::Scalar && level.is_available();
        // Each Gaussian in exactly one pair: the SIMD kernel writes its
        // gradients instead of adding them into zeroed outputs.
        let overwrite = simd
            && matches!(
                pairs,
                Pairs::Zip {
                    step_p: 1,
                    step_q: 1,
                    ..
                }
            );
        if !overwrite {
            for g in [
                &mut *means_p,
                &mut *factors_p,
                &mut *means_q,
                &mut *factors_q,
            ] {
                g.fill(T::ZERO);
            }
        }
        if d == 0 {
            kl.fill(T::ZERO);
            return Ok(());
        }
        let mut out = GradOut {
            kl,
            upstream,
            means_p,
            factors_p,
            means_q,
            factors_q,
            overwrite,
        };
        let (ps, qs) = (p.side(), q.side());
        if simd && lanes_grad::kl_grad_lanes(level, d, ps, qs, pairs, out.reborrow(), work) {
            return Ok(());
        }
        scalar_loop(d, t, p, q, pairs, out, work)
    }
}

/// The four gradient slices have the shapes of their inputs.
fn check_grad_lens<T>(
    p: &GaussianBatch<'_, T>,
    q: &GaussianBatch<'_, T>,
    grad: &BatchGrad<'_, T>,
) -> Result<(), Error> {
    check_len("grad.means_p", p.means.len(), grad.means_p.len())?;
    check_len("grad.factors_p", p.factors.len(), grad.factors_p.len())?;
    check_len("grad.means_q", q.means.len(), grad.means_q.len())?;
    check_len("grad.factors_q", q.factors.len(), grad.factors_q.len())
}

/// One [`full::kl_grad`](crate::full::kl_grad) per pair, each pair's
/// gradients added into its Gaussians' rows (zeroed by the caller).
fn scalar_loop<T: Real>(
    d: usize,
    t: usize,
    p: GaussianBatch<'_, T>,
    q: GaussianBatch<'_, T>,
    pairs: Pairs,
    out: GradOut<'_, T>,
    work: &mut [T],
) -> Result<(), Error> {
    let (pair_work, scratch) = work[..scalar_work_len(d)].split_at_mut(grad_workspace_len(d));
    let (s_mp, rest) = scratch.split_at_mut(d);
    let (s_lp, rest) = rest.split_at_mut(t);
    let (s_mq, s_lq) = rest.split_at_mut(d);
    let mut wk = GradWork::split(d, pair_work)?;
    let shared = out.upstream.len() == 1;
    for (b, kl_b) in out.kl.iter_mut().enumerate() {
        let (ip, iq) = pairs.get(b);
        let mut g = KlGrad::new(&mut *s_mp, &mut *s_lp, &mut *s_mq, &mut *s_lq);
        *kl_b = kl_grad_split(
            &p.means[ip * d..(ip + 1) * d],
            factor(&p, d, t, ip),
            &q.means[iq * d..(iq + 1) * d],
            factor(&q, d, t, iq),
            out.upstream[if shared { 0 } else { b }],
            &mut g,
            &mut wk,
        )?;
        accumulate(&mut out.means_p[ip * d..(ip + 1) * d], s_mp);
        accumulate(&mut out.factors_p[ip * t..(ip + 1) * t], s_lp);
        accumulate(&mut out.means_q[iq * d..(iq + 1) * d], s_mq);
        accumulate(&mut out.factors_q[iq * t..(iq + 1) * t], s_lq);
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
        *kl_b = crate::full::grad::kl_std_normal_grad_packed(
            &p.means[b * d..(b + 1) * d],
            factor(&p, d, t, b),
            upstream[if shared_upstream { 0 } else { b }],
            &mut grad_means[b * d..(b + 1) * d],
            &mut grad_factors[b * t..(b + 1) * t],
        )?;
    }
    Ok(())
}
