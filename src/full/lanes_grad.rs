//! Lockstep SIMD gradient kernel: one pair per lane.
//!
//! The fused forward + backward pass of
//! [`kl_grad_unpacked`](super::grad::kl_grad_unpacked) run on a block of `L`
//! pairs at once (`L` = lanes of the dispatched level), lane `l` holding
//! pair `l` of the block. The block is gathered exactly as the forward
//! lockstep kernel gathers it ([`lanes::gather`], or, for a full block of
//! consecutive row-major pairs with log diagonals, the level's in-register
//! transposes where it has them, AVX-512 today). Both passes run in 4 × 4
//! register tiles of the block's `d × d` vectors: the forward `y`, `M =
//! L_q⁻¹ L_p` by row blocks of 4 from the top (the forward kernel's own
//! [`lanes::block`]), the backward
//! `L_qᵀ [z | W] = [y | M]` and `∂/∂L_q = −tril(z yᵀ + W Mᵀ)` by row blocks
//! from the bottom ([`backward`]), each tile's products with the finished
//! rows in 16 accumulators (8 loads per 16 FMAs; the dot-product order
//! loads twice per FMA on one dependency chain per entry), the rows past
//! the last whole block entry by entry. The gradients are packed in place
//! and scattered back to each pair's rows (by the inverse transposes on
//! the fast path: bit for bit the element scatter) and *added* there, so
//! that a Gaussian shared by several pairs (broadcasting, all pairs)
//! receives the sum of its pairs' gradients, in pair order. (With the
//! unpack tile networks and the paired `f32` inverse of even short records,
//! measured on Zen 4 (EPYC), AVX-512, 4096 pairs, median of 5 alternating
//! runs, M pairs/s before → after, f32 / f64: d = 3: 97.7 → 104.0 / 51.1 →
//! 55.4; d = 4: 40.9 → 43.3 / 22.2 → 31.5; d = 8: 10.6 → 14.9 / 8.0 → 9.5;
//! d = 12 and 16 within 5 %, where the passes dominate.)
//!
//! Flops per pair (FMAs): forward `d³/6 + d²/2`, backward `W` `d³/6`,
//! `W Mᵀ` `d³/6`, `z` and `z yᵀ` `d²`: at d = 4, 8, 16, 32 the whole is
//! 3.9, 3.4, 3.2, 3.1× the forward's, so `kl_grad ≤ 3 × kl` needs the
//! gradient's arithmetic to run faster than `kl`'s, or `kl`'s fixed costs
//! (gather, `exp`) to dominate. Measured (Sapphire Rapids-class Xeon,
//! AVX-512, f32, `roofline --op kl_grad --op kl`, two runs): kl_grad/kl
//! 3.5× at d = 4, 3.0–3.1× at 8, 3.3–3.4× at 16, 2.6–2.7× at 32 (was 3.6,
//! 4.9, 4.5–4.8, 3.3–3.5×; 1.0, 1.6, 1.4, 1.3× the pairs/s).
//!
//! Differences from the scalar kernel, all within rounding: fused
//! multiply-adds, multiplication by `1 / L_qᵢᵢ` instead of division, and
//! `M`'s diagonal as `exp(raw_p − raw_q)` for log diagonals.
//!
//! For `d ≤ 16` the block lives on the stack, larger `d` use a caller's
//! workspace (`(3d² + 4d) · lanes` scalars); above a measured crossover
//! (`f32` d = 64 with AVX-512, where the block is 0.8 MB; see
//! `batch::grad_lanes_max_d`) [`Kernel::Auto`](crate::Kernel::Auto) runs the
//! blocked kernel ([`blocked_grad`](super::blocked_grad)) instead. Row-major pairs with `d ≤ 16` run a copy of the
//! kernel compiled for their `d`: 1.2–1.5× faster at `d = 3–8`, and 2× at
//! `d = 12` and 16 since the tile loops lost their bounds checks (Zen 4,
//! AVX-512, 4096 pairs, alternated runs, M pairs/s: `f32` d = 12 3.5 → 6.7,
//! d = 16 1.3–2.0 → 3.5–3.9; `f64` d = 12 1.2 → 2.6): the runtime-`d` copy
//! keeps its transposes' record offsets and its index arithmetic in
//! scalar registers and on the stack. Each copy is compiled once per SIMD
//! level, scalar type and `d`: a release build that calls the batched
//! gradient for `f32` and `f64` took 118 s instead of 88 s with copies up to
//! 16 instead of 8 (same machine). They stop at the default layout.

use super::lanes::{self, Bufs, Idx, Job, MAX_FIXED_D, Pairs, RowMajor, Side, at, four, head};
use crate::real::Real;
use crate::simd::{Get, Level, Put, Simd, Zeroable, untranspose};
use crate::tril::{Diagonal, Layout, row_start};
use pulp::WithSimd;
use pulp::bytemuck::{Pod, cast_slice, cast_slice_mut};

