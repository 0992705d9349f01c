//! Lockstep ("compact") SIMD kernel: one pair per lane.
//!
//! A block of `L` pairs (`L` = lanes of the dispatched level: 16 `f32` with
//! AVX-512, 8 with AVX2) runs the scalar algorithm of
//! [`kl_unpacked`](super::scalar::kl_unpacked) in lockstep, lane `l` holding
//! pair `l` of the block, so that no lane idles whatever `d` is. The packed
//! inputs of consecutive pairs (PyTorch's `batch × d` / `batch × d(d+1)/2`
//! layout) are transposed into lanes as the block is loaded.
//!
//! Gather. A full block of consecutive pairs (`Zip` with unit steps),
//! row-major factors and log diagonals — PyTorch's layout, what the batch
//! API sees almost always — is transposed in registers by the level's
//! shuffles ([`transpose`](crate::simd::transpose): merge-masked `vpermps`
//! for records shorter than a vector, `L × L` tile transposes by unpacks and
//! 128-bit shuffles for longer ones), reading each input vector once;
//! `μ_q − μ_p` is subtracted before its transpose; only the lower triangles
//! of the block are written, each tile output stored straight from its
//! register to its `(i, j)` (packed index → row by a constant table); the
//! block's KL leaves with one vector store. The shuffles exist at
//! AVX-512 only so far; every other level (AVX2, NEON, `simd128`, scalar,
//! emulated), the other layouts, plain diagonals, broadcast or all-pairs
//! blocks and the ragged last block take the element-by-element copy
//! ([`gather`]). Both gathers feed the same arithmetic, so the results are
//! bit for bit the same (`tests/suite/kernel_lanes.rs`). Measured with the
//! roofline example (single thread, Sapphire Rapids-class AVX-512, shared
//! 2-core machine, 4096 pairs, two alternating runs each), element copy →
//! transposes, M pairs/s, f32 / f64: d = 3: 107–117 → 245–251 / 73–76 →
//! 109–110; d = 4: 84 → 123–127 / 54–55 → 90; d = 8: 27 → 38–39 / 18 →
//! 20–22; d = 16: 4.1–4.3 → 6.8–6.9 / 2.5–3.0 → 3.4; d = 2 unchanged
//! (~490 / ~185: there the four `exp`s per pair dominate, not the gather).
//! At 1 M pairs of d = 3 (f32) the kernel reads at 95 % of the DRAM bound.
//! The tiles' `vpermt2ps` networks then became unpack networks and the
//! tiles' outputs stopped going through a stack copy and a cursor with a
//! branch per store; measured on Zen 4 (EPYC), AVX-512, 4096 pairs, scratch
//! example, median of 5 alternating runs (CPU time), M pairs/s before →
//! after, f32 / f64: d = 8: 32.9 → 54.1 / 27.7 → 27.5; d = 12: 12.0 → 15.5 /
//! 5.4 → 6.5; d = 16: 4.8 → 6.1 / 1.9 → 2.0; d ≤ 4 within noise. A software
//! prefetch of the next block's factors (d ≥ 8) measured 0.9–1.1×: dropped.
//!
//! The solve ([`block`]) runs in 4 × 4 register tiles (16 accumulators, 8
//! loads per 16 FMAs); it was one dependency chain per entry, two loads per
//! FMA. On a Zen 4 EPYC (AVX-512 on 256-bit pipes) that chain was 38 % of
//! the time at d = 16 (`perf` samples; the gather 49 %, `exp` 12 %), the
//! tiles 15 %. The gradient's forward pass is the same function. Its
//! loops then lost their bounds checks and their run-time indices into
//! the accumulators (the `k` loop over iterators of known length with the
//! tile taken and returned by value, the first four `k` one call each, the
//! squared sums with a fixed sum per column mod 4): indexed, LLVM had kept
//! the accumulators on the stack, a store per FMA. Zen 4, AVX-512, 4096
//! pairs, medians of alternated runs, M pairs/s before → after: `f32`
//! d = 8 46 → 51, d = 12 15.0 → 17.0, d = 16 6.6–9.0 → 9.7–12.6; `f64` d = 8
//! 26.2 → 31.7, d = 12 8.5 → 11.6, d = 16 2.8–3.1 → 4.9 (d ≤ 4 within noise).
//!
//! Differences from the scalar reference, all within rounding: products are
//! fused (`c − a·b` in one rounding where the level has FMA), the diagonal of
//! `L_q` enters as its reciprocal (`exp(−raw)` for a log diagonal, so that no
//! division is left in the solve), and `M`'s diagonal is `exp(raw_p − raw_q)`.
//!
//! For `d ≤ 16` the block lives on the stack, larger `d` use a caller's
//! workspace (`(2d² + d) · lanes` scalars). Row-major pairs with `d ≤ 16` run a copy of the
//! kernel compiled for their `d` (loops of known length, known strides):
//! up to 1.3× faster than the runtime-`d` kernel, which the other layouts
//! use. Each such copy is compiled once per SIMD level, scalar type and `d`;
//! keeping them to the default layout halves the crate's compile time.

