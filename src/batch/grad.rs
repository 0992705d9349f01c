//! The gradient operations: [`kl_grad`] and [`kl_std_normal_grad`].

use super::full::log_diag_sum;
use super::{Op, Pairing, Pairs, check_out_work, pairing, plan_run, side};
use crate::error::{Error, check_len};
use crate::exec::{Exec, Kernel};
use crate::full::blocked_grad;
use crate::full::grad::{GradWork, KlGrad, kl_grad_split};
use crate::full::lanes::{self, Side};
use crate::full::lanes_grad::{self, GradOut};
use crate::full::scalar::finish;
use crate::real::Real;
use crate::tril::Diagonal;
use crate::view::{Gaussians, GradMut, Grads, Mode, PackedTril, row_len};

/// The scratch (in scalars) that [`kl_grad`] needs for dimension `d` under
/// `exec`.
///
/// # Errors
/// [`Error::LevelUnavailable`]; [`Error::Unsupported`] for `Par::Rayon`;
/// [`Error::DimensionTooLarge`].
///
/// ```
/// use gaussian_kl::{batch, Exec, Kernel};
/// assert_eq!(batch::kl_grad_scratch::<f32>(8, &Exec::new())?, 0); // on the stack
/// // The scalar kernel: one pair's workspace and its four gradients.
/// assert_eq!(batch::kl_grad_scratch::<f64>(3, &Exec::new().kernel(Kernel::Scalar))?, 45);
/// // The blocked kernel: one pair's matrices (the default above d = 64 for `f32` with AVX-512).
/// assert!(batch::kl_grad_scratch::<f64>(3, &Exec::new().kernel(Kernel::Blocked))? > 0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_scratch<T: Real>(d: usize, exec: &Exec) -> Result<usize, Error> {
    plan_run::<T>(Op::KlGrad, d, exec)?.total(d)
}

/// Checks the four gradient buffers against the shapes of their inputs.
fn check_grads<T>(
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
    grad: &Grads<GradMut<'_, T>>,
) -> Result<(), Error> {
    check_len("grad.p.mean", p.means.len(), grad.p.mean.len())?;
    check_len("grad.p.factor", p.factors.len(), grad.p.factor.len())?;
    check_len("grad.q.mean", q.means.len(), grad.q.mean.len())?;
    check_len("grad.q.factor", q.factors.len(), grad.q.factor.len())
}

/// `KL(p‖q)` and `upstream · ∇KL` for every pair of a batch (see [`Pairs`]).
///
/// - `out[k]` receives pair `k`'s KL (not scaled by `upstream`).
/// - `upstream[k]` is `∂loss/∂out[k]` (`upstream.len() == out.len()`).
/// - `grad.p` and `grad.q` are shaped as `p` and `q` (means, then factors in
///   their own layout, a log diagonal differentiated with respect to its raw
///   value). A Gaussian in several pairs (a broadcast side of
///   [`Pairs::Zip`], every Gaussian of [`Pairs::All`]) receives the sum of
///   its pairs' gradients; [`Mode::Overwrite`] replaces the buffer's contents
///   with that sum, [`Mode::Accumulate`] adds it.
/// - `work` holds at least [`kl_grad_scratch`]`(d, exec)` scalars.
///
/// # Errors
/// As [`kl`](super::kl), plus [`Error::LengthMismatch`] naming
/// `"upstream"`, `"grad.p.mean"`, `"grad.p.factor"`, `"grad.q.mean"` or
/// `"grad.q.factor"`, and [`Error::Unsupported`] for `Par::Rayon`. On error every output is untouched.
///
/// ```
/// use gaussian_kl::{batch, Exec, Gaussians, GradMut, Grads, Mode};
/// // Three posteriors against one shared q (d = 2): q's gradient is summed.
/// let p = Gaussians::new(3, 2, &[0.1, -0.3, 0.5, 0.2, -0.4, 0.0],
///     &[0.2, 0.5, -0.1, 0.0, 0.1, 0.3, -0.2, 0.0, 0.1])?;
/// let q = Gaussians::new(1, 2, &[0.0, 0.4], &[0.0, -0.2, 0.3])?;
/// let exec = Exec::new();
/// let mut work = vec![0.0; batch::kl_grad_scratch::<f64>(2, &exec)?];
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 6], [0.0; 9], [0.0; 2], [0.0; 3]);
/// let mut out = [0.0f64; 3];
/// let grad = Grads::new(GradMut::new(&mut g_mp, &mut g_lp), GradMut::new(&mut g_mq, &mut g_lq));
/// batch::kl_grad(&p, batch::Pairs::Zip(&q), &[1.0; 3], &mut out, grad, &exec, &mut work)?;
/// // ∂/∂μ_q summed over the batch = −Σ_k ∂/∂μ_p[k].
/// assert!((g_mq[0] + g_mp[0] + g_mp[2] + g_mp[4]).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad<T: Real>(
    p: &Gaussians<'_, T>,
    q: Pairs<'_, T>,
    upstream: &[T],
    out: &mut [T],
    grad: Grads<GradMut<'_, T>>,
    exec: &Exec,
    work: &mut [T],
) -> Result<(), Error> {
    let pairing = pairing(p, q)?;
    let (d, g) = (p.d, q.gaussians());
    let run = plan_run::<T>(Op::KlGrad, d, exec)?;
    check_len("upstream", pairing.n, upstream.len())?;
    check_grads(p, g, &grad)?;
    let work = check_out_work(&run, d, pairing.n, out, work)?;
    // Everything is checked: from here on the outputs are written.
    let Grads {
        p: mut gp,
        q: mut gq,
    } = grad;
    let simd = run.kernel != Kernel::Scalar;
    let overwrite =
        simd && pairing.one_to_one && gp.mode == Mode::Overwrite && gq.mode == Mode::Overwrite;
    for gr in [&mut gp, &mut gq] {
        if gr.mode == Mode::Overwrite && !overwrite {
            gr.mean.fill(T::ZERO);
            gr.factor.fill(T::ZERO);
        }
    }
    if d == 0 || pairing.n == 0 {
        out.fill(T::ZERO);
        return Ok(());
    }
    let mut dst = GradOut {
        kl: out,
        upstream,
        means_p: gp.mean,
        factors_p: gp.factor,
        means_q: gq.mean,
        factors_q: gq.factor,
        overwrite,
    };
    let (ps, qs) = (side(p), side(g));
    let done = match run.kernel {
        Kernel::Lanes => {
            lanes_grad::kl_grad_lanes(run.level, d, ps, qs, pairing.map, dst.reborrow(), work)
        }
        Kernel::Blocked => {
            blocked_grad::kl_grad_blocked(run.level, d, ps, qs, pairing.map, dst.reborrow(), work)
        }
        _ => false,
    };
    if done {
        return Ok(());
    }
    grad_scalar(d, ps, qs, pairing, dst, work);
    Ok(())
}