/// The outputs of a batch: `kl[k]` for every pair `k < kl.len()`, and the
/// gradients, *added* into the rows of their Gaussians (the caller zeroes
/// them first), or with `overwrite` (each Gaussian in exactly one pair)
/// written there. `upstream` holds one weight per pair, or one for all.
pub(crate) struct GradOut<'a, T> {
    pub(crate) kl: &'a mut [T],
    pub(crate) upstream: &'a [T],
    pub(crate) means_p: &'a mut [T],
    pub(crate) factors_p: &'a mut [T],
    pub(crate) means_q: &'a mut [T],
    pub(crate) factors_q: &'a mut [T],
    pub(crate) overwrite: bool,
}

impl<T> GradOut<'_, T> {
    /// Re-borrows the outputs.
    pub(crate) fn reborrow(&mut self) -> GradOut<'_, T> {
        GradOut {
            kl: self.kl,
            upstream: self.upstream,
            means_p: self.means_p,
            factors_p: self.factors_p,
            means_q: self.means_q,
            factors_q: self.factors_q,
            overwrite: self.overwrite,
        }
    }
}

/// Computes every pair's KL and gradients. The caller has checked every
/// shape and (for plain diagonals) positivity, and zeroed the gradient
/// outputs; for `d > 16`, `work` holds at least `(3d² + 4d) · lanes`
/// scalars (the batch layer's scratch). Returns `false`
/// (touching nothing) if the host lacks `level`.
pub(crate) fn kl_grad_lanes<T: Real>(
    level: Level,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: GradOut<'_, T>,
    work: &mut [T],
) -> bool {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match d {
                $($n => return level.dispatch(FixedOp::<T, $n> { p, q, pairs, out }).is_some(),)*
                _ => {}
            }
        };
    }
    if p.layout == Layout::RowMajor && q.layout == Layout::RowMajor {
        fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
    level
        .dispatch(RuntimeOp {
            d,
            p,
            q,
            pairs,
            out,
            work,
        })
        .is_some()
}

struct FixedOp<'a, T, const D: usize> {
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: GradOut<'a, T>,
}

impl<T: Real, const D: usize> WithSimd for FixedOp<'_, T, D> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let z = T::V::<S>::zeroed();
        let (mut a, mut m, mut w) = ([[z; D]; D], [[z; D]; D], [[z; D]; D]);
        let (mut y, mut zv, mut lpd, mut lqd) = ([z; D], [z; D], [z; D], [z; D]);
        let mut bufs = Block {
            fwd: (a.as_flattened_mut(), m.as_flattened_mut(), &mut y[..]),
            w: w.as_flattened_mut(),
            z: &mut zv,
            lpd: &mut lpd,
            lqd: &mut lqd,
        };
        let job = Job::new(D, self.p, self.q, RowMajor, RowMajor, self.pairs);
        run_blocks::<T, S, _>(s, job, self.out, &mut bufs);
    }
}

struct RuntimeOp<'a, T> {
    d: usize,
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: GradOut<'a, T>,
    work: &'a mut [T],
}

impl<T: Real> WithSimd for RuntimeOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let (d, lanes) = (self.d, T::lanes::<S>());
        let mut stack = StackBlock::<T::V<S>>::new();
        let mut bufs = if d <= MAX_FIXED_D {
            let (fwd, w, rest) = (stack.fwd.bufs(d), &mut stack.w[..d * d], &mut stack.rest);
            let (z, rest) = rest.split_at_mut(MAX_FIXED_D);
            let (lpd, lqd) = rest.split_at_mut(MAX_FIXED_D);
            let (z, lpd, lqd) = (&mut z[..d], &mut lpd[..d], &mut lqd[..d]);
            Block {
                fwd,
                w,
                z,
                lpd,
                lqd,
            }
        } else {
            let (a, rest) = self.work.split_at_mut(d * d * lanes);
            let (m, rest) = rest.split_at_mut(d * d * lanes);
            let (w, rest) = rest.split_at_mut(d * d * lanes);
            let (y, rest) = rest.split_at_mut(d * lanes);
            let (zv, rest) = rest.split_at_mut(d * lanes);
            let (lpd, rest) = rest.split_at_mut(d * lanes);
            let lqd = &mut rest[..d * lanes];
            Block {
                fwd: (cast_slice_mut(a), cast_slice_mut(m), cast_slice_mut(y)),
                w: cast_slice_mut(w),
                z: cast_slice_mut(zv),
                lpd: cast_slice_mut(lpd),
                lqd: cast_slice_mut(lqd),
            }
        };
        run::<T, S>(s, d, self.p, self.q, self.pairs, self.out, &mut bufs);
    }
}

