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

//!
//! The gradient of a factor is written in the factor's own form: a packed
//! factor's in the same [`Layout`] (the diagonal entry differentiated with
//! respect to the raw log-value for [`Diagonal::Log`], the plain value for
//! [`Diagonal::Plain`]); a dense factor's with the same strides into a
//! buffer as long as the input's data, holding `∂KL/∂data[k]` for every
//! element `k` of that buffer: entries the KL does not read (the strict
//! upper triangle, the gaps of a strided sub-view) get `0` in
//! [`Mode::Overwrite`] and are left as they are in [`Mode::Accumulate`], and
//! an element that several lower-triangle entries share (overlapping
//! strides) gets the sum of their derivatives.

use super::scalar::finish;
use super::{check_dims, unpack};
use crate::error::{Error, check_len};
use crate::real::Real;
use crate::tril::{Diagonal, Layout, row_start, tril_len};
use crate::view::{Factor, Gaussian, GradMut, Grads, MatRef, Mode, PackedTril};

/// The four output slices of the batch layer's per-pair scalar path,
/// overwritten with `upstream · ∂KL/∂(argument)`, factors in their packed
/// layouts.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct KlGrad<'a, T> {
    /// `∂/∂μ_p`, `d` long.
    pub(crate) mean_p: &'a mut [T],
    /// `∂/∂L_p`, in `L_p`'s layout.
    pub(crate) l_p: &'a mut [T],
    /// `∂/∂μ_q`, `d` long.
    pub(crate) mean_q: &'a mut [T],
    /// `∂/∂L_q`, in `L_q`'s layout.
    pub(crate) l_q: &'a mut [T],
}

#[cfg_attr(not(feature = "std"), allow(dead_code))]
impl<'a, T> KlGrad<'a, T> {
    /// Bundles the four output slices.
    pub(crate) fn new(
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
}

/// Scratch length (in scalars) that [`kl_grad`] needs for dimension `d`:
/// `3·d(d+1)/2 + 3d` (`L_q`, `M`, `W` as packed triangles; `y`, `z` and the
/// diagonal of `L_p`). Saturates at `usize::MAX`.
///
/// ```
/// assert_eq!(gaussian_kl::full::kl_grad_scratch(3), 27);
/// let work = [0.0f64; gaussian_kl::full::kl_grad_scratch(4)];
/// # let _ = work;
/// ```
pub const fn kl_grad_scratch(d: usize) -> usize {
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
    /// A dense matrix: entry `(i, j)` at `i · row_stride + j · col_stride`.
    Strided(usize, usize),
}

impl Dest {
    #[inline(always)]
    fn index(self, d: usize, i: usize, j: usize) -> usize {
        match self {
            Dest::Packed(l) => l.index(d, i, j),
            Dest::Strided(rs, cs) => i * rs + j * cs,
        }
    }
}

/// Whether two lower-triangle entries of a `d × d` strided matrix may share
/// an element. Conservative: `false` only when the entries are provably
/// distinct (the smaller stride's whole range fits inside one step of the
/// larger one).
fn strides_may_alias(d: usize, rs: usize, cs: usize) -> bool {
    if d <= 1 {
        return false;
    }
    let (a, b) = if rs <= cs { (rs, cs) } else { (cs, rs) };
    a == 0 || (d - 1).saturating_mul(a) >= b
}

/// One side's gradient outputs as the kernel writes them.
pub(crate) struct Sink<'a, T> {
    mean: &'a mut [T],
    factor: &'a mut [T],
    dest: Dest,
    /// The factor has a raw log diagonal (chain rule through `exp`).
    log: bool,
    /// `+=` into `mean` (else `=`).
    add_mean: bool,
    /// `+=` into `factor` (else `=`).
    add_factor: bool,
}

impl<'a, T: Real> Sink<'a, T> {
    /// Overwriting packed outputs (the batch layer's per-pair path).
    fn packed(mean: &'a mut [T], factor: &'a mut [T], l: &PackedTril<'_, T>) -> Self {
        Sink {
            mean,
            factor,
            dest: Dest::Packed(l.layout),
            log: l.diagonal == Diagonal::Log,
            add_mean: false,
            add_factor: false,
        }
    }

