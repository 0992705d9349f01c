//! Lockstep SIMD gradient kernel: one pair per lane.
//!
//! The fused forward + backward pass of
//! [`kl_grad_unpacked`](super::grad::kl_grad_unpacked) run on a block of `L`
//! pairs at once (`L` = lanes of the dispatched level), lane `l` holding
//! pair `l` of the block. The block is gathered exactly as the forward
//! lockstep kernel gathers it ([`lanes::gather`], or, for a full block of
//! consecutive row-major pairs with log diagonals, the level's in-register
//! transposes where it has them, AVX-512 today), its forward pass is that
//! kernel's ([`lanes::block`]), and the backward pass is the back
//! substitution `L_qᵀ [z | W] = [y | M]` of the scalar kernel, in its
//! left-looking (dot-product) order, fused with the rows of `∂/∂L_q`. The
//! gradients are then scattered back to each pair's rows (by the inverse
//! transposes on the fast path: bit for bit the element scatter) and *added*
//! there, so that a Gaussian shared by several pairs (broadcasting, all
//! pairs) receives the sum of its pairs' gradients, in pair order.
//!
//! Differences from the scalar kernel, all within rounding: fused
//! multiply-adds, multiplication by `1 / L_qᵢᵢ` instead of division, and
//! `M`'s diagonal as `exp(raw_p − raw_q)` for log diagonals.
//!
//! For `d ≤ 16` the block lives on the stack, larger `d` use a caller's
//! workspace (`(3d² + 4d) · lanes` scalars); above `d = 44` that block
//! leaves L2 and [`Kernel::Auto`](crate::Kernel::Auto) runs the blocked
//! kernel ([`blocked_grad`](super::blocked_grad)) instead. Row-major pairs with `d ≤ 8` run a copy of the
//! kernel compiled for their `d`: 1.2–1.5× faster there, within 10% at
//! `d = 16`, where the backward pass dominates. Each copy is compiled once
//! per SIMD level, scalar type and `d` (seconds of release build each), so
//! they stop at 8 and at the default layout.

use super::lanes::{self, Bufs, Idx, Job, MAX_FIXED_D, Pairs, RowMajor, Side};
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
        fixed!(1 2 3 4 5 6 7 8);
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
    /// `(a, m, y)` of the forward kernel: `L_q`, `L_p` then `M`, `y`.
    fwd: Bufs<'a, V>,
    /// `W`, then `upstream · ∂/∂L_p`.
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
                    let at = (i * d + j) * lanes + l;
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
                    let at = (i * d + j) * lanes + l;
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
    let mut lower = Lower::new(&*bufs.w, d);
    untranspose::<T, S>(s, tri, &mut lower, &mut Records { dst: fp, ow });
    let mut lower = Lower::new(&*bufs.fwd.1, d);
    untranspose::<T, S>(s, tri, &mut lower, &mut Records { dst: fq, ow });
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