use crate::real::Real;
use crate::simd::{Level, Load, Simd, Store, Zeroable, transpose};
use crate::tril::{Diagonal, Layout, row_start};
use pulp::WithSimd;
use pulp::bytemuck::{cast_slice, cast_slice_mut};

/// Largest `d` whose block lives on the stack.
pub(crate) const MAX_FIXED_D: usize = 16;

/// The block of a `d ≤` [`MAX_FIXED_D`] on the stack: `(a, m, y)` vectors.
pub(crate) struct StackBlock<V> {
    a: [V; MAX_FIXED_D * MAX_FIXED_D],
    m: [V; MAX_FIXED_D * MAX_FIXED_D],
    y: [V; MAX_FIXED_D],
}

impl<V: Zeroable + Copy> StackBlock<V> {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        let z = V::zeroed();
        StackBlock {
            a: [z; MAX_FIXED_D * MAX_FIXED_D],
            m: [z; MAX_FIXED_D * MAX_FIXED_D],
            y: [z; MAX_FIXED_D],
        }
    }

    /// The block of `d ≤ MAX_FIXED_D`: `(a, m, y)` of `d²`, `d²`, `d` vectors.
    #[inline(always)]
    pub(crate) fn bufs(&mut self, d: usize) -> Bufs<'_, V> {
        (&mut self.a[..d * d], &mut self.m[..d * d], &mut self.y[..d])
    }
}

/// One side (`p` or `q`) of a batch: `count` Gaussians, contiguous.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Side<'a, T> {
    pub(crate) means: &'a [T],
    pub(crate) tril: &'a [T],
    pub(crate) layout: Layout,
    pub(crate) diagonal: Diagonal,
}

/// How output index `k` maps to the pair `(p index, q index)`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pairs {
    /// `out[k] = KL(p[(base+k)·sp] ‖ q[(base+k)·sq])`, `sp, sq ∈ {0, 1}` (broadcasting).
    Zip {
        base: usize,
        step_p: usize,
        step_q: usize,
    },
    /// `out[k] = KL(p[i] ‖ q[j])`, `base + k = i·n_q + j`.
    All { base: usize, n_q: usize },
}

impl Pairs {
    #[inline(always)]
    pub(crate) fn get(self, k: usize) -> (usize, usize) {
        match self {
            Pairs::Zip {
                base,
                step_p,
                step_q,
            } => ((base + k) * step_p, (base + k) * step_q),
            Pairs::All { base, n_q } => ((base + k) / n_q, (base + k) % n_q),
        }
    }

    /// The same map for the sub-range of outputs that starts at `k`.
    pub(crate) fn skip(self, k: usize) -> Pairs {
        match self {
            Pairs::Zip {
                base,
                step_p,
                step_q,
            } => Pairs::Zip {
                base: base + k,
                step_p,
                step_q,
            },
            Pairs::All { base, n_q } => Pairs::All {
                base: base + k,
                n_q,
            },
        }
    }
}

/// Computes `out[k]` for every `k < out.len()`.
///
/// The caller has checked every shape and (for plain diagonals) positivity;
/// for `d > 16`, `work` holds at least `(2d² + d) · lanes` scalars (the batch
/// layer's scratch). Returns `false` if the host lacks `level`.
pub(crate) fn kl_lanes<T: Real>(
    level: Level,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: &mut [T],
    work: &mut [T],
) -> bool {
    // One dispatch per compile-time `d`, so that each keeps only its own
    // block on the stack.
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
    out: &'a mut [T],
}

impl<T: Real, const D: usize> WithSimd for FixedOp<'_, T, D> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        run_fixed::<T, S, D>(s, self.p, self.q, self.pairs, self.out);
    }
}

struct RuntimeOp<'a, T> {
    d: usize,
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: &'a mut [T],
    work: &'a mut [T],
}

impl<T: Real> WithSimd for RuntimeOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        run_runtime::<T, S>(s, self.d, self.p, self.q, self.pairs, self.out, self.work);
    }
}