    /// The outputs of `grad` for `factor`; shapes already checked. A dense
    /// factor's buffer is zeroed first in [`Mode::Overwrite`].
    fn new(grad: GradMut<'a, T>, factor: &Factor<'_, T>) -> Self {
        let add = grad.mode == Mode::Accumulate;
        match factor {
            Factor::Packed(l) => Sink {
                add_mean: add,
                add_factor: add,
                ..Sink::packed(grad.mean, grad.factor, l)
            },
            Factor::Dense(l) => {
                if !add {
                    grad.factor.fill(T::ZERO);
                }
                Sink {
                    mean: grad.mean,
                    factor: grad.factor,
                    dest: Dest::Strided(l.row_stride, l.col_stride),
                    log: false,
                    add_mean: add,
                    add_factor: add || strides_may_alias(l.d, l.row_stride, l.col_stride),
                }
            }
        }
    }

    #[inline(always)]
    fn put_mean(&mut self, i: usize, v: T) {
        if self.add_mean {
            self.mean[i] += v;
        } else {
            self.mean[i] = v;
        }
    }

    #[inline(always)]
    fn put_factor(&mut self, d: usize, i: usize, j: usize, v: T) {
        let at = self.dest.index(d, i, j);
        if self.add_factor {
            self.factor[at] += v;
        } else {
            self.factor[at] = v;
        }
    }
}

