//! Closed-form gradients of the full-rank KL: one fused forward + backward
//! pass returns `KL(p‖q)` and its vector-Jacobian product with respect to
//! both means and both scale factors.
//!
//! With `L_q y = μ_q − μ_p`, `L_q M = L_p`, `z = L_q⁻ᵀ y` and `W = L_q⁻ᵀ M`:
//!
//! ```text
//! ∂KL/∂μ_p = −z                ∂KL/∂L_p = tril(W) − diag(1/L_pᵢᵢ)
//! ∂KL/∂μ_q =  z                ∂KL/∂L_q = −tril(z yᵀ + W Mᵀ) + diag(1/L_qᵢᵢ)
//! ```
//!
//! (`tril(W Mᵀ)` = `tril(L_q⁻ᵀ M Mᵀ)`.) Only the lower triangle of `W` is
//! needed: entry `(i, j)`, `j ≤ i`, of `W Mᵀ` is `Σ_{k≤j} W[i][k] M[j][k]`.
//! For a raw log diagonal (`Lᵢᵢ = exp(rawᵢ)`) the chain rule multiplies each
//! diagonal entry of the gradient by `Lᵢᵢ`.
//!
//! Cost: the forward pass is the one of [`kl`](super::kl) (`≈ d³/6`
//! multiply-adds for `M`); the backward pass is one back substitution with
//! `L_qᵀ` for `tril(W)` and `z`, fused with the triangular products for
//! `∂/∂L_q` row by row (`≈ d³/6 + d³/6`), so the whole pass costs `≈ 3×` the
//! forward one for large `d`.

use super::scalar::finish;
use super::{check_dense, check_pair};
use crate::error::{Error, check_len};
use crate::real::Real;
use crate::tril::{Diagonal, Layout, pack_dense_lower, plain_log_diag_sum, row_start, tril_len};
use crate::view::PackedTril;

/// The four output slices of a gradient kernel, overwritten with
/// `upstream · ∂KL/∂(argument)`, each in the form of its argument: means
/// `d` long; factors in the argument's packed layout (`d(d+1)/2` long, the
/// diagonal entry differentiated with respect to the raw log-value for
/// [`Diagonal::Log`], the plain value for [`Diagonal::Plain`]) or, for the
/// dense kernels, `d × d` row-major with zeros above the diagonal.
#[derive(Debug)]
pub struct KlGrad<'a, T> {
    /// `∂/∂μ_p`, `d` long.
    pub mean_p: &'a mut [T],
    /// `∂/∂L_p`, in `L_p`'s form.
    pub l_p: &'a mut [T],
    /// `∂/∂μ_q`, `d` long.
    pub mean_q: &'a mut [T],
    /// `∂/∂L_q`, in `L_q`'s form.
    pub l_q: &'a mut [T],
}

impl<'a, T> KlGrad<'a, T> {
    /// Bundles the four output slices.
    pub fn new(
        mean_p: &'a mut [T],
        l_p: &'a mut [T],
        mean_q: &'a mut [T],
        l_q: &'a mut [T],
    ) -> Self {
        KlGrad {
            mean_p,
            l_p,
            mean_q,
            l_q,
        }
    }

    /// Re-borrows the slices (to call a kernel again with the same outputs).
    pub fn reborrow(&mut self) -> KlGrad<'_, T> {
        KlGrad {
            mean_p: self.mean_p,
            l_p: self.l_p,
            mean_q: self.mean_q,
            l_q: self.l_q,
        }
    }
}

/// Workspace length (in scalars) that [`kl_grad`] and [`kl_grad_dense`] need
/// for dimension `d`: `3·d(d+1)/2 + 3d` (`L_q`, `M`, `W` as packed triangles;
/// `y`, `z` and the diagonal of `L_p`). Saturates at `usize::MAX`.
///
/// ```
/// assert_eq!(gaussian_kl::full::grad_workspace_len(3), 27);
/// let work = [0.0f64; gaussian_kl::full::grad_workspace_len(4)];
/// # let _ = work;
/// ```
pub const fn grad_workspace_len(d: usize) -> usize {
    match tril_len(d) {
        Some(t) => t.saturating_mul(3).saturating_add(d.saturating_mul(3)),
        None => usize::MAX,
    }
}