/// The block of a `d ≤` [`MAX_FIXED_D`] on the stack.
struct StackBlock<V> {
    fwd: lanes::StackBlock<V>,
    w: [V; MAX_FIXED_D * MAX_FIXED_D],
    /// `z`, `lpd`, `lqd`.
    rest: [V; 3 * MAX_FIXED_D],
}

impl<V: Zeroable + Copy> StackBlock<V> {
    #[inline(always)]
    fn new() -> Self {
        let z = V::zeroed();
        StackBlock {
            fwd: lanes::StackBlock::new(),
            w: [z; MAX_FIXED_D * MAX_FIXED_D],
            rest: [z; 3 * MAX_FIXED_D],
        }
    }
}

/// One block's vectors.
struct Block<'a, V> {
    /// `(a, m, y)` of the forward kernel: `L_q`, `L_p` then `M` (then
    /// `upstream · ∂/∂L_q` packed as `w`), `y`.
    fwd: Bufs<'a, V>,
    /// `W`, then `upstream · ∂/∂L_p` packed (row `i` from `i(i + 1)/2`).
    w: &'a mut [V],
    /// `z`, then `upstream · z` (`= ∂/∂μ_q = −∂/∂μ_p`).
    z: &'a mut [V],
    /// `L_pᵢᵢ`.
    lpd: &'a mut [V],
    /// `L_qᵢᵢ`.
    lqd: &'a mut [V],
}

#[inline(always)]
fn run<T: Real, S: Simd>(
    s: S,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: GradOut<'_, T>,
    bufs: &mut Block<'_, T::V<S>>,
) {
    if p.layout == Layout::RowMajor && q.layout == Layout::RowMajor {
        let job = Job::new(d, p, q, RowMajor, RowMajor, pairs);
        run_blocks::<T, S, _>(s, job, out, bufs);
    } else {
        let job = Job::new(d, p, q, p.layout, q.layout, pairs);
        run_blocks::<T, S, _>(s, job, out, bufs);
    }
}

/// Every block: gather, forward, backward, scatter.
#[inline(always)]
fn run_blocks<T: Real, S: Simd, I: Idx>(
    s: S,
    job: Job<'_, T, I>,
    mut out: GradOut<'_, T>,
    bufs: &mut Block<'_, T::V<S>>,
) {
    let lanes = T::lanes::<S>();
    let (d, p, q) = (job.d, job.p, job.q);
    let n = out.kl.len();
    let mut plain_ld = [T::ZERO; 16];
    let mut start = 0;
    while start < n {
        let valid = (n - start).min(lanes);
        // A full block of consecutive row-major pairs with log diagonals is
        // transposed in and out by the level's shuffles where it has them.
        // (No closures here: they would not inherit the level's target
        // features, and the shuffles would stay calls.)
        let mut fast = lanes::fast_block(job, valid, lanes, start);
        if let Some(k0) = fast
            && !lanes::gather_fast::<T, S>(s, d, p, q, k0, &mut bufs.fwd)
        {
            fast = None;
        }
        if fast.is_none() {
            lanes::gather::<T, S, I>(job, n, start, &mut bufs.fwd, &mut plain_ld);
        }
        let upstream = out.upstream;
        let mut g = T::vsplat(s, upstream[0]);
        if upstream.len() != 1 {
            let gl: &mut [T] = cast_slice_mut(core::slice::from_mut(&mut g));
            for (l, v) in gl.iter_mut().enumerate() {
                *v = upstream[start + l.min(valid - 1)];
            }
        }
        let kl_v = block::<T, S>(s, d, p.diagonal, q.diagonal, bufs, &plain_ld, g);
        let kl_l: &[T] = cast_slice(core::slice::from_ref(&kl_v));
        out.kl[start..start + valid].copy_from_slice(&kl_l[..valid]);
        let scattered = match fast {
            Some(k0) => scatter_fast::<T, S>(s, d, k0, bufs, &mut out),
            None => false,
        };
        if !scattered {
            scatter::<T, S, I>(job, start, valid, bufs, &mut out);
        }
        start += valid;
    }
}