/// Checks one side's gradient buffers against its Gaussian.
fn check_sink<T: Real>(
    names: [&'static str; 2],
    g: &Gaussian<'_, T>,
    grad: &GradMut<'_, T>,
) -> Result<(), Error> {
    check_len(names[0], g.dim(), grad.mean.len())?;
    let n = match &g.factor {
        Factor::Packed(l) => l.data.len(),
        Factor::Dense(l) => l.data.len(),
    };
    check_len(names[1], n, grad.factor.len())
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
    /// Splits a workspace of at least [`kl_grad_scratch`]`(d)` scalars.
    pub(crate) fn split(d: usize, work: &'w mut [T]) -> Result<Self, Error> {
        let need = kl_grad_scratch(d);
        crate::error::check_work(need, work.len())?;
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

/// The scalar inputs of one fused pass.
struct Pass<'a, T> {
    d: usize,
    mean_p: &'a [T],
    mean_q: &'a [T],
    /// `Σ log L_pᵢᵢ − Σ log L_qᵢᵢ`.
    log_det_diff: T,
    upstream: T,
}

/// Fused forward + backward pass on unpacked factors (`wk.l2` = `L_q`,
/// `wk.m` = `L_p`; the scalar reference of the gradient kernels). Shapes
/// are the caller's to check.
///
/// The forward pass is `scalar::kl_unpacked` itself, so the returned KL is
/// bit-identical to [`kl`](super::kl).
#[inline(always)]
fn kl_grad_unpacked<T: Real>(
    pass: &Pass<'_, T>,
    wk: &mut GradWork<'_, T>,
    sp: &mut Sink<'_, T>,
    sq: &mut Sink<'_, T>,
) -> T {
    let d = pass.d;
    for i in 0..d {
        wk.l1d[i] = wk.m[row_start(i) + i];
    }
    // Forward: L_q y = μ_q − μ_p and L_q M = L_p (y and M left in place).
    let kl = super::scalar::kl_unpacked(
        d,
        pass.mean_p,
        pass.mean_q,
        wk.l2,
        wk.m,
        wk.y,
        pass.log_det_diff,
    );
    // Backward: L_qᵀ [z | W] = [y | M] by right-looking back substitution,
    // in place (row i of W and z[i] are final once rows > i are done), each
    // finished row i emitted at once with its row of ∂/∂L_q.
    let t = row_start(d);
    wk.w[..t].copy_from_slice(&wk.m[..t]);
    wk.z[..d].copy_from_slice(&wk.y[..d]);
    for i in (0..d).rev() {
        backward_row(wk, d, i, pass.upstream, sp, sq);
    }
    kl
}

/// Row `i` of the back substitution and of the four gradients.
#[inline(always)]
fn backward_row<T: Real>(
    wk: &mut GradWork<'_, T>,
    d: usize,
    i: usize,
    g: T,
    sp: &mut Sink<'_, T>,
    sq: &mut Sink<'_, T>,
) {
    let (l2, m, y) = (&*wk.l2, &*wk.m, &*wk.y);
    let ri = row_start(i);
    let l2row = &l2[ri..ri + i + 1];
    let piv = l2row[i];
    let (w_lo, w_hi) = wk.w.split_at_mut(ri);
    let wi = &mut w_hi[..=i];
    let zi = wk.z[i] / piv;
    wk.z[i] = zi;
    for v in wi.iter_mut() {
        *v /= piv;
    }

    sp.put_mean(i, -(g * zi));
    sq.put_mean(i, g * zi);

    // ∂/∂L_p, row i: W[i][j], minus 1/L_pᵢᵢ on the diagonal.
    for j in 0..i {
        sp.put_factor(d, i, j, g * wi[j]);
    }
    let l1ii = wk.l1d[i];
    let diag_p = if sp.log {
        g * (wi[i] * l1ii - T::ONE)
    } else {
        g * (wi[i] - T::ONE / l1ii)
    };
    sp.put_factor(d, i, i, diag_p);

    // ∂/∂L_q, row i: −(zᵢ yⱼ + Σ_{k≤j} W[i][k] M[j][k]), plus 1/L_qᵢᵢ
    // on the diagonal.
    for j in 0..=i {
        let rj = row_start(j);
        let mut s = zi * y[j];
        for (a, b) in wi[..=j].iter().zip(&m[rj..=rj + j]) {
            s += *a * *b;
        }
        let v = if j < i {
            -(g * s)
        } else if sq.log {
            g * (T::ONE - s * piv)
        } else {
            g * (T::ONE / piv - s)
        };
        sq.put_factor(d, i, j, v);
    }

    // Eliminate row i from rows k < i: R[k] −= L_q[i][k] · W[i].
    for k in 0..i {
        let c = l2row[k];
        wk.z[k] -= c * zi;
        let rk = row_start(k);
        for (a, b) in w_lo[rk..=rk + k].iter_mut().zip(&wi[..=k]) {
            *a -= c * *b;
        }
    }
}

/// Packed-input kernel on a split workspace, overwriting `out` (the batch
/// layer's per-pair path). Shapes are the caller's to check.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) fn kl_grad_split<T: Real>(
    mean_p: &[T],
    l_p: PackedTril<'_, T>,
    mean_q: &[T],
    l_q: PackedTril<'_, T>,
    upstream: T,
    out: &mut KlGrad<'_, T>,
    wk: &mut GradWork<'_, T>,
) -> Result<T, Error> {
    let log_q = l_q.unpack_row_major("l_q", wk.l2)?;
    let log_p = l_p.unpack_row_major("l_p", wk.m)?;
    let pass = Pass {
        d: l_p.d,
        mean_p,
        mean_q,
        log_det_diff: log_p - log_q,
        upstream,
    };
    let mut sp = Sink::packed(out.mean_p, out.l_p, &l_p);
    let mut sq = Sink::packed(out.mean_q, out.l_q, &l_q);
    Ok(kl_grad_unpacked(&pass, wk, &mut sp, &mut sq))
}

/// The checked pair on a split workspace: unpacks, then writes `grad`.
/// Every shape is checked; the only errors left are a plain diagonal entry
/// `≤ 0` in a view built inside the crate, reported before any write.
fn kl_grad_views<T: Real>(
    p: &Gaussian<'_, T>,
    q: &Gaussian<'_, T>,
    upstream: T,
    grad: Grads<GradMut<'_, T>>,
    wk: &mut GradWork<'_, T>,
) -> Result<T, Error> {
    let log_q = unpack("q.factor", &q.factor, wk.l2)?;
    let log_p = unpack("p.factor", &p.factor, wk.m)?;
    let pass = Pass {
        d: p.dim(),
        mean_p: p.mean,
        mean_q: q.mean,
        log_det_diff: log_p - log_q,
        upstream,
    };
    let mut sp = Sink::new(grad.p, &p.factor);
    let mut sq = Sink::new(grad.q, &q.factor);
    Ok(kl_grad_unpacked(&pass, wk, &mut sp, &mut sq))
}

/// `KL(p‖q)` and `upstream · ∇KL` with respect to both means and both
/// factors, in one fused pass, for factors in any form.
///
/// `upstream` is `∂loss/∂KL`, the scalar a reverse-mode autodiff framework
/// passes to a custom operation's backward (`1` for the plain gradient).
/// `grad.p` and `grad.q` are shaped as the inputs: means `d` long; a packed
/// factor's gradient in its layout (`d(d+1)/2`, the diagonal with respect
/// to the raw log-value for a log diagonal); a dense factor's with the same
/// strides into a buffer of the input data's length, holding `∂KL/∂data[k]`
/// for every element `k`: the elements the KL does not read (the strict
/// upper triangle, the gaps of a strided sub-view) get `0` in
/// [`Mode::Overwrite`] and are left alone in [`Mode::Accumulate`], and an
/// element that several lower-triangle entries share (overlapping strides)
/// gets the sum of their derivatives. Each buffer is overwritten or added
/// into according to its [`Mode`]. The returned KL is not scaled by
/// `upstream` and is bit-identical to [`kl`](super::kl).
///
/// `work` must hold at least [`kl_grad_scratch`]`(d)` scalars.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`); [`Error::LengthMismatch`] naming
/// `grad.p.mean`, `grad.p.factor`, `grad.q.mean` or `grad.q.factor`;
/// [`Error::WorkspaceTooSmall`]. On error every output is untouched. NaN and
/// infinite inputs propagate into the KL and the gradients.
///
/// ```
/// use gaussian_kl::{full, Gaussian, GradMut, Grads, Mode};
/// let p = Gaussian::packed(&[0.1f64, -0.3], &[0.2, 0.5, -0.1])?;
/// let q = Gaussian::packed(&[0.0, 0.4], &[0.0, -0.2, 0.3])?;
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 3], [0.0; 2], [0.0; 3]);
/// let mut work = [0.0; full::kl_grad_scratch(2)];
/// let grad = Grads::new(GradMut::new(&mut g_mp, &mut g_lp), GradMut::new(&mut g_mq, &mut g_lq));
/// let kl = full::kl_grad(&p, &q, 1.0, grad, &mut work)?;
/// assert_eq!(g_mp, [-g_mq[0], -g_mq[1]]); // ∂KL/∂μ_p = −∂KL/∂μ_q
/// // A central difference in the first raw entry of L_p agrees.
/// let h = 1e-6;
/// let f = |x: f64, w: &mut [f64]| -> Result<f64, gaussian_kl::Error> {
///     let raw = [0.2 + x, 0.5, -0.1];
///     full::kl(&Gaussian::packed(&[0.1, -0.3], &raw)?, &q, w)
/// };
/// let fd = (f(h, &mut work)? - f(-h, &mut work)?) / (2.0 * h);
/// assert!((fd - g_lp[0]).abs() < 1e-8);
/// assert_eq!(kl, full::kl(&p, &q, &mut work)?);
/// // Accumulate: a second call adds the same gradient again.
/// let before = g_lq;
/// let grad = Grads::new(
///     GradMut::new(&mut g_mp, &mut g_lp).mode(Mode::Accumulate),
///     GradMut::new(&mut g_mq, &mut g_lq).mode(Mode::Accumulate),
/// );
/// full::kl_grad(&p, &q, 1.0, grad, &mut work)?;
/// assert_eq!(g_lq[2], before[2] + before[2]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad<T: Real>(
    p: &Gaussian<'_, T>,
    q: &Gaussian<'_, T>,
    upstream: T,
    grad: Grads<GradMut<'_, T>>,
    work: &mut [T],
) -> Result<T, Error> {
    let d = check_dims(p, q)?;
    check_sink(["grad.p.mean", "grad.p.factor"], p, &grad.p)?;
    check_sink(["grad.q.mean", "grad.q.factor"], q, &grad.q)?;
    let mut wk = GradWork::split(d, work)?;
    kl_grad_views(p, q, upstream, grad, &mut wk)
}