/// Where a factor's gradient is written.
#[derive(Clone, Copy)]
pub(crate) enum Dest {
    /// A packed vector in this layout.
    Packed(Layout),
    /// A dense row-major `d × d` matrix (upper triangle left alone).
    Dense,
}

impl Dest {
    #[inline(always)]
    fn index(self, d: usize, i: usize, j: usize) -> usize {
        match self {
            Dest::Packed(l) => l.index(d, i, j),
            Dest::Dense => i * d + j,
        }
    }
}

/// How to write the gradients: destinations and diagonal encodings.
#[derive(Clone, Copy)]
pub(crate) struct Form {
    pub(crate) dest_p: Dest,
    pub(crate) dest_q: Dest,
    pub(crate) log_p: bool,
    pub(crate) log_q: bool,
}

/// The workspace, split.
pub(crate) struct GradWork<'w, T> {
    /// `L_q`, row-major packed plain values.
    pub(crate) l2: &'w mut [T],
    /// `L_p` on entry (row-major packed plain), `M` after the forward pass.
    pub(crate) m: &'w mut [T],
    /// `W = L_q⁻ᵀ M` (lower triangle), built in place from a copy of `M`.
    pub(crate) w: &'w mut [T],
    /// `y`.
    pub(crate) y: &'w mut [T],
    /// `z = L_q⁻ᵀ y`, built in place from a copy of `y`.
    pub(crate) z: &'w mut [T],
    /// The diagonal of `L_p` (plain values).
    pub(crate) l1d: &'w mut [T],
}

impl<'w, T> GradWork<'w, T> {
    /// Splits a workspace of at least [`grad_workspace_len`]`(d)` scalars.
    pub(crate) fn split(d: usize, work: &'w mut [T]) -> Result<Self, Error> {
        let need = grad_workspace_len(d);
        if work.len() < need {
            return Err(Error::WorkspaceTooSmall {
                expected: need,
                found: work.len(),
            });
        }
        let t = row_start(d);
        let (l2, rest) = work[..need].split_at_mut(t);
        let (m, rest) = rest.split_at_mut(t);
        let (w, rest) = rest.split_at_mut(t);
        let (y, rest) = rest.split_at_mut(d);
        let (z, l1d) = rest.split_at_mut(d);
        Ok(GradWork {
            l2,
            m,
            w,
            y,
            z,
            l1d,
        })
    }
}