/// A packed factor of a side.
#[inline]
fn factor<'a, T>(s: &Side<'a, T>, d: usize, k: usize) -> PackedTril<'a, T> {
    let t = row_len(d);
    PackedTril {
        d,
        data: &s.tril[k * t..(k + 1) * t],
        layout: s.layout,
        diagonal: s.diagonal,
    }
}

#[inline]
fn add_into<T: Real>(acc: &mut [T], x: &[T]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// The scalar kernel, pair by pair: each pair's gradients are computed into
/// the workspace and added into its Gaussians' rows (the caller zeroed the
/// rows of an overwritten side).
fn grad_scalar<T: Real>(
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairing: Pairing,
    out: GradOut<'_, T>,
    work: &mut [T],
) {
    let t = row_len(d);
    let (pair_work, scratch) = work.split_at_mut(3 * (t + d));
    let (s_mp, rest) = scratch.split_at_mut(d);
    let (s_lp, rest) = rest.split_at_mut(t);
    let (s_mq, rest) = rest.split_at_mut(d);
    let s_lq = &mut rest[..t];
    let Ok(mut wk) = GradWork::split(d, pair_work) else {
        return; // cannot happen: the scratch holds it
    };
    let map: lanes::Pairs = pairing.map;
    for (k, kl_k) in out.kl.iter_mut().enumerate() {
        let (ip, iq) = map.get(k);
        let mut g = KlGrad::new(&mut *s_mp, &mut *s_lp, &mut *s_mq, &mut *s_lq);
        let r = kl_grad_split(
            &p.means[ip * d..(ip + 1) * d],
            factor(&p, d, ip),
            &q.means[iq * d..(iq + 1) * d],
            factor(&q, d, iq),
            out.upstream[k],
            &mut g,
            &mut wk,
        );
        // The views validated every plain diagonal: the pair cannot fail.
        *kl_k = r.unwrap_or(T::NAN);
        add_into(&mut out.means_p[ip * d..(ip + 1) * d], s_mp);
        add_into(&mut out.factors_p[ip * t..(ip + 1) * t], s_lp);
        add_into(&mut out.means_q[iq * d..(iq + 1) * d], s_mq);
        add_into(&mut out.factors_q[iq * t..(iq + 1) * t], s_lq);
    }
}

/// The scratch (in scalars) that [`kl_std_normal_grad`] needs: `0`.
///
/// # Errors
/// [`Error::LevelUnavailable`]; [`Error::Unsupported`] for a kernel other
/// than `Auto` or `Scalar`, or for `Par::Rayon`; [`Error::DimensionTooLarge`].
///
/// ```
/// use gaussian_kl::{batch, Exec};
/// assert_eq!(batch::kl_std_normal_grad_scratch::<f64>(5, &Exec::new())?, 0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad_scratch<T: Real>(d: usize, exec: &Exec) -> Result<usize, Error> {
    plan_run::<T>(Op::KlStdNormalGrad, d, exec)?.total(d)
}