/// `‖L‖²_F` of a packed factor, writing `upstream · ∂/∂L` (the plain or
/// raw-log diagonal rule) into `sink`.
fn std_normal_packed<T: Real>(l: &PackedTril<'_, T>, g: T, sink: &mut Sink<'_, T>) -> T {
    let (d, log) = (l.d, l.diagonal == Diagonal::Log);
    let mut l_sq = T::ZERO;
    for i in 0..d {
        for j in 0..i {
            let v = l.raw(i, j);
            l_sq += v * v;
            sink.put_factor(d, i, j, g * v);
        }
        let raw = l.raw(i, i);
        let v = if log { raw.exp() } else { raw };
        l_sq += v * v;
        let gd = if log {
            g * (v * v - T::ONE)
        } else {
            g * (v - T::ONE / v)
        };
        sink.put_factor(d, i, i, gd);
    }
    l_sq
}

/// `‖L‖²_F` of a dense factor, writing `upstream · ∂/∂L` into `sink`.
fn std_normal_dense<T: Real>(l: &MatRef<'_, T>, g: T, sink: &mut Sink<'_, T>) -> T {
    let mut l_sq = T::ZERO;
    for i in 0..l.d {
        for j in 0..=i {
            let v = l.get(i, j);
            l_sq += v * v;
            let gv = if j < i { g * v } else { g * (v - T::ONE / v) };
            sink.put_factor(l.d, i, j, gv);
        }
    }
    l_sq
}