/// Fused forward + backward pass on unpacked factors (the scalar reference
/// of the gradient kernels). Shapes are the caller's to check.
///
/// The forward pass is the arithmetic of `scalar::kl_unpacked` in the same
/// order, so the returned KL is bit-identical to [`kl`](super::kl).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // internal: the pieces of one pass
pub(crate) fn kl_grad_unpacked<T: Real>(
    d: usize,
    mean_p: &[T],
    mean_q: &[T],
    wk: &mut GradWork<'_, T>,
    log_det_diff: T,
    upstream: T,
    form: Form,
    out: &mut KlGrad<'_, T>,
) -> T {
    let GradWork {
        l2,
        m,
        w,
        y,
        z,
        l1d,
    } = wk;
    let (l2, m, w, y, z, l1d) = (&**l2, &mut **m, &mut **w, &mut **y, &mut **z, &mut **l1d);
    for i in 0..d {
        l1d[i] = m[row_start(i) + i];
    }

    // Forward: L_q y = μ_q − μ_p and L_q M = L_p, by the reference kernel
    // itself (it leaves y and M in place), so the KL is bit-identical to `kl`.
    let kl = super::scalar::kl_unpacked(d, mean_p, mean_q, l2, m, y, log_det_diff);

    // Backward: L_qᵀ [z | W] = [y | M] by right-looking back substitution,
    // in place (row i of W and z[i] are final once rows > i are done), each
    // finished row i emitted at once with its row of ∂/∂L_q.
    let t = row_start(d);
    w[..t].copy_from_slice(&m[..t]);
    z[..d].copy_from_slice(&y[..d]);
    let g = upstream;
    let KlGrad {
        mean_p: g_mp,
        l_p: g_lp,
        mean_q: g_mq,
        l_q: g_lq,
    } = out;
    for i in (0..d).rev() {
        let ri = row_start(i);
        let l2row = &l2[ri..ri + i + 1];
        let piv = l2row[i];
        let (w_lo, w_hi) = w.split_at_mut(ri);
        let wi = &mut w_hi[..=i];
        let zi = z[i] / piv;
        z[i] = zi;
        for v in wi.iter_mut() {
            *v /= piv;
        }

        g_mp[i] = -(g * zi);
        g_mq[i] = g * zi;

        // ∂/∂L_p, row i: W[i][j], minus 1/L_pᵢᵢ on the diagonal.
        for j in 0..i {
            g_lp[form.dest_p.index(d, i, j)] = g * wi[j];
        }
        let l1ii = l1d[i];
        g_lp[form.dest_p.index(d, i, i)] = if form.log_p {
            g * (wi[i] * l1ii - T::ONE)
        } else {
            g * (wi[i] - T::ONE / l1ii)
        };

        // ∂/∂L_q, row i: −(zᵢ yⱼ + Σ_{k≤j} W[i][k] M[j][k]), plus 1/L_qᵢᵢ
        // on the diagonal.
        for j in 0..=i {
            let rj = row_start(j);
            let mut s = zi * y[j];
            for (a, b) in wi[..=j].iter().zip(&m[rj..=rj + j]) {
                s += *a * *b;
            }
            g_lq[form.dest_q.index(d, i, j)] = if j < i {
                -(g * s)
            } else if form.log_q {
                g * (T::ONE - s * piv)
            } else {
                g * (T::ONE / piv - s)
            };
        }

        // Eliminate row i from rows k < i: R[k] −= L_q[i][k] · W[i].
        for k in 0..i {
            let c = l2row[k];
            z[k] -= c * zi;
            let rk = row_start(k);
            for (a, b) in w_lo[rk..=rk + k].iter_mut().zip(&wi[..=k]) {
                *a -= c * *b;
            }
        }
    }
    kl
}

/// Checks the lengths of the four gradient slices.
fn check_grad<T>(d: usize, n_factor: usize, out: &KlGrad<'_, T>) -> Result<(), Error> {
    check_len("grad.mean_p", d, out.mean_p.len())?;
    check_len("grad.l_p", n_factor, out.l_p.len())?;
    check_len("grad.mean_q", d, out.mean_q.len())?;
    check_len("grad.l_q", n_factor, out.l_q.len())
}

/// Packed-input kernel on a split workspace (shared by the runtime and
/// fixed-dimension entry points).
pub(crate) fn kl_grad_split<T: Real>(
    mean_p: &[T],
    l_p: PackedTril<'_, T>,
    mean_q: &[T],
    l_q: PackedTril<'_, T>,
    upstream: T,
    out: &mut KlGrad<'_, T>,
    wk: &mut GradWork<'_, T>,
) -> Result<T, Error> {
    let d = l_p.d;
    let log_q = l_q.unpack_row_major("l_q", wk.l2)?;
    let log_p = l_p.unpack_row_major("l_p", wk.m)?;
    let form = Form {
        dest_p: Dest::Packed(l_p.layout),
        dest_q: Dest::Packed(l_q.layout),
        log_p: l_p.diagonal == Diagonal::Log,
        log_q: l_q.diagonal == Diagonal::Log,
    };
    Ok(kl_grad_unpacked(
        d,
        mean_p,
        mean_q,
        wk,
        log_p - log_q,
        upstream,
        form,
        out,
    ))
}