/// Lane `l`'s gradients, for `l < valid`, into its pair's rows: added, or
/// written with `overwrite`.
#[inline(always)]
fn scatter<T: Real, S: Simd, I: Idx>(
    job: Job<'_, T, I>,
    start: usize,
    valid: usize,
    bufs: &Block<'_, T::V<S>>,
    out: &mut GradOut<'_, T>,
) {
    let lanes = T::lanes::<S>();
    let Job {
        d, ip, iq, pairs, ..
    } = job;
    let t = row_start(d);
    let wf: &[T] = cast_slice(&*bufs.w);
    let mf: &[T] = cast_slice(&*bufs.fwd.1);
    let zf: &[T] = cast_slice(&*bufs.z);
    for l in 0..valid {
        let (kp, kq) = pairs.get(start + l);
        let (gmp, gmq) = (
            &mut out.means_p[kp * d..][..d],
            &mut out.means_q[kq * d..][..d],
        );
        let (glp, glq) = (
            &mut out.factors_p[kp * t..][..t],
            &mut out.factors_q[kq * t..][..t],
        );
        if out.overwrite {
            for i in 0..d {
                let gz = zf[i * lanes + l];
                gmp[i] = -gz;
                gmq[i] = gz;
                for j in 0..=i {
                    let at = (row_start(i) + j) * lanes + l;
                    glp[ip.at(d, i, j)] = wf[at];
                    glq[iq.at(d, i, j)] = mf[at];
                }
            }
        } else {
            for i in 0..d {
                let gz = zf[i * lanes + l];
                gmp[i] -= gz;
                gmq[i] += gz;
                for j in 0..=i {
                    let at = (row_start(i) + j) * lanes + l;
                    glp[ip.at(d, i, j)] += wf[at];
                    glq[iq.at(d, i, j)] += mf[at];
                }
            }
        }
    }
}

/// The gradients of the `lanes` consecutive pairs from `k0` (row-major
/// factors) into their rows by the level's shuffles
/// ([`untranspose`](crate::simd::untranspose)), added or (`overwrite`)
/// written, bit for bit what [`scatter`] writes. Returns `false` (having
/// written nothing) where the level has no shuffle path.
#[inline(always)]
fn scatter_fast<T: Real, S: Simd>(
    s: S,
    d: usize,
    k0: usize,
    bufs: &Block<'_, T::V<S>>,
    out: &mut GradOut<'_, T>,
) -> bool {
    let (lanes, tri, ow) = (T::lanes::<S>(), row_start(d), out.overwrite);
    let (Some(mp), Some(mq), Some(fp), Some(fq)) = (
        out.means_p.get_mut(k0 * d..(k0 + lanes) * d),
        out.means_q.get_mut(k0 * d..(k0 + lanes) * d),
        out.factors_p.get_mut(k0 * tri..(k0 + lanes) * tri),
        out.factors_q.get_mut(k0 * tri..(k0 + lanes) * tri),
    ) else {
        return false;
    };
    let mut means = Means { p: mp, q: mq, ow };
    if !untranspose::<T, S>(s, d, &mut Rows(&*bufs.z), &mut means) {
        return false;
    }
    let (w, m) = (head(bufs.w, 0, tri), head(bufs.fwd.1, 0, tri));
    untranspose::<T, S>(s, tri, &mut Rows(w), &mut Records { dst: fp, ow });
    untranspose::<T, S>(s, tri, &mut Rows(m), &mut Records { dst: fq, ow });
    true
}

/// Vector `j` of a slice, as an untranspose input.
struct Rows<'a, V>(&'a [V]);
impl<V: Zeroable + Copy> Get<V> for Rows<'_, V> {
    #[inline(always)]
    fn get(&mut self, j: usize) -> V {
        self.0.get(j).copied().unwrap_or_else(V::zeroed)
    }
}

/// `−v` into `p`'s and `v` into `q`'s mean gradients (added, or written).
struct Means<'a, T> {
    p: &'a mut [T],
    q: &'a mut [T],
    ow: bool,
}
impl<T: Real, V: Pod> Put<V> for Means<'_, T> {
    #[inline(always)]
    fn put(&mut self, off: usize, v: V, skip: usize) {
        let v: &[T] = cast_slice(core::slice::from_ref(&v));
        if skip == 0 {
            // A whole vector: a fixed length, so no `memcpy` call.
            if let (Some(p), Some(q)) = (
                self.p.get_mut(off..off + v.len()),
                self.q.get_mut(off..off + v.len()),
            ) {
                means_into(p, q, v, self.ow);
            }
            return;
        }
        let (Some(p), Some(q), Some(v)) = (
            self.p.get_mut(off + skip..off + v.len()),
            self.q.get_mut(off + skip..off + v.len()),
            v.get(skip..),
        ) else {
            return;
        };
        means_into(p, q, v, self.ow);
    }
}

/// `−v` into `p` and `v` into `q` (added, or written with `ow`).
#[inline(always)]
fn means_into<T: Real>(p: &mut [T], q: &mut [T], v: &[T], ow: bool) {
    for ((p, q), &x) in p.iter_mut().zip(q.iter_mut()).zip(v) {
        if ow {
            (*p, *q) = (-x, x);
        } else {
            (*p, *q) = (*p - x, *q + x);
        }
    }
}