/// `KL(p[k]‖N(0, I))` and `upstream[k] · ∇KL` for every Gaussian of a batch
/// (the VAE prior term): `∂/∂μ = μ`, `∂/∂L = L − diag(1/Lᵢᵢ)`, on a log
/// diagonal `Lᵢᵢ² − 1` with respect to the raw value. `out.len() ==
/// upstream.len() == p.len()`; `grad` is shaped as `p`, overwritten or
/// accumulated ([`Mode`]). The KL is bit-identical to [`kl_std_normal`](super::kl_std_normal).
///
/// # Errors
/// [`Error::LengthMismatch`] naming `"out"`, `"upstream"`, `"grad.mean"` or
/// `"grad.factor"`; [`Error::WorkspaceTooSmall`]; [`Error::LevelUnavailable`];
/// [`Error::Unsupported`] for `Lanes`, `Blocked` or `Par::Rayon`. On error
/// every output is untouched.
///
/// ```
/// use gaussian_kl::{batch, Exec, Gaussians, GradMut};
/// let p = Gaussians::new(2, 2, &[0.5f64, -1.0, 0.0, 0.0], &[0.1, 0.3, -0.2, 0.0, 0.0, 0.0])?;
/// let (mut g_mu, mut g_l) = ([0.0; 4], [0.0; 6]);
/// let mut out = [0.0; 2];
/// let grad = GradMut::new(&mut g_mu, &mut g_l);
/// batch::kl_std_normal_grad(&p, &[1.0, 1.0], &mut out, grad, &Exec::new(), &mut [])?;
/// assert_eq!(out[1], 0.0); // the second one is N(0, I) itself
/// assert_eq!(g_mu[..2], [0.5, -1.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad<T: Real>(
    p: &Gaussians<'_, T>,
    upstream: &[T],
    out: &mut [T],
    grad: GradMut<'_, T>,
    exec: &Exec,
    work: &mut [T],
) -> Result<(), Error> {
    let d = p.d;
    let run = plan_run::<T>(Op::KlStdNormalGrad, d, exec)?;
    check_len("upstream", p.n, upstream.len())?;
    check_len("grad.mean", p.means.len(), grad.mean.len())?;
    check_len("grad.factor", p.factors.len(), grad.factor.len())?;
    check_out_work(&run, d, p.n, out, work)?;
    let ps = side(p);
    let t = row_len(d);
    let acc = grad.mode == Mode::Accumulate;
    for (k, o) in out.iter_mut().enumerate() {
        let dst = (
            &mut grad.mean[k * d..(k + 1) * d],
            &mut grad.factor[k * t..(k + 1) * t],
        );
        let mean = &ps.means[k * d..(k + 1) * d];
        *o = std_normal_grad_one(factor(&ps, d, k), mean, upstream[k], dst, acc);
    }
    Ok(())
}

/// Writes (or adds) `v` into `slot`.
#[inline(always)]
fn put<T: Real>(slot: &mut T, v: T, acc: bool) {
    if acc { *slot += v } else { *slot = v }
}

/// One Gaussian of [`kl_std_normal_grad`]: the arithmetic of the
/// single-Gaussian kernel, in the same order.
fn std_normal_grad_one<T: Real>(
    l: PackedTril<'_, T>,
    mean: &[T],
    g: T,
    (grad_mean, grad_l): (&mut [T], &mut [T]),
    acc: bool,
) -> T {
    let d = l.d;
    let log = l.diagonal == Diagonal::Log;
    let log_sum = log_diag_sum(&l);
    let mut mu_sq = T::ZERO;
    for (gm, &v) in grad_mean.iter_mut().zip(&mean[..d]) {
        mu_sq += v * v;
        put(gm, g * v, acc);
    }
    let mut l_sq = T::ZERO;
    for i in 0..d {
        for j in 0..i {
            let at = l.layout.index(d, i, j);
            let v = l.data[at];
            l_sq += v * v;
            put(&mut grad_l[at], g * v, acc);
        }
        let at = l.layout.index(d, i, i);
        let raw = l.data[at];
        let v = if log { raw.exp() } else { raw };
        l_sq += v * v;
        let gd = if log {
            g * (v * v - T::ONE)
        } else {
            g * (v - T::ONE / v)
        };
        put(&mut grad_l[at], gd, acc);
    }
    finish(d, mu_sq, l_sq, log_sum)
}