/// `KL(p‖q)` and `upstream · ∇KL` for factors in any packed layout and
/// diagonal encoding, in one fused pass.
///
/// The gradients are written into `grad` in the form of each argument (see
/// [`KlGrad`]): for a [`Diagonal::Log`] factor the diagonal entries are
/// derivatives with respect to the raw log-values (the chain rule through
/// `exp` applied). `upstream` is `∂loss/∂KL`, the vector a reverse-mode
/// autodiff framework passes to a custom operation's backward; pass `1` for
/// the plain gradient. The returned KL is not scaled by `upstream`, and is
/// bit-identical to [`kl`](super::kl) on the same inputs.
///
/// `work` must hold at least [`grad_workspace_len`]`(d)` scalars.
///
/// # Errors
/// The shape and diagonal errors of [`kl`](super::kl), and
/// [`Error::LengthMismatch`] naming `grad.mean_p`, `grad.l_p`, `grad.mean_q`
/// or `grad.l_q`. On error the outputs are left untouched. NaN and infinite
/// inputs propagate into the KL and the gradients.
///
/// ```
/// use gaussian_kl::{full, PackedTril};
/// let (mu_p, raw_p) = ([0.1f64, -0.3], [0.2, 0.5, -0.1]);
/// let (mu_q, raw_q) = ([0.0f64, 0.4], [0.0, -0.2, 0.3]);
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 3], [0.0; 2], [0.0; 3]);
/// let mut work = [0.0; full::grad_workspace_len(2)];
/// let kl = full::kl_grad(
///     &mu_p, PackedTril::new(2, &raw_p), &mu_q, PackedTril::new(2, &raw_q), 1.0,
///     full::KlGrad::new(&mut g_mp, &mut g_lp, &mut g_mq, &mut g_lq), &mut work,
/// )?;
/// // ∂KL/∂μ_p = −∂KL/∂μ_q.
/// assert_eq!(g_mp, [-g_mq[0], -g_mq[1]]);
/// // A central difference in the first raw entry of L_p agrees.
/// let mut w = [0.0; full::workspace_len(2)];
/// let h = 1e-6;
/// let f = |x: f64, w: &mut [f64]| {
///     let raw = [0.2 + x, 0.5, -0.1];
///     full::kl(&mu_p, PackedTril::new(2, &raw), &mu_q, PackedTril::new(2, &raw_q), w).unwrap()
/// };
/// let fd = (f(h, &mut w) - f(-h, &mut w)) / (2.0 * h);
/// assert!((fd - g_lp[0]).abs() < 1e-8);
/// assert_eq!(kl, full::kl(&mu_p, PackedTril::new(2, &raw_p), &mu_q, PackedTril::new(2, &raw_q), &mut w)?);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad<T: Real>(
    mean_p: &[T],
    l_p: PackedTril<'_, T>,
    mean_q: &[T],
    l_q: PackedTril<'_, T>,
    upstream: T,
    mut grad: KlGrad<'_, T>,
    work: &mut [T],
) -> Result<T, Error> {
    let d = check_pair(mean_p, &l_p, mean_q, &l_q)?;
    check_grad(d, l_p.data.len(), &grad)?;
    let mut wk = GradWork::split(d, work)?;
    kl_grad_split(mean_p, l_p, mean_q, l_q, upstream, &mut grad, &mut wk)
}

/// Dense-input kernel on a split workspace.
#[allow(clippy::too_many_arguments)] // internal: the pieces of one pass
pub(crate) fn kl_grad_dense_split<T: Real>(
    d: usize,
    mean_p: &[T],
    l_p: &[T],
    mean_q: &[T],
    l_q: &[T],
    upstream: T,
    out: &mut KlGrad<'_, T>,
    wk: &mut GradWork<'_, T>,
) -> Result<T, Error> {
    pack_dense_lower(d, l_q, wk.l2);
    pack_dense_lower(d, l_p, wk.m);
    let log_q = plain_log_diag_sum("l_q", d, wk.l2)?;
    let log_p = plain_log_diag_sum("l_p", d, wk.m)?;
    out.l_p.fill(T::ZERO);
    out.l_q.fill(T::ZERO);
    let form = Form {
        dest_p: Dest::Dense,
        dest_q: Dest::Dense,
        log_p: false,
        log_q: false,
    };
    Ok(kl_grad_unpacked(
        d,
        mean_p,
        mean_q,
        wk,
        log_p - log_q,
        upstream,
        form,
        out,
    ))
}