/// Records of a factor gradient (added, or written).
struct Records<'a, T> {
    dst: &'a mut [T],
    ow: bool,
}
impl<T: Real, V: Pod> Put<V> for Records<'_, T> {
    #[inline(always)]
    fn put(&mut self, off: usize, v: V, skip: usize) {
        let v: &[T] = cast_slice(core::slice::from_ref(&v));
        if skip == 0 {
            // A whole vector: a fixed length, so no `memcpy` call.
            if let Some(dst) = self.dst.get_mut(off..off + v.len()) {
                records_into(dst, v, self.ow);
            }
            return;
        }
        let (Some(dst), Some(v)) = (self.dst.get_mut(off + skip..off + v.len()), v.get(skip..))
        else {
            return;
        };
        records_into(dst, v, self.ow);
    }
}

/// `v` into `dst` (added, or written with `ow`).
#[inline(always)]
fn records_into<T: Real>(dst: &mut [T], v: &[T], ow: bool) {
    if ow {
        dst.copy_from_slice(v);
    } else {
        for (o, &x) in dst.iter_mut().zip(v) {
            *o += x;
        }
    }
}

/// The forward and backward passes of one gathered block, `g` the lanes'
/// upstream weights; returns the lanes' KL and leaves `upstream · ∂/∂L_p`
/// in `w`, `upstream · ∂/∂L_q` in `m` (both packed: row `i` from
/// `i(i + 1)/2`) and `upstream · z` in `z`.
#[inline(always)]
fn block<T: Real, S: Simd>(
    s: S,
    d: usize,
    dp: Diagonal,
    dq: Diagonal,
    bufs: &mut Block<'_, T::V<S>>,
    plain_ld: &[T; 16],
    g: T::V<S>,
) -> T::V<S> {
    let ld = diagonals::<T, S>(s, d, (dp, dq), bufs, plain_ld);
    // Forward: y and M in place, the KL.
    let (a, m, y) = (&mut *bufs.fwd.0, &mut *bufs.fwd.1, &mut *bufs.fwd.2);
    let kl = lanes::block::<T, S>(s, d, a, m, y, ld);
    backward::<T, S>(s, d, dq, bufs, g);
    grad_p::<T, S>(s, d, dp, bufs, g);
    kl
}

/// Prepares the diagonals of a gathered block and returns the lanes'
/// `Σ log L_pᵢᵢ − Σ log L_qᵢᵢ`.
#[inline(always)]
fn diagonals<T: Real, S: Simd>(
    s: S,
    d: usize,
    (dp, dq): (Diagonal, Diagonal),
    bufs: &mut Block<'_, T::V<S>>,
    plain_ld: &[T; 16],
) -> T::V<S> {
    let lanes = T::lanes::<S>();
    let Block {
        fwd: (a, m, _),
        lpd,
        lqd,
        ..
    } = bufs;
    let (a, m, lpd, lqd) = (&mut **a, &mut **m, &mut **lpd, &mut **lqd);
    let one = T::vsplat(s, T::ONE);
    let zero = T::vsplat(s, T::ZERO);

    // Diagonals, as the forward lockstep kernel prepares them, keeping the
    // plain values for the backward pass: a[i][i] ← 1 / L_qᵢᵢ,
    // m[i][i] ← L_pᵢᵢ / L_qᵢᵢ.
    let mut ld = zero;
    for i in 0..d {
        let ii = i * d + i;
        let (rp, rq) = (m[ii], a[ii]);
        if dp == Diagonal::Log && dq == Diagonal::Log {
            // Two exps: L_qᵢᵢ and L_pᵢᵢ follow from them.
            ld = T::vadd(s, ld, T::vsub(s, rp, rq));
            let ratio = T::vexp(s, T::vsub(s, rp, rq));
            let inv = T::vexp(s, T::vsub(s, zero, rq));
            let lq = T::vdiv(s, one, inv);
            m[ii] = ratio;
            a[ii] = inv;
            lqd[i] = lq;
            lpd[i] = T::vmul(s, ratio, lq);
        } else {
            let lp = if dp == Diagonal::Log {
                T::vexp(s, rp)
            } else {
                rp
            };
            let lq = if dq == Diagonal::Log {
                T::vexp(s, rq)
            } else {
                rq
            };
            lpd[i] = lp;
            lqd[i] = lq;
            m[ii] = T::vdiv(s, lp, lq);
            a[ii] = T::vdiv(s, one, lq);
        }
    }
    if dp == Diagonal::Plain || dq == Diagonal::Plain {
        let v: &mut [T] = cast_slice_mut(core::slice::from_mut(&mut ld));
        v.copy_from_slice(&plain_ld[..lanes]);
    }

    ld
}