/// The lower triangle of a `d × d` block of vectors in row-major packed
/// order, as an untranspose input (a cursor: sequential `j` step in O(1)).
struct Lower<'a, V> {
    src: &'a [V],
    d: usize,
    /// The packed index of `(i, c)`.
    next: usize,
    i: usize,
    c: usize,
}
impl<'a, V> Lower<'a, V> {
    #[inline(always)]
    fn new(src: &'a [V], d: usize) -> Self {
        Lower {
            src,
            d,
            next: 0,
            i: 0,
            c: 0,
        }
    }
}
impl<V: Zeroable + Copy> Get<V> for Lower<'_, V> {
    #[inline(always)]
    fn get(&mut self, j: usize) -> V {
        if j != self.next {
            // A jump (the overlapping last tile): find row and column.
            let (mut i, mut start) = (0, 0);
            while start + i < j {
                start += i + 1;
                i += 1;
            }
            (self.i, self.c, self.next) = (i, j - start, j);
        }
        let v = self
            .src
            .get(self.i * self.d + self.c)
            .copied()
            .unwrap_or_else(V::zeroed);
        self.next += 1;
        self.c += 1;
        if self.c > self.i {
            self.i += 1;
            self.c = 0;
        }
        v
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
/// in `w`, `upstream · ∂/∂L_q` in `m` and `upstream · z` in `z`.
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
    let (a, m, y, w, z, lqd) = (&mut **a, &mut **m, &mut **y, &mut **w, &mut **z, &mut **lqd);
    let one = T::vsplat(s, T::ONE);
    let zero = T::vsplat(s, T::ZERO);

    // Backward: L_qᵀ [z | W] = [y | M] by left-looking back substitution,
    // from the last row up: row i of W (j ≤ i) and z[i] from the finished
    // rows below, `(M[i][j] − Σ_{k>i} L_q[k][i] W[k][j]) / L_qᵢᵢ`, with one
    // store per entry. Each finished row is followed at once by its row of
    // ∂/∂L_q, which reads M's rows ≤ i and then overwrites M's row i.
    for i in (0..d).rev() {
        let inv = a[i * d + i];
        let mut acc = y[i];
        for k in i + 1..d {
            acc = T::vneg_mul_add(s, a[k * d + i], z[k], acc);
        }
        let zi = T::vmul(s, acc, inv);
        z[i] = zi;
        for j in 0..=i {
            let mut acc = m[i * d + j];
            for k in i + 1..d {
                acc = T::vneg_mul_add(s, a[k * d + i], w[k * d + j], acc);
            }
            w[i * d + j] = T::vmul(s, acc, inv);
        }
        // s_ij = zᵢ yⱼ + Σ_{k≤j} W[i][k] M[j][k], the (i, j) entry of
        // z yᵀ + W Mᵀ.
        // ∂/∂L_q, row i, into M's row i: the diagonal first (it reads M's
        // row i), then j < i (they read rows j < i, still M).
        let sii = dot::<T, S>(s, d, i, i, zi, y, w, m);
        m[i * d + i] = if dq == Diagonal::Log {
            T::vmul(s, g, T::vneg_mul_add(s, sii, lqd[i], one))
        } else {
            T::vmul(s, g, T::vsub(s, inv, sii))
        };
        let minus_g = T::vsub(s, zero, g);
        for j in 0..i {
            let sij = dot::<T, S>(s, d, i, j, zi, y, w, m);
            m[i * d + j] = T::vmul(s, minus_g, sij);
        }
    }
}

/// `upstream · ∂/∂L_p` into `w` and `upstream · z` into `z`.
#[inline(always)]
fn grad_p<T: Real, S: Simd>(
    s: S,
    d: usize,
    dp: Diagonal,
    bufs: &mut Block<'_, T::V<S>>,
    g: T::V<S>,
) {
    let Block { w, z, lpd, .. } = bufs;
    let (w, z, lpd) = (&mut **w, &mut **z, &mut **lpd);
    let one = T::vsplat(s, T::ONE);
    // ∂/∂L_p = upstream · (tril(W) − diag(1/L_pᵢᵢ)) into W, upstream · z into z.
    for i in 0..d {
        for j in 0..i {
            w[i * d + j] = T::vmul(s, g, w[i * d + j]);
        }
        let wii = w[i * d + i];
        w[i * d + i] = if dp == Diagonal::Log {
            T::vmul(s, g, T::vsub(s, T::vmul(s, wii, lpd[i]), one))
        } else {
            T::vmul(s, g, T::vsub(s, wii, T::vdiv(s, one, lpd[i])))
        };
        z[i] = T::vmul(s, g, z[i]);
    }
}

/// `zᵢ yⱼ + Σ_{k≤j} W[i][k] M[j][k]`. A function, not a closure: closures
/// do not inherit the level's target features, so their intrinsics stay calls.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dot<T: Real, S: Simd>(
    s: S,
    d: usize,
    i: usize,
    j: usize,
    zi: T::V<S>,
    y: &[T::V<S>],
    w: &[T::V<S>],
    m: &[T::V<S>],
) -> T::V<S> {
    let mut acc = T::vmul(s, zi, y[j]);
    for k in 0..=j {
        acc = T::vmul_add(s, w[i * d + k], m[j * d + k], acc);
    }
    acc
}