/// Entry `(i, j)` of a packed factor: a compile-time row-major map, or any layout.
pub(crate) trait Idx: Copy {
    /// Whether this is the compile-time row-major map.
    const ROW_MAJOR: bool = false;
    fn at(self, d: usize, i: usize, j: usize) -> usize;
}
#[derive(Clone, Copy)]
pub(crate) struct RowMajor;
impl Idx for RowMajor {
    const ROW_MAJOR: bool = true;
    #[inline(always)]
    fn at(self, _d: usize, i: usize, j: usize) -> usize {
        row_start(i) + j
    }
}
impl Idx for Layout {
    #[inline(always)]
    fn at(self, d: usize, i: usize, j: usize) -> usize {
        self.index(d, i, j)
    }
}

/// Row-major pairs, `d = D`.
#[inline(always)]
fn run_fixed<T: Real, S: Simd, const D: usize>(
    s: S,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: &mut [T],
) {
    let mut a = [[T::V::<S>::zeroed(); D]; D];
    let mut m = [[T::V::<S>::zeroed(); D]; D];
    let mut y = [T::V::<S>::zeroed(); D];
    let bufs = (a.as_flattened_mut(), m.as_flattened_mut(), &mut y[..]);
    let job = Job::new(D, p, q, RowMajor, RowMajor, pairs);
    run_blocks::<T, S, _>(s, job, out, bufs);
}

/// Any layout and `d`: the block on the stack up to [`MAX_FIXED_D`], in `work` above.
#[inline(always)]
fn run_runtime<T: Real, S: Simd>(
    s: S,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: &mut [T],
    work: &mut [T],
) {
    let lanes = T::lanes::<S>();
    let mut stack = StackBlock::<T::V<S>>::new();
    let bufs = if d <= MAX_FIXED_D {
        stack.bufs(d)
    } else {
        split::<T, S>(work, d, lanes)
    };
    if p.layout == Layout::RowMajor && q.layout == Layout::RowMajor {
        let job = Job::new(d, p, q, RowMajor, RowMajor, pairs);
        run_blocks::<T, S, _>(s, job, out, bufs);
    } else {
        let job = Job::new(d, p, q, p.layout, q.layout, pairs);
        run_blocks::<T, S, _>(s, job, out, bufs);
    }
}

/// A workspace cut into the `(a, m, y)` of one block: exactly the
/// `(2d² + d) · lanes` scalars it needs, whatever the workspace's length
/// beyond them (a cast of the whole tail would fail on a length that is not
/// a whole number of vectors). The vectors are arrays of `T` (`repr(C)`,
/// `T`'s alignment), so any sub-slice of a `[T]` casts.
#[inline(always)]
fn split<T: Real, S: Simd>(w: &mut [T], d: usize, lanes: usize) -> Bufs<'_, T::V<S>> {
    let (a, rest) = w.split_at_mut(d * d * lanes);
    let (m, rest) = rest.split_at_mut(d * d * lanes);
    let y = &mut rest[..d * lanes];
    (cast_slice_mut(a), cast_slice_mut(m), cast_slice_mut(y))
}

/// What a block loop reads: the dimension, both sides, their index maps and
/// the pairing.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a, T, I> {
    pub(crate) d: usize,
    pub(crate) p: Side<'a, T>,
    pub(crate) q: Side<'a, T>,
    pub(crate) ip: I,
    pub(crate) iq: I,
    pub(crate) pairs: Pairs,
}

impl<'a, T, I> Job<'a, T, I> {
    #[inline(always)]
    pub(crate) fn new(
        d: usize,
        p: Side<'a, T>,
        q: Side<'a, T>,
        ip: I,
        iq: I,
        pairs: Pairs,
    ) -> Self {
        Job {
            d,
            p,
            q,
            ip,
            iq,
            pairs,
        }
    }
}

/// `(a, m, y)` of one block.
pub(crate) type Bufs<'a, V> = (&'a mut [V], &'a mut [V], &'a mut [V]);

/// Runs every block: transpose `lanes` pairs in, compute, write out.
#[inline(always)]
fn run_blocks<T: Real, S: Simd, I: Idx>(
    s: S,
    job: Job<'_, T, I>,
    out: &mut [T],
    mut bufs: Bufs<'_, T::V<S>>,
) {
    let lanes = T::lanes::<S>();
    let Job { d, p, q, .. } = job;
    let n = out.len();
    let mut plain_ld = [T::ZERO; 16];
    let mut start = 0;
    while start < n {
        let valid = (n - start).min(lanes);
        if let Some(k0) = fast_block(job, valid, lanes, start)
            && gather_fast::<T, S>(s, d, p, q, k0, &mut bufs)
        {
            let kl = compute_kl::<T, S>(s, d, p, q, &mut bufs, &plain_ld);
            if let Some(o) = T::as_mut_simd::<S>(&mut out[start..start + valid]).first_mut() {
                *o = kl;
            }
            start += valid;
            continue;
        }
        gather::<T, S, I>(job, n, start, &mut bufs, &mut plain_ld);
        let kl = compute_kl::<T, S>(s, d, p, q, &mut bufs, &plain_ld);
        let kl: &[T] = cast_slice(core::slice::from_ref(&kl));
        out[start..start + valid].copy_from_slice(&kl[..valid]);
        start += valid;
    }
}