/// The backward pass of one block after the forward one, `∂/∂L_q` into `m`.
///
/// `L_qᵀ z = y` first ([`solve_z`]), then, row block by row block from the
/// bottom, `L_qᵀ W = M` (rows `i0..i0 + 4` of `W`, [`solve_tile`]) and at
/// once the same rows of `∂/∂L_q` (`z yᵀ + W Mᵀ`, [`grad_tile`]) into `M`'s
/// rows: both in 4 × 4 register tiles (16 accumulators, 8 loads per 16
/// FMAs), the rows above the last whole block (`i < d mod 4`) and the
/// columns left of the tiles entry by entry ([`solve_entry`],
/// [`grad_entry`]).
#[inline(always)]
fn backward<T: Real, S: Simd>(
    s: S,
    d: usize,
    dq: Diagonal,
    bufs: &mut Block<'_, T::V<S>>,
    g: T::V<S>,
) {
    let Block {
        fwd: (a, m, y),
        w,
        z,
        lqd,
        ..
    } = bufs;
    let (a, m, y, w, z, lqd) = (&**a, &mut **m, &**y, &mut **w, &mut **z, &**lqd);
    let ctx = Ctx {
        s,
        d,
        dq,
        g,
        a,
        y,
        lqd,
    };
    solve_z::<T, S>(&ctx, z);
    let z = &*z;
    let rem = d % 4;
    // Row blocks i0..i0 + 4 from the bottom, then the rows i < rem.
    let mut i0 = d;
    while i0 >= rem + 4 {
        i0 -= 4;
        solve_tile::<T, S, true>(&ctx, i0, i0, m, w);
        let mut j0 = i0;
        while j0 >= rem + 4 {
            j0 -= 4;
            solve_tile::<T, S, false>(&ctx, i0, j0, m, w);
        }
        // From the bottom row up: each reads the rows below it.
        for i in (i0..i0 + 4).rev() {
            for j in 0..rem {
                solve_entry::<T, S>(&ctx, i, j, m, w);
            }
        }
        // ∂/∂L_q: the diagonal tile first (it reads M's rows i0..i0 + 4),
        // then the tiles left of it (they read rows j < i0, still M).
        grad_tile::<T, S, true>(&ctx, i0, i0, z, w, m);
        let mut j0 = i0;
        while j0 >= rem + 4 {
            j0 -= 4;
            grad_tile::<T, S, false>(&ctx, i0, j0, z, w, m);
        }
        for i in i0..i0 + 4 {
            for j in 0..rem {
                grad_entry::<T, S>(&ctx, i, j, z, w, m);
            }
        }
    }
    for i in (0..rem).rev() {
        for j in 0..=i {
            solve_entry::<T, S>(&ctx, i, j, m, w);
        }
        // The diagonal first: it reads M's row i.
        grad_entry::<T, S>(&ctx, i, i, z, w, m);
        for j in 0..i {
            grad_entry::<T, S>(&ctx, i, j, z, w, m);
        }
    }
}

/// What every step of the backward pass reads.
struct Ctx<'a, S, V> {
    s: S,
    d: usize,
    dq: Diagonal,
    /// The lanes' upstream weights.
    g: V,
    /// `L_q` with `1 / L_qᵢᵢ` on its diagonal.
    a: &'a [V],
    y: &'a [V],
    /// `L_qᵢᵢ`.
    lqd: &'a [V],
}

/// `z = L_q⁻ᵀ y`, rows in blocks of 4 from the bottom (4 independent
/// accumulators over the rows below the block, then the block's triangle).
#[inline(always)]
fn solve_z<T: Real, S: Simd>(c: &Ctx<'_, S, T::V<S>>, z: &mut [T::V<S>]) {
    let (s, d, a) = (c.s, c.d, c.a);
    let rem = d % 4;
    let mut i0 = d;
    while i0 >= rem + 4 {
        i0 -= 4;
        let mut acc = four(c.y, i0);
        let rows = a.get((i0 + 4) * d + i0..).unwrap_or(&[]).chunks(d.max(1));
        for (ak, &zk) in rows.zip(z.get(i0 + 4..d).unwrap_or(&[])) {
            let Some(ak) = ak.first_chunk::<4>() else {
                break;
            };
            for r in 0..4 {
                acc[r] = T::vneg_mul_add(s, ak[r], zk, acc[r]);
            }
        }
        for r in (0..4).rev() {
            let i = i0 + r;
            let zi = T::vmul(s, acc[r], at(a, i * d + i));
            if let Some(v) = z.get_mut(i) {
                *v = zi;
            }
            let ai = four(a, i * d + i0);
            for r2 in 0..r {
                acc[r2] = T::vneg_mul_add(s, ai[r2], zi, acc[r2]);
            }
        }
    }
    for i in (0..rem).rev() {
        let mut acc = at(c.y, i);
        for k in i + 1..d {
            acc = T::vneg_mul_add(s, at(a, k * d + i), at(z, k), acc);
        }
        if let Some(v) = z.get_mut(i) {
            *v = T::vmul(s, acc, at(a, i * d + i));
        }
    }
}