/// [`kl_grad`] for dense row-major `d × d` lower-triangular factors with a
/// plain positive diagonal (PyTorch's `scale_tril`; the strict upper triangle
/// is ignored). `d` is `mean_p.len()`. The factor gradients are `d × d`
/// row-major with zeros above the diagonal (the KL does not depend on the
/// upper triangle).
///
/// # Errors
/// As [`kl_grad`]; `l_p`, `l_q`, `grad.l_p` and `grad.l_q` must be `d²` long.
///
/// ```
/// use gaussian_kl::full;
/// let l = [1.0f64, 0.0, 0.5, 2.0];
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 4], [0.0; 2], [0.0; 4]);
/// let mut work = [0.0; full::grad_workspace_len(2)];
/// let g = full::KlGrad::new(&mut g_mp, &mut g_lp, &mut g_mq, &mut g_lq);
/// let kl = full::kl_grad_dense(&[0.0, 0.0], &l, &[0.0, 1.0], &l, 1.0, g, &mut work)?;
/// assert!((kl - 0.125).abs() < 1e-15);
/// // z = L⁻ᵀ y with y = (0, ½): ∂KL/∂μ_q = z = (−⅛, ¼).
/// assert!((g_mq[0] + 0.125).abs() < 1e-15 && (g_mq[1] - 0.25).abs() < 1e-15);
/// assert_eq!(g_lp[1], 0.0); // above the diagonal
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_dense<T: Real>(
    mean_p: &[T],
    l_p: &[T],
    mean_q: &[T],
    l_q: &[T],
    upstream: T,
    mut grad: KlGrad<'_, T>,
    work: &mut [T],
) -> Result<T, Error> {
    let d = check_dense(mean_p, l_p, mean_q, l_q, ["l_p", "l_q"])?;
    check_grad(d, l_p.len(), &grad)?;
    let mut wk = GradWork::split(d, work)?;
    kl_grad_dense_split(d, mean_p, l_p, mean_q, l_q, upstream, &mut grad, &mut wk)
}

/// `KL(p‖N(0, I))` (the VAE prior) and `upstream · ∇KL` in one pass, for a
/// packed factor in any layout and diagonal encoding. No workspace.
///
/// `KL = ½(‖μ‖² + ‖L‖²_F − 2 Σ log Lᵢᵢ − d)`, so `∂/∂μ = μ` and
/// `∂/∂L = L − diag(1/Lᵢᵢ)` (lower triangle); for a [`Diagonal::Log`]
/// factor the diagonal entry is `Lᵢᵢ² − 1`, the derivative with respect to
/// the raw value. `grad_mean` (`d` long) and `grad_l` (in `l`'s layout) are
/// overwritten. The returned KL is bit-identical to
/// [`kl_std_normal`](super::kl_std_normal) and not scaled by `upstream`.
///
/// # Errors
/// The errors of [`kl_std_normal`](super::kl_std_normal), and
/// [`Error::LengthMismatch`] naming `grad_mean` or `grad_l`. On error the
/// outputs are left untouched.
///
/// ```
/// use gaussian_kl::{full, PackedTril};
/// let (mu, raw) = ([0.5f64, -1.0], [0.1, 0.3, -0.2]);
/// let (mut g_mu, mut g_l) = ([0.0; 2], [0.0; 3]);
/// let kl = full::kl_std_normal_grad(&mu, PackedTril::new(2, &raw), 2.0, &mut g_mu, &mut g_l)?;
/// assert_eq!(kl, full::kl_std_normal(&mu, PackedTril::new(2, &raw))?);
/// assert_eq!(g_mu, [1.0, -2.0]); // upstream · μ
/// assert_eq!(g_l[1], 2.0 * 0.3); // upstream · L₁₀
/// assert!((g_l[0] - 2.0 * ((0.2f64).exp() - 1.0)).abs() < 1e-15); // upstream · (L₀₀² − 1)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad<T: Real>(
    mean: &[T],
    l: PackedTril<'_, T>,
    upstream: T,
    grad_mean: &mut [T],
    grad_l: &mut [T],
) -> Result<T, Error> {
    let d = l.d;
    l.check("l")?;
    check_len("mean", d, mean.len())?;
    check_len("grad_mean", d, grad_mean.len())?;
    check_len("grad_l", l.data.len(), grad_l.len())?;
    let log = l.diagonal == Diagonal::Log;
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let raw = l.data[l.layout.index(d, i, i)];
        log_sum += if log {
            raw
        } else {
            if raw <= T::ZERO {
                return Err(Error::NonPositiveDiagonal {
                    what: "l",
                    index: i,
                    item: None,
                    value: raw.to_f64(),
                });
            }
            raw.ln()
        };
    }
    let g = upstream;
    let mut mu_sq = T::ZERO;
    for (gm, &v) in grad_mean.iter_mut().zip(&mean[..d]) {
        mu_sq += v * v;
        *gm = g * v;
    }
    let mut l_sq = T::ZERO;
    for i in 0..d {
        for j in 0..i {
            let at = l.layout.index(d, i, j);
            let v = l.data[at];
            l_sq += v * v;
            grad_l[at] = g * v;
        }
        let at = l.layout.index(d, i, i);
        let raw = l.data[at];
        let v = if log { raw.exp() } else { raw };
        l_sq += v * v;
        grad_l[at] = if log {
            g * (v * v - T::ONE)
        } else {
            g * (v - T::ONE / v)
        };
    }
    Ok(finish(d, mu_sq, l_sq, log_sum))
}