/// The first pair of the block that starts at output `start` if the block
/// takes the transposed fast path: `lanes` consecutive pairs on both sides
/// (a full block of `Zip` with unit steps), row-major factors, log diagonals.
#[inline(always)]
pub(crate) fn fast_block<T, I: Idx>(
    job: Job<'_, T, I>,
    valid: usize,
    lanes: usize,
    start: usize,
) -> Option<usize> {
    match job.pairs {
        Pairs::Zip {
            base,
            step_p: 1,
            step_q: 1,
        } if valid == lanes
            && I::ROW_MAJOR
            && job.p.diagonal == Diagonal::Log
            && job.q.diagonal == Diagonal::Log =>
        {
            Some(base + start)
        }
        _ => None,
    }
}

/// The fast path's gather: the `lanes` consecutive row-major pairs from `k0`
/// transposed in registers by the level's shuffles
/// ([`transpose`](crate::simd::transpose)), `y = μ_q − μ_p` subtracted
/// before the transpose (the same lane-wise subtraction). Fills only the
/// lower triangles of `a` and `m`. Returns `false` (having written nothing)
/// if the level has no shuffle path; the results are bit for bit those of
/// [`gather`].
#[inline(always)]
pub(crate) fn gather_fast<T: Real, S: Simd>(
    s: S,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    k0: usize,
    bufs: &mut Bufs<'_, T::V<S>>,
) -> bool {
    let lanes = T::lanes::<S>();
    let tri = row_start(d);
    let (a, m, y) = (&mut *bufs.0, &mut *bufs.1, &mut *bufs.2);
    let (Some(tp), Some(tq), Some(mp), Some(mq)) = (
        p.tril.get(k0 * tri..(k0 + lanes) * tri),
        q.tril.get(k0 * tri..(k0 + lanes) * tri),
        p.means.get(k0 * d..(k0 + lanes) * d),
        q.means.get(k0 * d..(k0 + lanes) * d),
    ) else {
        return false;
    };
    let diff = Diff::<T, S> { a: mq, b: mp, s };
    if !transpose::<T, S>(s, d, &diff, &mut Vectors(y)) {
        return false;
    }
    transpose::<T, S>(s, tri, &Plain::<T, S>(tq, s), &mut Lower::new(a, d));
    transpose::<T, S>(s, tri, &Plain::<T, S>(tp, s), &mut Lower::new(m, d));
    true
}

/// The vector of `lanes` scalars of `x` from `off` (zeros past the end,
/// which the transposes never ask for).
#[inline(always)]
fn vload<T: Real, S: Simd>(s: S, x: &[T], off: usize) -> T::V<S> {
    match x.get(off..off + T::lanes::<S>()) {
        Some(v) => T::as_simd::<S>(v)
            .first()
            .copied()
            .unwrap_or(T::vsplat(s, T::ZERO)),
        None => T::vsplat(s, T::ZERO),
    }
}

/// A block of records as a transpose source.
struct Plain<'a, T, S>(&'a [T], S);
impl<T: Real, S: Simd> Load<T::V<S>> for Plain<'_, T, S> {
    #[inline(always)]
    fn load(&self, off: usize) -> T::V<S> {
        vload(self.1, self.0, off)
    }
}

/// The lane-wise difference `a − b` of two blocks as a transpose source.
struct Diff<'a, T, S> {
    a: &'a [T],
    b: &'a [T],
    s: S,
}
impl<T: Real, S: Simd> Load<T::V<S>> for Diff<'_, T, S> {
    #[inline(always)]
    fn load(&self, off: usize) -> T::V<S> {
        T::vsub(
            self.s,
            vload(self.s, self.a, off),
            vload(self.s, self.b, off),
        )
    }
}

/// Outputs `j` into vector `j`.
struct Vectors<'a, V>(&'a mut [V]);
impl<V> Store<V> for Vectors<'_, V> {
    #[inline(always)]
    fn store(&mut self, j: usize, v: V) {
        if let Some(x) = self.0.get_mut(j) {
            *x = v;
        }
    }
}