/// Rows `i0..i0 + 4`, columns `j0..j0 + 4` of `W = L_q⁻ᵀ M` (`DIAG`:
/// `j0 = i0`, the entries `j ≤ i` only), the rows below finished: the
/// products with those rows in registers, then the block's triangle.
#[inline(always)]
fn solve_tile<T: Real, S: Simd, const DIAG: bool>(
    c: &Ctx<'_, S, T::V<S>>,
    i0: usize,
    j0: usize,
    m: &[T::V<S>],
    w: &mut [T::V<S>],
) {
    let (s, d, a) = (c.s, c.d, c.a);
    let zero = T::vsplat(s, T::ZERO);
    let mut acc = [[zero; 4]; 4];
    for (r, acc) in acc.iter_mut().enumerate() {
        let mr = four(m, (i0 + r) * d + j0);
        for q in 0..4 {
            if !DIAG || q <= r {
                acc[q] = mr[q];
            }
        }
    }
    // Row chunks of known stride, no bounds checks: the accumulators stay
    // in registers.
    let ar = a.get((i0 + 4) * d + i0..).unwrap_or(&[]).chunks(d.max(1));
    let wr = w.get((i0 + 4) * d + j0..).unwrap_or(&[]).chunks(d.max(1));
    for (ak, wk) in ar.zip(wr).take(d.saturating_sub(i0 + 4)) {
        let (Some(ak), Some(wk)) = (ak.first_chunk::<4>(), wk.first_chunk::<4>()) else {
            break;
        };
        for r in 0..4 {
            for q in 0..4 {
                acc[r][q] = T::vneg_mul_add(s, ak[r], wk[q], acc[r][q]);
            }
        }
    }
    for r in (0..4).rev() {
        let i = i0 + r;
        let inv = at(a, i * d + i);
        let mut wr = [zero; 4];
        for q in 0..4 {
            if !DIAG || q <= r {
                wr[q] = T::vmul(s, acc[r][q], inv);
                if let Some(v) = w.get_mut(i * d + j0 + q) {
                    *v = wr[q];
                }
            }
        }
        let ai = four(a, i * d + i0);
        for r2 in 0..r {
            for q in 0..4 {
                if !DIAG || q <= r2 {
                    acc[r2][q] = T::vneg_mul_add(s, ai[r2], wr[q], acc[r2][q]);
                }
            }
        }
    }
}

/// `W[i][j] = (M[i][j] − Σ_{k>i} L_q[k][i] W[k][j]) / L_qᵢᵢ`, the rows
/// below finished.
#[inline(always)]
fn solve_entry<T: Real, S: Simd>(
    c: &Ctx<'_, S, T::V<S>>,
    i: usize,
    j: usize,
    m: &[T::V<S>],
    w: &mut [T::V<S>],
) {
    let (s, d, a) = (c.s, c.d, c.a);
    let mut acc = at(m, i * d + j);
    for k in i + 1..d {
        acc = T::vneg_mul_add(s, at(a, k * d + i), at(w, k * d + j), acc);
    }
    if let Some(v) = w.get_mut(i * d + j) {
        *v = T::vmul(s, acc, at(a, i * d + i));
    }
}

/// `upstream · ∂/∂L_q[i][j]` from `s_ij` (the `(i, j)` entry of
/// `z yᵀ + W Mᵀ`).
#[inline(always)]
fn grad_q<T: Real, S: Simd>(c: &Ctx<'_, S, T::V<S>>, i: usize, j: usize, sij: T::V<S>) -> T::V<S> {
    let s = c.s;
    if i != j {
        return T::vmul(s, T::vsub(s, T::vsplat(s, T::ZERO), c.g), sij);
    }
    if c.dq == Diagonal::Log {
        T::vmul(
            s,
            c.g,
            T::vneg_mul_add(s, sij, at(c.lqd, i), T::vsplat(s, T::ONE)),
        )
    } else {
        T::vmul(s, c.g, T::vsub(s, at(c.a, i * c.d + i), sij))
    }
}