/// [`kl_std_normal_grad`] for a dense row-major `d × d` factor with a plain
/// diagonal (upper triangle ignored; its gradient is written as zeros).
/// `d` is `mean.len()`; `l` and `grad_l` are `d²` long.
///
/// # Errors
/// [`Error::LengthMismatch`] naming `l`, `grad_mean` or `grad_l`;
/// [`Error::NonPositiveDiagonal`].
///
/// ```
/// use gaussian_kl::full;
/// let (mut g_mu, mut g_l) = ([0.0f64; 1], [0.0; 1]);
/// let kl = full::kl_std_normal_grad_dense(&[1.0], &[2.0], 1.0, &mut g_mu, &mut g_l)?;
/// assert_eq!(kl, full::kl_std_normal_dense(&[1.0], &[2.0])?);
/// assert_eq!((g_mu[0], g_l[0]), (1.0, 2.0 - 0.5)); // μ, L − 1/L
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad_dense<T: Real>(
    mean: &[T],
    l: &[T],
    upstream: T,
    grad_mean: &mut [T],
    grad_l: &mut [T],
) -> Result<T, Error> {
    let d = mean.len();
    let n = d.checked_mul(d).ok_or(Error::DimensionTooLarge { d })?;
    check_len("l", n, l.len())?;
    check_len("grad_mean", d, grad_mean.len())?;
    check_len("grad_l", n, grad_l.len())?;
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let v = l[i * d + i];
        if v <= T::ZERO {
            return Err(Error::NonPositiveDiagonal {
                what: "l",
                index: i,
                item: None,
                value: v.to_f64(),
            });
        }
        log_sum += v.ln();
    }
    let g = upstream;
    let mut mu_sq = T::ZERO;
    for (gm, &v) in grad_mean.iter_mut().zip(mean) {
        mu_sq += v * v;
        *gm = g * v;
    }
    grad_l.fill(T::ZERO);
    let mut l_sq = T::ZERO;
    for i in 0..d {
        for j in 0..=i {
            let v = l[i * d + j];
            l_sq += v * v;
            grad_l[i * d + j] = if j < i { g * v } else { g * (v - T::ONE / v) };
        }
    }
    Ok(finish(d, mu_sq, l_sq, log_sum))
}

/// The gradients of [`kl_grad_fixed`]: `upstream · ∂KL/∂(argument)`, the
/// factor gradients dense with zeros above the diagonal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlGradFixed<T, const D: usize> {
    /// `∂/∂μ_p`.
    pub mean_p: [T; D],
    /// `∂/∂L_p` (lower triangle; zeros above).
    pub l_p: [[T; D]; D],
    /// `∂/∂μ_q`.
    pub mean_q: [T; D],
    /// `∂/∂L_q` (lower triangle; zeros above).
    pub l_q: [[T; D]; D],
}

/// A stack workspace for dimension `D`: three `D × D` blocks hold the three
/// packed triangles (`D(D+1)/2 ≤ D²`), three rows the vectors.
struct StackWork<T, const D: usize> {
    tri: [[[T; D]; D]; 3],
    vec: [[T; D]; 3],
}

impl<T: Real, const D: usize> StackWork<T, D> {
    #[inline(always)]
    fn new() -> Self {
        StackWork {
            tri: [[[T::ZERO; D]; D]; 3],
            vec: [[T::ZERO; D]; 3],
        }
    }