/// Outputs in row-major packed order into the lower triangle of a `d × d`
/// block: packed index `k` (row `i`, column `k − i(i + 1)/2`) into vector
/// `i·d + k − i(i + 1)/2`, the row from a table (no state carried between
/// stores, so the transposes store their outputs straight from registers).
struct Lower<'a, V> {
    dst: &'a mut [V],
    d: usize,
}
impl<'a, V> Lower<'a, V> {
    #[inline(always)]
    fn new(dst: &'a mut [V], d: usize) -> Self {
        Lower { dst, d }
    }
}
impl<V> Store<V> for Lower<'_, V> {
    #[inline(always)]
    fn store(&mut self, k: usize, v: V) {
        let i = tri_row(k);
        if let Some(x) = self.dst.get_mut(i * self.d + k - row_start(i)) {
            *x = v;
        }
    }
}

/// The packed triangles whose rows [`TRI_ROW`] tabulates: `d ≤ 64`.
const TRI_ROW_D: usize = 64;

/// The row of packed index `k` of a row-major lower triangle, for
/// `k < TRI_ROW_D (TRI_ROW_D + 1) / 2`. (A `const`, not a `static`: the
/// kernels are instantiated in the caller's crate, where a `static`'s
/// contents are unknown, so its lookups at known `k` would not fold.)
const TRI_ROW: [u8; TRI_ROW_D * (TRI_ROW_D + 1) / 2] = {
    let mut t = [0u8; TRI_ROW_D * (TRI_ROW_D + 1) / 2];
    let mut i = 0;
    while i < TRI_ROW_D {
        let mut j = 0;
        while j <= i {
            t[i * (i + 1) / 2 + j] = i as u8;
            j += 1;
        }
        i += 1;
    }
    t
};

/// The row `i` of packed index `k` (`i(i + 1)/2 ≤ k < (i + 1)(i + 2)/2`):
/// from [`TRI_ROW`], past it by the integer square root.
#[inline(always)]
fn tri_row(k: usize) -> usize {
    match TRI_ROW.get(k) {
        Some(&i) => usize::from(i),
        None => (((8 * k) | 1).isqrt() - 1) / 2,
    }
}

/// Transposes the block of pairs `start..` into lanes (the last valid pair
/// repeated into idle lanes of a partial block). For plain diagonals, also
/// stores each lane's `Σ log L_pᵢᵢ − Σ log L_qᵢᵢ` in `plain_ld`.
#[inline(always)]
pub(crate) fn gather<T: Real, S: Simd, I: Idx>(
    job: Job<'_, T, I>,
    n: usize,
    start: usize,
    bufs: &mut Bufs<'_, T::V<S>>,
    plain_ld: &mut [T; 16],
) {
    let Job {
        d,
        p,
        q,
        ip,
        iq,
        pairs,
    } = job;
    let lanes = T::lanes::<S>();
    let tri = row_start(d);
    let valid = (n - start).min(lanes);
    let af: &mut [T] = cast_slice_mut(&mut *bufs.0);
    let mf: &mut [T] = cast_slice_mut(&mut *bufs.1);
    let yf: &mut [T] = cast_slice_mut(&mut *bufs.2);
    let contiguous = match pairs {
        Pairs::Zip {
            base,
            step_p,
            step_q,
        } if step_p == 1 && step_q == 1 && valid == lanes => Some(base + start),
        _ => None,
    };
    if let (Some(k0), true, Diagonal::Log, Diagonal::Log) =
        (contiguous, I::ROW_MAJOR, p.diagonal, q.diagonal)
    {
        // Fast path: `lanes` consecutive pairs, row-major factors — a
        // plain transpose with indices affine in the lane.
        let tp = &p.tril[k0 * tri..(k0 + lanes) * tri];
        let tq = &q.tril[k0 * tri..(k0 + lanes) * tri];
        let mp = &p.means[k0 * d..(k0 + lanes) * d];
        let mq = &q.means[k0 * d..(k0 + lanes) * d];
        for l in 0..lanes {
            for i in 0..d {
                yf[i * lanes + l] = mq[l * d + i] - mp[l * d + i];
                for j in 0..=i {
                    af[(i * d + j) * lanes + l] = tq[l * tri + row_start(i) + j];
                    mf[(i * d + j) * lanes + l] = tp[l * tri + row_start(i) + j];
                }
            }
        }
    } else {
        for l in 0..lanes {
            let (kp, kq) = pairs.get(start + l.min(valid - 1));
            let tp = &p.tril[kp * tri..kp * tri + tri];
            let tq = &q.tril[kq * tri..kq * tri + tri];
            let mp = &p.means[kp * d..kp * d + d];
            let mq = &q.means[kq * d..kq * d + d];
            for i in 0..d {
                yf[i * lanes + l] = mq[i] - mp[i];
                for j in 0..=i {
                    af[(i * d + j) * lanes + l] = tq[iq.at(d, i, j)];
                    mf[(i * d + j) * lanes + l] = tp[ip.at(d, i, j)];
                }
            }
            if p.diagonal == Diagonal::Plain || q.diagonal == Diagonal::Plain {
                plain_ld[l] = plain_log_det_diff(d, af, mf, lanes, l, p.diagonal, q.diagonal);
            }
        }
    }
}