/// `Σ log Lᵢᵢ` of a factor (no logarithm on a raw log diagonal).
fn log_diag_sum<T: Real>(what: &'static str, factor: &Factor<'_, T>) -> Result<T, Error> {
    let d = factor.dim();
    let mut log_sum = T::ZERO;
    for i in 0..d {
        let (raw, log) = match factor {
            Factor::Packed(l) => (l.raw(i, i), l.diagonal == Diagonal::Log),
            Factor::Dense(l) => (l.get(i, i), false),
        };
        log_sum += if log {
            raw
        } else {
            if raw <= T::ZERO {
                return Err(Error::NonPositiveDiagonal {
                    what,
                    index: i,
                    item: None,
                    value: raw.to_f64(),
                });
            }
            raw.ln()
        };
    }
    Ok(log_sum)
}

/// `KL(p‖N(0, I))` (the VAE prior) and `upstream · ∇KL` in one pass, for a
/// factor in any form. No workspace.
///
/// `KL = ½(‖μ‖² + ‖L‖²_F − 2 Σ log Lᵢᵢ − d)`, so `∂/∂μ = μ` and
/// `∂/∂L = L − diag(1/Lᵢᵢ)` (lower triangle); for a raw log diagonal the
/// diagonal entry is `Lᵢᵢ² − 1`, the derivative with respect to the raw
/// value. `grad` is shaped as in [`kl_grad`] and overwritten or added into
/// according to its [`Mode`]. The returned KL is bit-identical to
/// [`kl_std_normal`](super::kl_std_normal) and not scaled by `upstream`.
///
/// # Errors
/// [`Error::LengthMismatch`] naming `grad.mean` or `grad.factor`. On error
/// the outputs are untouched.
///
/// ```
/// use gaussian_kl::{full, Gaussian, GradMut};
/// let p = Gaussian::packed(&[0.5f64, -1.0], &[0.1, 0.3, -0.2])?;
/// let (mut g_mu, mut g_l) = ([0.0; 2], [0.0; 3]);
/// let kl = full::kl_std_normal_grad(&p, 2.0, GradMut::new(&mut g_mu, &mut g_l))?;
/// assert_eq!(kl, full::kl_std_normal(&p)?);
/// assert_eq!(g_mu, [1.0, -2.0]); // upstream · μ
/// assert_eq!(g_l[1], 2.0 * 0.3); // upstream · L₁₀
/// assert!((g_l[0] - 2.0 * ((0.2f64).exp() - 1.0)).abs() < 1e-15); // upstream · (L₀₀² − 1)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_grad<T: Real>(
    p: &Gaussian<'_, T>,
    upstream: T,
    grad: GradMut<'_, T>,
) -> Result<T, Error> {
    let d = p.dim();
    check_sink(["grad.mean", "grad.factor"], p, &grad)?;
    let log_sum = log_diag_sum("p.factor", &p.factor)?;
    let g = upstream;
    let mut sink = Sink::new(grad, &p.factor);
    let mut mu_sq = T::ZERO;
    for (i, &v) in p.mean.iter().enumerate() {
        mu_sq += v * v;
        sink.put_mean(i, g * v);
    }
    let l_sq = match &p.factor {
        Factor::Packed(l) => std_normal_packed(l, g, &mut sink),
        Factor::Dense(l) => std_normal_dense(l, g, &mut sink),
    };
    Ok(finish(d, mu_sq, l_sq, log_sum))
}