    #[inline(always)]
    fn split(&mut self) -> GradWork<'_, T> {
        let t = row_start(D);
        let [a, b, c] = &mut self.tri;
        let [y, z, l1d] = &mut self.vec;
        GradWork {
            l2: &mut a.as_flattened_mut()[..t],
            m: &mut b.as_flattened_mut()[..t],
            w: &mut c.as_flattened_mut()[..t],
            y,
            z,
            l1d,
        }
    }
}

/// [`kl_grad_dense`] for compile-time dimension `D`, everything on the
/// stack: returns the KL and the gradients. The same kernel as the runtime
/// one: results are bit-identical to [`kl_grad_dense`].
///
/// # Errors
/// [`Error::NonPositiveDiagonal`] if a diagonal entry is `≤ 0`.
///
/// ```
/// use gaussian_kl::full;
/// let l = [[1.0f64, 0.0], [0.5, 2.0]];
/// let (kl, g) = full::kl_grad_fixed(&[0.0, 0.0], &l, &[0.0, 1.0], &l, 1.0)?;
/// assert!((kl - 0.125).abs() < 1e-15);
/// assert_eq!(g.mean_p, [-g.mean_q[0], -g.mean_q[1]]);
/// assert_eq!(g.l_q[0][1], 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_fixed<T: Real, const D: usize>(
    mean_p: &[T; D],
    l_p: &[[T; D]; D],
    mean_q: &[T; D],
    l_q: &[[T; D]; D],
    upstream: T,
) -> Result<(T, KlGradFixed<T, D>), Error> {
    let mut stack = StackWork::<T, D>::new();
    let mut wk = stack.split();
    let mut out = KlGradFixed {
        mean_p: [T::ZERO; D],
        l_p: [[T::ZERO; D]; D],
        mean_q: [T::ZERO; D],
        l_q: [[T::ZERO; D]; D],
    };
    let kl = {
        let mut grad = KlGrad::new(
            &mut out.mean_p,
            out.l_p.as_flattened_mut(),
            &mut out.mean_q,
            out.l_q.as_flattened_mut(),
        );
        kl_grad_dense_split(
            D,
            mean_p,
            l_p.as_flattened(),
            mean_q,
            l_q.as_flattened(),
            upstream,
            &mut grad,
            &mut wk,
        )?
    };
    Ok((kl, out))
}

/// [`kl_grad`] for compile-time dimension `D` with a workspace on the stack.
/// Bit-identical to [`kl_grad`].
///
/// # Errors
/// [`Error::DimensionMismatch`] if a factor's `d` is not `D`; the errors of
/// [`kl_grad`].
///
/// ```
/// use gaussian_kl::{full, PackedTril};
/// let (mu_p, raw_p) = ([0.1f64, -0.3], [0.2, 0.5, -0.1]);
/// let (mu_q, raw_q) = ([0.0f64, 0.4], [0.0, -0.2, 0.3]);
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 3], [0.0; 2], [0.0; 3]);
/// let g = full::KlGrad::new(&mut g_mp, &mut g_lp, &mut g_mq, &mut g_lq);
/// let kl = full::kl_grad_packed_fixed::<f64, 2>(
///     &mu_p, PackedTril::new(2, &raw_p), &mu_q, PackedTril::new(2, &raw_q), 1.0, g)?;
/// assert!(kl > 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_packed_fixed<T: Real, const D: usize>(
    mean_p: &[T; D],
    l_p: PackedTril<'_, T>,
    mean_q: &[T; D],
    l_q: PackedTril<'_, T>,
    upstream: T,
    mut grad: KlGrad<'_, T>,
) -> Result<T, Error> {
    if l_p.d != D {
        return Err(Error::DimensionMismatch {
            what: "l_p",
            expected: D,
            found: l_p.d,
        });
    }
    let d = check_pair(mean_p, &l_p, mean_q, &l_q)?;
    check_grad(d, l_p.data.len(), &grad)?;
    let mut stack = StackWork::<T, D>::new();
    let mut wk = stack.split();
    kl_grad_split(mean_p, l_p, mean_q, l_q, upstream, &mut grad, &mut wk)
}