/// The diagonals, the solve and the sums of one gathered block: the KL of
/// every lane.
#[inline(always)]
fn compute_kl<T: Real, S: Simd>(
    s: S,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    bufs: &mut Bufs<'_, T::V<S>>,
    plain_ld: &[T; 16],
) -> T::V<S> {
    let lanes = T::lanes::<S>();
    let (a, m, y) = (&mut *bufs.0, &mut *bufs.1, &mut *bufs.2);
    // Diagonals: a[i][i] ← 1 / L_q[i][i], m[i][i] ← L_p[i][i] / L_q[i][i].
    let mut ld = T::vsplat(s, T::ZERO);
    for i in 0..d {
        let ii = i * d + i;
        let (rp, rq) = (m[ii], a[ii]);
        match (p.diagonal, q.diagonal) {
            (Diagonal::Log, Diagonal::Log) => {
                ld = T::vadd(s, ld, T::vsub(s, rp, rq));
                m[ii] = T::vexp(s, T::vsub(s, rp, rq));
                a[ii] = T::vexp(s, T::vsub(s, T::vsplat(s, T::ZERO), rq));
            }
            (dp, dq) => {
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
                m[ii] = T::vdiv(s, lp, lq);
                a[ii] = T::vdiv(s, T::vsplat(s, T::ONE), lq);
            }
        }
    }
    if p.diagonal == Diagonal::Plain || q.diagonal == Diagonal::Plain {
        let v: &mut [T] = cast_slice_mut(core::slice::from_mut(&mut ld));
        v.copy_from_slice(&plain_ld[..lanes]);
    }
    block::<T, S>(s, d, a, m, y, ld)
}

/// `Σ log L_pᵢᵢ − Σ log L_qᵢᵢ` of lane `l` when a diagonal is plain (scalar
/// `ln`; the raw values sit on the diagonals of the transposed blocks).
#[inline(always)]
fn plain_log_det_diff<T: Real>(
    d: usize,
    af: &[T],
    mf: &[T],
    lanes: usize,
    l: usize,
    dp: Diagonal,
    dq: Diagonal,
) -> T {
    let mut lp = T::ZERO;
    let mut lq = T::ZERO;
    for i in 0..d {
        let at = (i * d + i) * lanes + l;
        lp += if dp == Diagonal::Log {
            mf[at]
        } else {
            mf[at].ln()
        };
        lq += if dq == Diagonal::Log {
            af[at]
        } else {
            af[at].ln()
        };
    }
    lp - lq
}