/// The gradients of [`kl_grad_fixed`]: `upstream · ∂KL/∂(argument)`, the
/// factor gradients dense with zeros above the diagonal.
///
/// ```
/// use gaussian_kl::full::{self, KlGradFixed};
/// let i = [[1.0f64, 0.0], [0.0, 1.0]];
/// let (kl, g): (f64, KlGradFixed<f64, 2>) = full::kl_grad_fixed(&[1.0, 0.0], &i, &[0.0; 2], &i, 1.0)?;
/// assert_eq!(kl, 0.5); // ½‖μ_p − μ_q‖²
/// assert_eq!((g.mean_p, g.mean_q), ([1.0, 0.0], [-1.0, 0.0]));
/// assert_eq!(g.factor_p, [[0.0; 2]; 2]); // L_p = L_q: no factor gradient
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlGradFixed<T, const D: usize> {
    /// `∂/∂μ_p`.
    pub mean_p: [T; D],
    /// `∂/∂L_p` (lower triangle; zeros above).
    pub factor_p: [[T; D]; D],
    /// `∂/∂μ_q`.
    pub mean_q: [T; D],
    /// `∂/∂L_q` (lower triangle; zeros above).
    pub factor_q: [[T; D]; D],
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

/// A dense row-major `D × D` factor as a [`Gaussian`], its diagonal checked
/// under the name `what`.
fn fixed_dense<'a, T: Real, const D: usize>(
    what: &'static str,
    mean: &'a [T; D],
    factor: &'a [[T; D]; D],
) -> Result<Gaussian<'a, T>, Error> {
    let l = MatRef {
        d: D,
        data: factor.as_flattened(),
        row_stride: D,
        col_stride: 1,
    };
    l.check_diagonal(what, None)?;
    Ok(Gaussian {
        mean,
        factor: Factor::Dense(l),
    })
}