/// Rows `i0..i0 + 4`, columns `j0..j0 + 4` of `upstream · ∂/∂L_q` into `M`
/// (`DIAG`: `j0 = i0`, the entries `j ≤ i` only): `s_ij = zᵢ yⱼ +
/// Σ_{k≤j} W[i][k] M[j][k]`, the `k ≤ j0` every entry has in registers,
/// then each column's few more. Reads `M`'s rows `j0..j0 + 4`.
#[inline(always)]
fn grad_tile<T: Real, S: Simd, const DIAG: bool>(
    c: &Ctx<'_, S, T::V<S>>,
    i0: usize,
    j0: usize,
    z: &[T::V<S>],
    w: &[T::V<S>],
    m: &mut [T::V<S>],
) {
    let (s, d) = (c.s, c.d);
    let (zi, yj) = (four(z, i0), four(c.y, j0));
    let mut acc = [[T::vsplat(s, T::ZERO); 4]; 4];
    for r in 0..4 {
        for q in 0..4 {
            acc[r][q] = T::vmul(s, zi[r], yj[q]);
        }
    }
    {
        let n = j0 + 1;
        let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|r| head(w, (i0 + r) * d, n));
        let [m0, m1, m2, m3] = [0, 1, 2, 3].map(|q| head(&*m, (j0 + q) * d, n));
        let ws = w0.iter().zip(w1).zip(w2).zip(w3);
        let ms = m0.iter().zip(m1).zip(m2).zip(m3);
        for ((((&x0, &x1), &x2), &x3), (((&y0, &y1), &y2), &y3)) in ws.zip(ms) {
            let wk = [x0, x1, x2, x3];
            let mk = [y0, y1, y2, y3];
            for r in 0..4 {
                for q in 0..4 {
                    acc[r][q] = T::vmul_add(s, wk[r], mk[q], acc[r][q]);
                }
            }
        }
    }
    for q in 1..4 {
        for k in j0 + 1..=j0 + q {
            let mk = at(m, (j0 + q) * d + k);
            for r in 0..4 {
                if !DIAG || q <= r {
                    acc[r][q] = T::vmul_add(s, at(w, (i0 + r) * d + k), mk, acc[r][q]);
                }
            }
        }
    }
    for r in 0..4 {
        for q in 0..4 {
            if !DIAG || q <= r {
                let v = grad_q::<T, S>(c, i0 + r, j0 + q, acc[r][q]);
                if let Some(o) = m.get_mut((i0 + r) * d + j0 + q) {
                    *o = v;
                }
            }
        }
    }
}

/// `upstream · ∂/∂L_q[i][j]` into `M[i][j]`, from `M`'s rows `≤ j`.
#[inline(always)]
fn grad_entry<T: Real, S: Simd>(
    c: &Ctx<'_, S, T::V<S>>,
    i: usize,
    j: usize,
    z: &[T::V<S>],
    w: &[T::V<S>],
    m: &mut [T::V<S>],
) {
    let (s, d) = (c.s, c.d);
    let mut acc = T::vmul(s, at(z, i), at(c.y, j));
    for k in 0..=j {
        acc = T::vmul_add(s, at(w, i * d + k), at(m, j * d + k), acc);
    }
    let v = grad_q::<T, S>(c, i, j, acc);
    if let Some(o) = m.get_mut(i * d + j) {
        *o = v;
    }
}

/// `upstream · ∂/∂L_p` into `w` and `∂/∂L_q` (already scaled, in `m`)
/// packed in place (row-major lower triangles: entry `(i, j)` at
/// `i(i + 1)/2 + j`, which the transposed scatter reads as consecutive
/// vectors), and `upstream · z` into `z`. In place is safe: the packed
/// index never exceeds `i·d + j`, and the rows go in increasing order.
#[inline(always)]
fn grad_p<T: Real, S: Simd>(
    s: S,
    d: usize,
    dp: Diagonal,
    bufs: &mut Block<'_, T::V<S>>,
    g: T::V<S>,
) {
    let Block {
        w,
        z,
        lpd,
        fwd: (_, m, _),
        ..
    } = bufs;
    let (w, m, z, lpd) = (&mut **w, &mut **m, &mut **z, &**lpd);
    let one = T::vsplat(s, T::ONE);
    // ∂/∂L_p = upstream · (tril(W) − diag(1/L_pᵢᵢ)), upstream · z into z.
    let mut p = 0;
    for i in 0..d {
        for j in 0..=i {
            let wij = at(w, i * d + j);
            let v = if j < i {
                T::vmul(s, g, wij)
            } else if dp == Diagonal::Log {
                T::vmul(s, g, T::vsub(s, T::vmul(s, wij, at(lpd, i)), one))
            } else {
                T::vmul(s, g, T::vsub(s, wij, T::vdiv(s, one, at(lpd, i))))
            };
            let mij = at(m, i * d + j);
            if let (Some(wp), Some(mp)) = (w.get_mut(p), m.get_mut(p)) {
                (*wp, *mp) = (v, mij);
            }
            p += 1;
        }
        if let Some(zi) = z.get_mut(i) {
            *zi = T::vmul(s, g, *zi);
        }
    }
}