/// The solve and the fused squared sums of one block, in lockstep: `y =
/// L_q⁻¹ (μ_q − μ_p)` and `M = L_q⁻¹ L_p` in place, then the KL of every
/// lane.
///
/// `a`: `L_q` (strict lower triangle) with `1 / L_qᵢᵢ` on the diagonal;
/// `m`: `L_p` (strict lower triangle) with `L_pᵢᵢ / L_qᵢᵢ` on the diagonal,
/// overwritten by `M`; `y`: `μ_q − μ_p`, overwritten by `y`.
///
/// In 4 × 4 register tiles: row blocks `i0..i0 + 4` from the top, each
/// tile's products with the finished rows above in 16 accumulators (8 loads
/// per 16 FMAs, against 2 loads per FMA and one dependency chain per entry in
/// the dot-product order), then the block's triangle; the rows
/// `i ≥ d − d mod 4` entry by entry. The gradient's forward pass
/// ([`lanes_grad`](super::lanes_grad)) is this function.
#[inline(always)]
pub(crate) fn block<T: Real, S: Simd>(
    s: S,
    d: usize,
    a: &[T::V<S>],
    m: &mut [T::V<S>],
    y: &mut [T::V<S>],
    log_det_diff: T::V<S>,
) -> T::V<S> {
    let zero = T::vsplat(s, T::ZERO);
    let top = d - d % 4;
    let mut i0 = 0;
    while i0 < top {
        fwd_y_tile::<T, S>(s, d, i0, a, y);
        let mut j0 = 0;
        while j0 < i0 {
            fwd_tile::<T, S, false>(s, d, i0, j0, a, m);
            j0 += 4;
        }
        fwd_tile::<T, S, true>(s, d, i0, i0, a, m);
        i0 += 4;
    }
    for i in top..d {
        let inv = at(a, i * d + i);
        let mut acc = at(y, i);
        for k in 0..i {
            acc = T::vneg_mul_add(s, at(a, i * d + k), at(y, k), acc);
        }
        if let Some(v) = y.get_mut(i) {
            *v = T::vmul(s, acc, inv);
        }
        for j in 0..i {
            let mut acc = at(m, i * d + j);
            for k in j..i {
                acc = T::vneg_mul_add(s, at(a, i * d + k), at(m, k * d + j), acc);
            }
            if let Some(v) = m.get_mut(i * d + j) {
                *v = T::vmul(s, acc, inv);
            }
        }
    }
    let mut y_sq = zero;
    for &v in y.iter().take(d) {
        y_sq = T::vmul_add(s, v, v, y_sq);
    }
    // Four running sums over each row's entries `j ≤ i`, `j mod 4` fixed
    // per sum (with `m_sq[j % 4]` indexed at run time they lived on the
    // stack, a store-to-load round trip per entry).
    let mut m_sq = [zero; 4];
    for i in 0..d {
        let row = head(m, i * d, i + 1);
        let (quads, rest) = row.as_chunks::<4>();
        for quad in quads {
            for (acc, &v) in m_sq.iter_mut().zip(quad) {
                *acc = T::vmul_add(s, v, v, *acc);
            }
        }
        for (acc, &v) in m_sq.iter_mut().zip(rest) {
            *acc = T::vmul_add(s, v, v, *acc);
        }
    }
    let m_sq = T::vadd(
        s,
        T::vadd(s, m_sq[0], m_sq[1]),
        T::vadd(s, m_sq[2], m_sq[3]),
    );
    let two_ld = T::vadd(s, log_det_diff, log_det_diff);
    let sum = T::vsub(
        s,
        T::vsub(s, T::vadd(s, y_sq, m_sq), two_ld),
        T::vsplat(s, T::from_usize(d)),
    );
    T::vmul(s, T::vsplat(s, T::HALF), sum)
}

/// Rows `i0..i0 + 4` of `y = L_q⁻¹ y`, the rows above finished.
#[inline(always)]
fn fwd_y_tile<T: Real, S: Simd>(s: S, d: usize, i0: usize, a: &[T::V<S>], y: &mut [T::V<S>]) {
    let mut acc = four(y, i0);
    let [a0, a1, a2, a3] = [0, 1, 2, 3].map(|r| head(a, (i0 + r) * d, i0));
    let ys = head(y, 0, i0);
    for ((((&yk, &x0), &x1), &x2), &x3) in ys.iter().zip(a0).zip(a1).zip(a2).zip(a3) {
        let ak = [x0, x1, x2, x3];
        for r in 0..4 {
            acc[r] = T::vneg_mul_add(s, ak[r], yk, acc[r]);
        }
    }
    for r in 0..4 {
        let i = i0 + r;
        let v = T::vmul(s, acc[r], at(a, i * d + i));
        if let Some(o) = y.get_mut(i) {
            *o = v;
        }
        for r2 in r + 1..4 {
            acc[r2] = T::vneg_mul_add(s, at(a, (i0 + r2) * d + i), v, acc[r2]);
        }
    }
}