/// [`kl_grad`] for compile-time dimension `D` with dense row-major factors
/// (`factor[i][j]`, `j ≤ i`, plain positive diagonal; the upper triangle is
/// ignored), everything on the stack: returns the KL and the gradients. The
/// same kernel as the runtime one: results are bit-identical to
/// [`kl_grad`] on [`MatRef::row_major`] views of the same arrays.
///
/// # Errors
/// [`Error::NonPositiveDiagonal`] (`"factor_p"`, `"factor_q"`) if a
/// diagonal entry is `≤ 0`.
///
/// ```
/// use gaussian_kl::full;
/// let l = [[1.0f64, 0.0], [0.5, 2.0]];
/// let (kl, g) = full::kl_grad_fixed(&[0.0, 0.0], &l, &[0.0, 1.0], &l, 1.0)?;
/// assert!((kl - 0.125).abs() < 1e-15);
/// assert_eq!(g.mean_p, [-g.mean_q[0], -g.mean_q[1]]);
/// assert_eq!(g.factor_q[0][1], 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_fixed<T: Real, const D: usize>(
    mean_p: &[T; D],
    factor_p: &[[T; D]; D],
    mean_q: &[T; D],
    factor_q: &[[T; D]; D],
    upstream: T,
) -> Result<(T, KlGradFixed<T, D>), Error> {
    let q = fixed_dense("factor_q", mean_q, factor_q)?;
    let p = fixed_dense("factor_p", mean_p, factor_p)?;
    let mut stack = StackWork::<T, D>::new();
    let mut wk = stack.split();
    let mut out = KlGradFixed {
        mean_p: [T::ZERO; D],
        factor_p: [[T::ZERO; D]; D],
        mean_q: [T::ZERO; D],
        factor_q: [[T::ZERO; D]; D],
    };
    let grad = Grads::new(
        GradMut::new(&mut out.mean_p, out.factor_p.as_flattened_mut()),
        GradMut::new(&mut out.mean_q, out.factor_q.as_flattened_mut()),
    );
    let kl = kl_grad_views(&p, &q, upstream, grad, &mut wk)?;
    Ok((kl, out))
}

/// [`kl_grad`] for compile-time dimension `D` and packed factors, with the
/// workspace on the stack. Bit-identical to [`kl_grad`].
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"factor_p"`, `"factor_q"`) if a factor's
/// `d` is not `D`; the gradient shape errors of [`kl_grad`].
///
/// ```
/// use gaussian_kl::{full, GradMut, Grads, PackedTril};
/// let (mu_p, raw_p) = ([0.1f64, -0.3], [0.2, 0.5, -0.1]);
/// let (mu_q, raw_q) = ([0.0f64, 0.4], [0.0, -0.2, 0.3]);
/// let (mut g_mp, mut g_lp, mut g_mq, mut g_lq) = ([0.0; 2], [0.0; 3], [0.0; 2], [0.0; 3]);
/// let g = Grads::new(GradMut::new(&mut g_mp, &mut g_lp), GradMut::new(&mut g_mq, &mut g_lq));
/// let kl = full::kl_grad_packed_fixed::<f64, 2>(
///     &mu_p, PackedTril::new(2, &raw_p)?, &mu_q, PackedTril::new(2, &raw_q)?, 1.0, g)?;
/// assert!(kl > 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_grad_packed_fixed<T: Real, const D: usize>(
    mean_p: &[T; D],
    factor_p: PackedTril<'_, T>,
    mean_q: &[T; D],
    factor_q: PackedTril<'_, T>,
    upstream: T,
    grad: Grads<GradMut<'_, T>>,
) -> Result<T, Error> {
    let p = fixed_packed("factor_p", mean_p, factor_p)?;
    let q = fixed_packed("factor_q", mean_q, factor_q)?;
    check_sink(["grad.p.mean", "grad.p.factor"], &p, &grad.p)?;
    check_sink(["grad.q.mean", "grad.q.factor"], &q, &grad.q)?;
    let mut stack = StackWork::<T, D>::new();
    let mut wk = stack.split();
    kl_grad_views(&p, &q, upstream, grad, &mut wk)
}

/// A packed factor of dimension `D` (checked, named `what`) as a [`Gaussian`].
pub(crate) fn fixed_packed<'a, T: Real, const D: usize>(
    what: &'static str,
    mean: &'a [T; D],
    factor: PackedTril<'a, T>,
) -> Result<Gaussian<'a, T>, Error> {
    if factor.d != D {
        return Err(Error::DimensionMismatch {
            what,
            expected: D,
            found: factor.d,
        });
    }
    factor.check(what)?;
    Ok(Gaussian {
        mean,
        factor: Factor::Packed(factor),
    })
}