/// Rows `i0..i0 + 4`, columns `j0..j0 + 4` of `M = L_q⁻¹ L_p` in place
/// (`DIAG`: `j0 = i0`, the entries `j < i` only; the diagonal is set),
/// the rows above finished: `M[i][j] = (L_p[i][j] − Σ_{j≤k<i} L_q[i][k]
/// M[k][j]) / L_qᵢᵢ`.
#[inline(always)]
fn fwd_tile<T: Real, S: Simd, const DIAG: bool>(
    s: S,
    d: usize,
    i0: usize,
    j0: usize,
    a: &[T::V<S>],
    m: &mut [T::V<S>],
) {
    let zero = T::vsplat(s, T::ZERO);
    let mut acc = [[zero; 4]; 4];
    for (r, acc) in acc.iter_mut().enumerate() {
        let mr = four(m, (i0 + r) * d + j0);
        for q in 0..4 {
            if !DIAG || q < r {
                acc[q] = mr[q];
            }
        }
    }
    if !DIAG {
        // k in j0..j0 + 4: the columns j ≤ k (one call per k, so that
        // every index into `acc` is a constant and it stays in registers).
        acc = corner::<T, S, 0>(s, acc, [d, i0, j0], a, m);
        acc = corner::<T, S, 1>(s, acc, [d, i0, j0], a, m);
        acc = corner::<T, S, 2>(s, acc, [d, i0, j0], a, m);
        acc = corner::<T, S, 3>(s, acc, [d, i0, j0], a, m);
        // k in j0 + 4..i0: every entry.
        let n = i0.saturating_sub(j0 + 4);
        let ar = [0, 1, 2, 3].map(|r| head(a, (i0 + r) * d + j0 + 4, n));
        let mk = m.get((j0 + 4) * d + j0..).unwrap_or(&[]);
        acc = rank_update::<T, S>(s, acc, ar, mk, d);
    }
    for r in 0..4 {
        let i = i0 + r;
        let inv = at(a, i * d + i);
        let mut mr = [zero; 4];
        for q in 0..4 {
            if !DIAG || q < r {
                mr[q] = T::vmul(s, acc[r][q], inv);
                if let Some(o) = m.get_mut(i * d + j0 + q) {
                    *o = mr[q];
                }
            }
        }
        if DIAG {
            mr[r] = at(m, i * d + i);
        }
        for r2 in r + 1..4 {
            let f = at(a, (i0 + r2) * d + i);
            for q in 0..4 {
                if !DIAG || q <= r {
                    acc[r2][q] = T::vneg_mul_add(s, f, mr[q], acc[r2][q]);
                }
            }
        }
    }
}

/// Step `k = j0 + K` of a [`fwd_tile`]: the columns `j0..=j0 + K` (the
/// others are right of `M`'s diagonal in row `k`). One call per `k`, so
/// that every index into `acc` is a constant.
#[inline(always)]
fn corner<T: Real, S: Simd, const K: usize>(
    s: S,
    mut acc: [[T::V<S>; 4]; 4],
    [d, i0, j0]: [usize; 3],
    a: &[T::V<S>],
    m: &[T::V<S>],
) -> [[T::V<S>; 4]; 4] {
    let mk = four(m, (j0 + K) * d + j0);
    for (r, acc) in acc.iter_mut().enumerate() {
        let ark = at(a, (i0 + r) * d + j0 + K);
        for q in 0..=K {
            acc[q] = T::vneg_mul_add(s, ark, mk[q], acc[q]);
        }
    }
    acc
}

/// `acc[r][q] −= Σ_k ar[r][k] · m[k·stride + q]` over the `k` of `ar`
/// (the tile's rows of `L_q` against `M`'s rows, from the tile's column).
/// Taken and returned by value, iterated with no bounds checks: indexed in
/// place, the loop had four checks per `k` and LLVM stored every
/// accumulator to the stack each iteration.
#[inline(always)]
fn rank_update<T: Real, S: Simd>(
    s: S,
    mut acc: [[T::V<S>; 4]; 4],
    [a0, a1, a2, a3]: [&[T::V<S>]; 4],
    m: &[T::V<S>],
    stride: usize,
) -> [[T::V<S>; 4]; 4] {
    let rows = m.chunks(stride.max(1));
    for ((((mr, &x0), &x1), &x2), &x3) in rows.zip(a0).zip(a1).zip(a2).zip(a3) {
        let Some(mk) = mr.first_chunk::<4>() else {
            break;
        };
        let ak = [x0, x1, x2, x3];
        for r in 0..4 {
            for q in 0..4 {
                acc[r][q] = T::vneg_mul_add(s, ak[r], mk[q], acc[r][q]);
            }
        }
    }
    acc
}

/// The 4 vectors of `x` from `at` (zeros if out of bounds, which the
/// callers rule out).
#[inline(always)]
pub(crate) fn four<V: Zeroable + Copy>(x: &[V], at: usize) -> [V; 4] {
    match x.get(at..at + 4) {
        Some(&[v0, v1, v2, v3]) => [v0, v1, v2, v3],
        _ => [V::zeroed(); 4],
    }
}

/// The `n` vectors of `x` from `at` (fewer if out of bounds, which the
/// callers rule out).
#[inline(always)]
pub(crate) fn head<V>(x: &[V], at: usize, n: usize) -> &[V] {
    x.get(at..).map_or(&[], |x| x.get(..n).unwrap_or(x))
}

/// Vector `at` of `x` (zero if out of bounds, which the callers rule out).
#[inline(always)]
pub(crate) fn at<V: Zeroable + Copy>(x: &[V], at: usize) -> V {
    x.get(at).copied().unwrap_or_else(V::zeroed)
}
