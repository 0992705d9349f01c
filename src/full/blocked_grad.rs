//! Large-`d` SIMD gradient kernel: one pair at a time, vectorized across
//! columns, register-tiled like a GEMM micro-kernel.
//!
//! With `y = L_q⁻¹(μ_q − μ_p)`, `M = L_q⁻¹L_p`, `u = L_q⁻ᵀy`, `Z = L_q⁻ᵀM`:
//! `∂KL/∂μ_p = −u`, `∂KL/∂μ_q = u`, `∂KL/∂L_p = lower(Z) − diag(1/L_pᵢᵢ)`,
//! `∂KL/∂L_q = −lower(Z Mᵀ + u yᵀ) + diag(1/L_qᵢᵢ)` (a log diagonal times
//! `L_ᵢᵢ`, the chain rule of the raw value): the arithmetic of
//! [`kl_grad_unpacked`](super::grad::kl_grad_unpacked), reordered.
//!
//! One pair is three triangular sweeps, each `d³/6` multiply-adds, on the
//! `d × w` matrix `X = [y | M]` (`w` = `d + 1` rounded up to whole vectors,
//! row-major, rows vectorized across columns):
//!
//! 1. forward: `L_q X = [μ_q − μ_p | L_p]` in place, top-down (the forward
//!    kernel's solve); the KL from `‖X‖²_F`. `X` is then copied transposed
//!    into `Xᵀ` (`d + 1` rows of `d` rounded up to whole vectors; zero where
//!    `c > j + 1`, as `X` is).
//! 2. backward: `L_qᵀ [u | Z] = X` in place, bottom-up. Column `j` of `Z`
//!    is needed only in rows `≥ j`, which depend only on rows below: each
//!    panel of columns starting at `c` runs rows `c − 1 .. d` (a trapezoid,
//!    as in the forward sweep).
//! 3. `S = [u | Z] Xᵀ`, lower part only: `S[i][j] = Σ_{c ≤ j+1} [u|Z][i][c] ·
//!    Xᵀ[c][j]` (`M` is lower triangular, so `j ≤ i` reads only `lower(Z)`),
//!    vectorized across `j`, written straight into the gradient of `L_q`.
//!
//! ## Micro-kernels
//! Every sweep is a tile of `R` rows × `C` vectors of accumulators: per step
//! `C` vector loads of one row and `R` broadcasts of scalars (`L_q` entries,
//! or `Z` entries in sweep 3) as memory operands, `R·C` fused multiply-adds.
//! With 32 vector registers (AVX-512) `R × C = 8 × 3` (24 accumulators, 3
//! loads, one broadcast per 3 FMAs); with fewer, `4 × 3`; the panels are 3
//! vectors wide, the last 2 or 1 (4 vectors left run as 2 + 2: a 1-vector
//! panel has only 8 accumulators). Rows are padded to whole tiles (zero rows
//! of `X`, `1/L_qᵢᵢ = 1`, the rows of `L_q` there read from a row of zeros:
//! they stay zero), so there is no leftover-row path. `L_q` is read where it
//! is kept, row-major packed (the caller's factor, or a copy for other
//! layouts; its diagonal is never read, only `1/L_qᵢᵢ`): sweep 1 broadcasts
//! `L_q[i₀ + r][k]` from `R` row slices (as the forward kernel), sweep 2
//! `L_q[k][i₀..i₀ + R]`, `R` contiguous entries of row `k`.
//!
//! The accumulators stay in registers only if the tile array is never
//! indexed at run time nor copied with `memcpy`: loads and stores are
//! element by element, and the `R × R` triangle at the end of a tile is
//! written out as 8 steps with a constant row each ([`fwd_step`],
//! [`bwd_step`], as the forward kernel's `tri_step`); sweep 3's tile is
//! written out from a copy ([`spill`]). The inner loops' assembly (AVX-512,
//! `f32`): 24 FMAs on 24 register accumulators, 3 vector loads, 8
//! broadcasts; sweep 3 keeps 8 compare-and-branches of `c` against its row
//! slices (LLVM does not merge them).
//!
//! ## Around the sweeps
//! Both diagonals are gathered, summed (log-determinants, four partial
//! sums) and exponentiated a vector at a time; a row-major `[y | L_p]` row
//! is `nv` unaligned vector loads from one entry before the row, the lanes
//! right of the diagonal zeroed (the last rows, whose loads would pass the
//! end of the factor, and other layouts go element by element). On AVX-512
//! the transpose is the crate's shuffle transpose ([`simd::transpose`], `L ×
//! L` tiles of two-source permutes) over blocks of `L` rows of `X` (rows are
//! allocated up to whole vectors for it); elsewhere element by element. The
//! row stride of `Xᵀ` is made odd (in vectors): at d = 128 and 256 the
//! power-of-two stride mapped sweep 3's column of loads onto a few L1 sets.
//! The row-major gradient rows are written a vector at a time.
//!
//! The gradients of a pair are written (or added, for a Gaussian in several
//! pairs) into its rows as each is finished; nothing of a pair outlives it,
//! so the workspace is one pair's (`≈ 2d²` scalars for `X` and `Xᵀ`, `d²/2`
//! for a copy of `L_q`), L2-resident up to `d` in the hundreds, where the
//! lockstep kernel's `(3d² + 4d) · lanes` block of every lane's pair went to
//! DRAM. [`Kernel::Auto`](crate::Kernel::Auto) runs it for `d > 38` (`f32`)
//! and `d > 32` (`f64`), see `GRAD_LANES_MAX_D` in the batch module.
//!
//! ## Measured
//! Sapphire Rapids class (AVX-512, 2 cores shared with other jobs), one
//! thread, roofline example (`--op kl_grad --op kl`, on-CPU time, medians of
//! 5), alternated with the previous kernel, `f32` pairs/s: d = 64 52.8–54.2 k
//! → 92.5–95.3 k, d = 128 15.5–16.3 k → 23.7–23.8 k, d = 256 3.5–3.6 k →
//! 4.7 k; `kl_grad` / `kl` time 9.3–9.6× → 5.2–5.4×, 5.8–6.2× → 4.1–4.3×,
//! 5.7–5.8× → 4.3–4.4× (38 % of the FMA bound at d = 256, the forward
//! kernel 55 %). perf before (d = 64): tiling `L_q` 14 %, scalar `exp`s 8 %,
//! the transpose 10 %, the triangles on the stack ~8 %. Left at d = 256:
//! sweep 3 takes 28 % of the time against 20 % each for sweeps 1 and 2 (same
//! multiply-adds); at d = 64 the `O(d²)` work (right-hand side, transpose,
//! gradient rows) is still about a third.

use super::blocked::{log_sum, map_in_place, reduce};
use super::lanes::{Pairs, Side};
use super::lanes_grad::GradOut;
use super::scalar::finish;
use crate::real::Real;
use crate::simd::{self, Level, Load, Simd, Store, Zeroable};
use crate::tril::{Diagonal, Layout, row_start};
use pulp::WithSimd;
use pulp::bytemuck::{cast_slice, cast_slice_mut};

/// Most lanes of any level (16 × `f32`).
const MAX_LANES: usize = 16;
/// Most rows of a tile (the scratch is sized for it; the triangle steps
/// are written out for rows 0..8).
const MAX_R: usize = 8;

/// The sizes of one pair's buffers for `d`, `lanes` and `r` rows per tile.
#[derive(Clone, Copy)]
struct Dims {
    d: usize,
    /// `d` rounded up to whole tiles: the rows of `X` (padding rows are zero).
    dp: usize,
    /// Vectors per row of `X` (`d + 1` columns).
    nv: usize,
    /// Vectors per row of `Xᵀ` (`d` columns).
    nj: usize,
    /// Rows of `X` allocated: `dp`, or whole vectors of rows if more (the
    /// transpose reads `X` a block of `L` rows at a time; the rows past `d`
    /// are zero).
    xr: usize,
    /// The row stride of `Xᵀ` in vectors: `nj` made odd (a power-of-two
    /// stride maps sweep 3's column of loads onto a few cache sets).
    sj: usize,
}

impl Dims {
    fn new(d: usize, lanes: usize, r: usize) -> Option<Dims> {
        let dp = d.div_ceil(r).checked_mul(r)?;
        let nj = d.div_ceil(lanes);
        Some(Dims {
            d,
            dp,
            nv: d.checked_add(1)?.div_ceil(lanes),
            nj,
            xr: dp.max(nj.checked_mul(lanes)?),
            sj: nj | 1,
        })
    }

    /// The scalars of all buffers (`None` on overflow).
    fn total(&self, lanes: usize) -> Option<usize> {
        let x = self.xr.checked_mul(self.nv)?.checked_mul(lanes)?;
        let xt = (self.d + 1).checked_mul(self.sj)?.checked_mul(lanes)?;
        x.checked_add(xt)?
            .checked_add(row_start(self.d))?
            .checked_add(self.dp.checked_mul(4)?)
    }
}

/// The workspace of [`kl_grad_blocked`] for `d` at `lanes` lanes (`None` on
/// overflow): `X` (`d` rows of `w`, padded to whole tiles), `Xᵀ` (`d + 1`
/// rows of `⌈d⌉`), `L_q` row-major packed (used for other layouts), three
/// diagonals and a row of zeros.
pub(crate) fn scratch(d: usize, lanes: usize) -> Option<usize> {
    // Sized for the largest tile: every level fits.
    Dims::new(d, lanes, MAX_R)?.total(lanes)
}

/// Computes every pair's KL and gradients (added into the rows, or written
/// with `out.overwrite`). The caller has checked every shape and (for plain
/// diagonals) positivity, zeroed what is added into, and `work` holds
/// [`scratch`]`(d, lanes)` scalars. Returns `false` (touching nothing) if the
/// host lacks `level`.
pub(crate) fn kl_grad_blocked<T: Real>(
    level: Level,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: GradOut<'_, T>,
    work: &mut [T],
) -> bool {
    level
        .dispatch(Op {
            d,
            p,
            q,
            pairs,
            out,
            work,
        })
        .is_some()
}

struct Op<'a, T> {
    d: usize,
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: GradOut<'a, T>,
    work: &'a mut [T],
}

/// One pair's buffers: `x` (`xr` rows of `nv` vectors), `xt` (`d + 1` rows
/// of `sj` vectors); `1/L_qᵢᵢ` (1 in the padding), `L_qᵢᵢ`, `L_pᵢᵢ`, and
/// `dp` zeros (the rows of `L_q` in the padding).
struct Bufs<'a, T, V> {
    m: Dims,
    x: &'a mut [V],
    xt: &'a mut [V],
    inv: &'a mut [T],
    lqd: &'a mut [T],
    lpd: &'a mut [T],
    zeros: &'a [T],
}

impl<T: Real> WithSimd for Op<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        if core::mem::size_of::<T::V<S>>() >= 64 {
            self.run::<S, 8>(s);
        } else {
            self.run::<S, 4>(s);
        }
    }
}

impl<T: Real> Op<'_, T> {
    #[inline(always)]
    fn run<S: Simd, const R: usize>(self, s: S) {
        let Op {
            d,
            p,
            q,
            pairs,
            out,
            work,
        } = self;
        let lanes = T::lanes::<S>();
        let Some(m) = Dims::new(d, lanes, R) else {
            return; // cannot happen: the scratch was sized for MAX_R ≥ R
        };
        let (x, rest) = work.split_at_mut(m.xr * m.nv * lanes);
        let (xt, rest) = rest.split_at_mut((d + 1) * m.sj * lanes);
        let (lqbuf, rest) = rest.split_at_mut(row_start(d));
        let (inv, rest) = rest.split_at_mut(m.dp);
        let (lqd, rest) = rest.split_at_mut(m.dp);
        let (lpd, rest) = rest.split_at_mut(m.dp);
        let zeros = &mut rest[..m.dp];
        zeros.fill(T::ZERO);
        let mut b = Bufs {
            m,
            x: cast_slice_mut(x),
            xt: cast_slice_mut(xt),
            inv,
            lqd,
            lpd,
            zeros,
        };
        let t = row_start(d);
        for k in 0..out.kl.len() {
            let (kp, kq) = pairs.get(k);
            let g = if out.upstream.len() == 1 {
                out.upstream[0]
            } else {
                out.upstream[k]
            };
            let lq = unpack_q(&q, kq, d, lqbuf);
            let ld = load_q::<T, S>(s, &q, kq, &mut b);
            let ld = load_rhs::<T, S>(s, &p, (kp, &q.means[kq * d..][..d]), &mut b, ld);
            let sq = forward::<T, S, R>(s, &mut b, lq);
            out.kl[k] = finish(d, sq, T::ZERO, ld);
            transpose::<T, S>(s, &mut b);
            backward::<T, S, R>(s, &mut b, lq);
            let dst = (
                &mut out.means_p[kp * d..][..d],
                &mut out.means_q[kq * d..][..d],
                &mut out.factors_p[kp * t..][..t],
            );
            grad_p::<T, S>(s, &b, (p.layout, p.diagonal), g, dst, out.overwrite);
            let glq = &mut out.factors_q[kq * t..][..t];
            grad_q::<T, S, R>(s, &mut b, (q.layout, q.diagonal), g, glq, out.overwrite);
        }
    }
}

/// `L_q` of pair `kq` row-major packed: the caller's rows if it is
/// row-major, else unpacked into `buf`. Its diagonal (raw) is never read.
#[inline(always)]
fn unpack_q<'a, T: Real>(q: &Side<'a, T>, kq: usize, d: usize, buf: &'a mut [T]) -> &'a [T] {
    let t = row_start(d);
    let data = &q.tril[kq * t..][..t];
    if q.layout == Layout::RowMajor {
        return data;
    }
    for i in 0..d {
        let row = &mut buf[row_start(i)..][..=i];
        for (j, o) in row.iter_mut().enumerate() {
            *o = data[q.layout.index(d, i, j)];
        }
    }
    buf
}

/// The diagonal of `L_q` (pair `kq`): `1/L_qᵢᵢ` into `inv` (1 in the
/// padding), `L_qᵢᵢ` into `lqd`, a vector at a time; returns `−Σ log L_qᵢᵢ`.
#[inline(always)]
fn load_q<T: Real, S: Simd>(s: S, q: &Side<'_, T>, kq: usize, b: &mut Bufs<'_, T, T::V<S>>) -> T {
    let d = b.m.d;
    let t = row_start(d);
    let data = &q.tril[kq * t..][..t];
    let raw = &mut b.lqd[..d];
    for (i, r) in raw.iter_mut().enumerate() {
        *r = data[q.layout.index(d, i, i)];
    }
    let ld = -log_sum(q.diagonal, raw.iter().copied());
    let (inv, pad) = b.inv.split_at_mut(d);
    inv.copy_from_slice(raw);
    pad.fill(T::ONE);
    map_in_place::<T, S>(s, inv, q.diagonal, true);
    map_in_place::<T, S>(s, raw, q.diagonal, false);
    ld
}

/// `[μ_q − μ_p | L_p]` of pair `kp`, zero-padded (columns and rows), into
/// `x`; `L_pᵢᵢ` into `lpd`. Adds `Σ log L_pᵢᵢ` to `ld` and returns it. A
/// row-major row is `nv` unaligned vector loads from one entry before the
/// row (column `j + 1` is `L_p[i][j]`), the lanes right of the diagonal
/// zeroed; other layouts and the rows whose loads would run past the
/// factor go element by element.
#[inline(always)]
fn load_rhs<T: Real, S: Simd>(
    s: S,
    p: &Side<'_, T>,
    (kp, mq): (usize, &[T]),
    b: &mut Bufs<'_, T, T::V<S>>,
    ld: T,
) -> T {
    let lanes = T::lanes::<S>();
    let (d, nv) = (b.m.d, b.m.nv);
    let t = row_start(d);
    let data = &p.tril[kp * t..][..t];
    let mp = &p.means[kp * d..][..d];
    let raw = &mut b.lpd[..d];
    for (i, r) in raw.iter_mut().enumerate() {
        *r = data[p.layout.index(d, i, i)];
    }
    let ld = ld + log_sum(p.diagonal, raw.iter().copied());
    map_in_place::<T, S>(s, raw, p.diagonal, false);
    let (rows, pad) = b.x.split_at_mut(d * nv);
    pad.fill(T::V::<S>::zeroed());
    let w = nv * lanes;
    for (i, row) in rows.chunks_exact_mut(nv).enumerate() {
        let base = row_start(i).wrapping_sub(1);
        let src = match data.get(base..base.wrapping_add(w)) {
            Some(src) if p.layout == Layout::RowMajor => Some(src),
            _ => None,
        };
        if let Some(src) = src {
            let v = T::as_simd::<S>(src);
            for (c, (o, &v)) in row.iter_mut().zip(v).enumerate() {
                *o = T::vkeep_first(s, v, (i + 2).saturating_sub(c * lanes));
            }
        } else {
            let r: &mut [T] = cast_slice_mut(row);
            r.fill(T::ZERO);
            for (j, o) in r[1..=i].iter_mut().enumerate() {
                *o = data[p.layout.index(d, i, j)];
            }
        }
        let r: &mut [T] = cast_slice_mut(row);
        r[0] = mq[i] - mp[i];
        r[i + 1] = b.lpd[i];
    }
    ld
}

/// Sweep 1: `L_q X = X` in place, top-down; returns `Σ X²`.
#[inline(always)]
fn forward<T: Real, S: Simd, const R: usize>(s: S, b: &mut Bufs<'_, T, T::V<S>>, lq: &[T]) -> T {
    let lanes = T::lanes::<S>();
    let zero = T::vsplat(s, T::ZERO);
    let mut sq = [[zero; 3]; R];
    let nv = b.m.nv;
    let mut c = 0;
    while c < nv {
        let width = panel_width(nv - c);
        // Column `c·L` holds `M`'s column `c·L − 1` (or `y`): zero above row
        // `c·L − 1`, so the panel starts at that row's tile.
        let r0 = (c * lanes).saturating_sub(1);
        let mut i0 = r0 / R * R;
        while i0 < b.m.dp {
            let at = (i0, c, r0);
            match width {
                3 => fwd_tile::<T, S, R, 3>(s, b, lq, at, &mut sq),
                2 => fwd_tile::<T, S, R, 2>(s, b, lq, at, &mut sq),
                _ => fwd_tile::<T, S, R, 1>(s, b, lq, at, &mut sq),
            }
            i0 += R;
        }
        c += width;
    }
    let mut total = zero;
    for row in &sq {
        for v in row {
            total = T::vadd(s, total, *v);
        }
    }
    reduce::<T, S>(total)
}

/// Vectors in the next panel when `rest` are left: 3, but 4 as 2 + 2 (a
/// 1-vector panel runs 8 accumulators per step instead of 16 or 24).
#[inline(always)]
fn panel_width(rest: usize) -> usize {
    if rest == 4 { 2 } else { rest.min(3) }
}

/// `R` rows of `C` vectors of `x` from row `i0`, vector column `c`.
#[inline(always)]
fn load_tile<V: Copy, const R: usize, const C: usize>(
    x: &[V],
    nv: usize,
    i0: usize,
    c: usize,
) -> [[V; C]; R] {
    // Element-wise, so that the tile stays in registers (a `memcpy` into it
    // would pin it to the stack).
    core::array::from_fn(|r| {
        let row = &x[(i0 + r) * nv + c..][..C];
        core::array::from_fn(|cc| row[cc])
    })
}

/// Stores a tile loaded by [`load_tile`], element by element.
#[inline(always)]
fn store_tile<V: Copy, const R: usize, const C: usize>(
    x: &mut [V],
    nv: usize,
    (i0, c): (usize, usize),
    acc: &[[V; C]; R],
) {
    for (r, a) in acc.iter().enumerate() {
        let dst = &mut x[(i0 + r) * nv + c..][..C];
        for (o, &e) in dst.iter_mut().zip(a) {
            *o = e;
        }
    }
}

/// A copy of a tile made element by element (constant indices), so that
/// the accumulators of the loop before stay in registers while the copy
/// may live on the stack.
#[inline(always)]
fn spill<V: Copy + Zeroable, const R: usize, const C: usize>(acc: [[V; C]; R]) -> [[V; C]; R] {
    let mut t = [[V::zeroed(); C]; R];
    for r in 0..R {
        for cc in 0..C {
            t[r][cc] = acc[r][cc];
        }
    }
    t
}

/// Rows `i0..i0 + R` (a whole tile) of the panel at vector column `c`:
/// the rows `r0..i0` above are finished (those above `r0` are zero). `L_q`
/// is broadcast from its rows (`lrows`, the padding's rows zero).
#[inline(always)]
fn fwd_tile<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &mut Bufs<'_, T, T::V<S>>,
    lq: &[T],
    (i0, c, r0): (usize, usize, usize),
    sq: &mut [[T::V<S>; 3]; R],
) {
    let (d, nv) = (b.m.d, b.m.nv);
    let zeros = b.zeros;
    // Row i0 + r of L_q left of its diagonal.
    let lrows: [&[T]; R] = core::array::from_fn(|r| {
        let i = i0 + r;
        if i < d {
            &lq[row_start(i)..][..i]
        } else {
            &zeros[..i]
        }
    });
    let mut acc = load_tile::<T::V<S>, R, C>(b.x, nv, i0, c);
    let k0 = r0.min(i0);
    let n = i0 - k0;
    let l: [&[T]; R] = core::array::from_fn(|r| &lrows[r][k0..][..n]);
    let xs = &b.x[k0 * nv..i0 * nv];
    for (k, xk) in xs.chunks_exact(nv).take(n).enumerate() {
        let xk = &xk[c..c + C];
        for r in 0..R {
            let lr = T::vsplat(s, l[r][k]);
            for cc in 0..C {
                acc[r][cc] = T::vneg_mul_add(s, lr, xk[cc], acc[r][cc]);
            }
        }
    }
    // The R × R triangle in registers: every index a constant.
    let tri = (&lrows, i0, &b.inv[i0..i0 + R]);
    acc = fwd_step::<T, S, R, C, 0>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 1>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 2>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 3>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 4>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 5>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 6>(s, acc, tri, sq);
    acc = fwd_step::<T, S, R, C, 7>(s, acc, tri, sq);
    store_tile(b.x, nv, (i0, c), &acc);
}

/// Row `Q` of a forward tile's triangle (a no-op for `Q ≥ R`): scaled by
/// `1 / L_qᵢᵢ`, squared into `sq`, eliminated from the rows below.
#[inline(always)]
fn fwd_step<T: Real, S: Simd, const R: usize, const C: usize, const Q: usize>(
    s: S,
    mut acc: [[T::V<S>; C]; R],
    (lrows, i0, inv): (&[&[T]; R], usize, &[T]),
    sq: &mut [[T::V<S>; 3]; R],
) -> [[T::V<S>; C]; R] {
    const { assert!(R <= MAX_R) };
    if Q >= R {
        return acc;
    }
    let iv = T::vsplat(s, inv[Q]);
    let mut xq = acc[Q];
    for cc in 0..C {
        xq[cc] = T::vmul(s, xq[cc], iv);
        sq[Q][cc] = T::vmul_add(s, xq[cc], xq[cc], sq[Q][cc]);
    }
    acc[Q] = xq;
    for r in Q + 1..R {
        let l = T::vsplat(s, lrows[r][i0 + Q]);
        for cc in 0..C {
            acc[r][cc] = T::vneg_mul_add(s, l, xq[cc], acc[r][cc]);
        }
    }
    acc
}

/// `Xᵀ[c][j] = X[j][c]` (zero for `c > j + 1`, where `X` is zero, and in
/// the padding). On AVX-512 a block of `L` rows of `X` at a time through the
/// crate's shuffle transpose (`L × L` tiles, `L·log₂ L` two-source permutes
/// per tile, whole-vector stores: the element copy was a scalar store per
/// entry, 9–13 % of the time at d = 64..256); elsewhere element by element.
#[inline(always)]
fn transpose<T: Real, S: Simd>(s: S, b: &mut Bufs<'_, T, T::V<S>>) {
    let lanes = T::lanes::<S>();
    let (d, nj, sj, w) = (b.m.d, b.m.nj, b.m.sj, b.m.nv * lanes);
    let x: &[T] = cast_slice(&*b.x);
    let mut fast = true;
    for jv in 0..nj {
        let (Some(rows), true) = (x.get(jv * lanes * w..(jv + 1) * lanes * w), fast) else {
            fast = false;
            break;
        };
        let mut dst = XtColumn {
            xt: &mut *b.xt,
            sj,
            jv,
            rows: d + 1,
        };
        fast = simd::transpose::<T, S>(s, w, &XRows(rows, s), &mut dst);
    }
    if fast {
        return;
    }
    let xt: &mut [T] = cast_slice_mut(&mut *b.xt);
    for (c, row) in xt.chunks_exact_mut(sj * lanes).enumerate().take(d + 1) {
        let j0 = c.saturating_sub(1);
        row[..j0].fill(T::ZERO);
        for (j, v) in row[..d].iter_mut().enumerate().skip(j0) {
            *v = x[j * w + c];
        }
        row[d..].fill(T::ZERO);
    }
}

/// `L` consecutive rows of `X` (records of `w` scalars) as a transpose source.
struct XRows<'a, T, S>(&'a [T], S);
impl<T: Real, S: Simd> Load<T::V<S>> for XRows<'_, T, S> {
    #[inline(always)]
    fn load(&self, off: usize) -> T::V<S> {
        self.0
            .get(off..off + T::lanes::<S>())
            .and_then(|v| T::as_simd::<S>(v).first().copied())
            .unwrap_or(T::vsplat(self.1, T::ZERO))
    }
}

/// Output `c` of a block (column `c` of rows `jv·L..`) into row `c` of `Xᵀ`,
/// vector `jv`; rows `c > d` are not kept.
struct XtColumn<'a, V> {
    xt: &'a mut [V],
    sj: usize,
    jv: usize,
    rows: usize,
}
impl<V> Store<V> for XtColumn<'_, V> {
    #[inline(always)]
    fn store(&mut self, c: usize, v: V) {
        if c < self.rows
            && let Some(o) = self.xt.get_mut(c * self.sj + self.jv)
        {
            *o = v;
        }
    }
}

/// Sweep 2: `L_qᵀ [u | Z] = X` in place, bottom-up; in each panel only the
/// tiles at or below its first column's diagonal.
#[inline(always)]
fn backward<T: Real, S: Simd, const R: usize>(s: S, b: &mut Bufs<'_, T, T::V<S>>, lq: &[T]) {
    let lanes = T::lanes::<S>();
    let nv = b.m.nv;
    let mut c = 0;
    while c < nv {
        let width = panel_width(nv - c);
        let first = (c * lanes).saturating_sub(1) / R * R;
        let mut i0 = b.m.dp;
        while i0 > first {
            i0 -= R;
            match width {
                3 => bwd_tile::<T, S, R, 3>(s, b, lq, i0, c),
                2 => bwd_tile::<T, S, R, 2>(s, b, lq, i0, c),
                _ => bwd_tile::<T, S, R, 1>(s, b, lq, i0, c),
            }
        }
        c += width;
    }
}

/// Rows `i0..i0 + R` of a panel at vector column `c`: the rows below are
/// finished. Step `k` broadcasts `L_q[k][i0..i0 + R]`, contiguous in row
/// `k` of the packed `L_q` (only the rows `k < d`: the padding of `X` is zero).
#[inline(always)]
fn bwd_tile<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &mut Bufs<'_, T, T::V<S>>,
    lq: &[T],
    i0: usize,
    c: usize,
) {
    let (d, nv) = (b.m.d, b.m.nv);
    let mut acc = load_tile::<T::V<S>, R, C>(b.x, nv, i0, c);
    let start = i0 + R;
    if start < d {
        let xs = &b.x[start * nv..d * nv];
        let mut off = row_start(start) + i0;
        for (k, xk) in (start..d).zip(xs.chunks_exact(nv)) {
            let l = &lq[off..][..R];
            let xk = &xk[c..c + C];
            for r in 0..R {
                let lr = T::vsplat(s, l[r]);
                for cc in 0..C {
                    acc[r][cc] = T::vneg_mul_add(s, lr, xk[cc], acc[r][cc]);
                }
            }
            off += k + 1;
        }
    }
    // The R × R triangle, bottom-up, in registers: row i0 + q of L_q from
    // column i0 (zeros in the padding).
    let zeros = b.zeros;
    let trows: [&[T]; R] = core::array::from_fn(|qq| {
        let i = i0 + qq;
        if i < d {
            &lq[row_start(i) + i0..][..qq]
        } else {
            &zeros[..qq]
        }
    });
    let tri = (&trows, &b.inv[i0..i0 + R]);
    acc = bwd_step::<T, S, R, C, 7>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 6>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 5>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 4>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 3>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 2>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 1>(s, acc, tri);
    acc = bwd_step::<T, S, R, C, 0>(s, acc, tri);
    store_tile(b.x, nv, (i0, c), &acc);
}

/// Row `Q` of a backward tile's triangle (a no-op for `Q ≥ R`): scaled by
/// `1 / L_qᵢᵢ`, eliminated from the rows above (`L_q[i0 + Q][i0 + r]`).
#[inline(always)]
fn bwd_step<T: Real, S: Simd, const R: usize, const C: usize, const Q: usize>(
    s: S,
    mut acc: [[T::V<S>; C]; R],
    (trows, inv): (&[&[T]; R], &[T]),
) -> [[T::V<S>; C]; R] {
    const { assert!(R <= MAX_R) };
    if Q >= R {
        return acc;
    }
    let iv = T::vsplat(s, inv[Q]);
    let mut xq = acc[Q];
    for v in &mut xq {
        *v = T::vmul(s, *v, iv);
    }
    acc[Q] = xq;
    for r in 0..Q {
        let l = T::vsplat(s, trows[Q][r]);
        for cc in 0..C {
            acc[r][cc] = T::vneg_mul_add(s, l, xq[cc], acc[r][cc]);
        }
    }
    acc
}

/// Writes (or adds) `v` into `slot`.
#[inline(always)]
fn put<T: Real>(slot: &mut T, v: T, overwrite: bool) {
    if overwrite { *slot = v } else { *slot += v }
}

/// `g · ∂/∂μ_p = −g·u`, `g · ∂/∂μ_q = g·u` and `g · ∂/∂L_p = g · (lower(Z) −
/// diag(1/L_pᵢᵢ))` into the pair's rows.
#[inline(always)]
fn grad_p<T: Real, S: Simd>(
    s: S,
    b: &Bufs<'_, T, T::V<S>>,
    (layout, diagonal): (Layout, Diagonal),
    g: T,
    (gmp, gmq, glp): (&mut [T], &mut [T], &mut [T]),
    overwrite: bool,
) {
    let (d, w) = (b.m.d, b.m.nv * T::lanes::<S>());
    let x: &[T] = cast_slice(&*b.x);
    for (i, row) in x.chunks_exact(w).enumerate().take(d) {
        let gu = g * row[0];
        put(&mut gmp[i], -gu, overwrite);
        put(&mut gmq[i], gu, overwrite);
        let z = &row[1..=i + 1];
        if layout == Layout::RowMajor {
            scaled_into::<T, S>(s, &mut glp[row_start(i)..][..i], &z[..i], g, overwrite);
        } else {
            for (j, &v) in z[..i].iter().enumerate() {
                put(&mut glp[layout.index(d, i, j)], g * v, overwrite);
            }
        }
        let (zii, lp) = (z[i], b.lpd[i]);
        let v = match diagonal {
            Diagonal::Log => g * (zii * lp - T::ONE),
            Diagonal::Plain => g * (zii - T::ONE / lp),
        };
        put(&mut glp[layout.index(d, i, i)], v, overwrite);
    }
}

/// `dst[j] ← g·src[j]` (or `+=`), whole vectors then the tail: the same
/// roundings as [`put`] entry by entry.
#[inline(always)]
fn scaled_into<T: Real, S: Simd>(s: S, dst: &mut [T], src: &[T], g: T, overwrite: bool) {
    let n = dst.len().min(src.len());
    let head = n / T::lanes::<S>() * T::lanes::<S>();
    let (dv, dt) = dst[..n].split_at_mut(head);
    let (sv, st) = src[..n].split_at(head);
    let gv = T::vsplat(s, g);
    for (o, &v) in T::as_mut_simd::<S>(dv).iter_mut().zip(T::as_simd::<S>(sv)) {
        let x = T::vmul(s, gv, v);
        *o = if overwrite { x } else { T::vadd(s, *o, x) };
    }
    for (o, &v) in dt.iter_mut().zip(st) {
        put(o, g * v, overwrite);
    }
}

/// Where sweep 3 writes: `L_q`'s gradient rows, their form, the upstream
/// weight, overwrite or add.
struct Dst<'a, T> {
    glq: &'a mut [T],
    form: (Layout, Diagonal),
    g: T,
    overwrite: bool,
}

/// Sweep 3: `S = [u | Z] Xᵀ` (lower part), a row tile at a time, written as `g · ∂/∂L_q = −g·S` below the diagonal and `g · (1/L_qᵢᵢ −
/// Sᵢᵢ)` on it.
#[inline(always)]
fn grad_q<T: Real, S: Simd, const R: usize>(
    s: S,
    b: &mut Bufs<'_, T, T::V<S>>,
    form: (Layout, Diagonal),
    g: T,
    glq: &mut [T],
    overwrite: bool,
) {
    let lanes = T::lanes::<S>();
    let (d, nj) = (b.m.d, b.m.nj);
    let dst = &mut Dst {
        glq,
        form,
        g,
        overwrite,
    };
    let mut i0 = 0;
    while i0 < d {
        // The panels with a column j ≤ the tile's last row.
        let last = (i0 + R - 1).min(d - 1) / lanes;
        let mut jc = 0;
        while jc <= last {
            let width = panel_width(nj - jc);
            let at = (i0, jc);
            match width {
                3 => s_tile::<T, S, R, 3>(s, b, at, dst),
                2 => s_tile::<T, S, R, 2>(s, b, at, dst),
                _ => s_tile::<T, S, R, 1>(s, b, at, dst),
            }
            jc += width;
        }
        i0 += R;
    }
}

/// Rows `i0..i0 + R` × vector columns `jc..jc + C` of `S`, then written.
#[inline(always)]
fn s_tile<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &Bufs<'_, T, T::V<S>>,
    (i0, jc): (usize, usize),
    dst: &mut Dst<'_, T>,
) {
    let lanes = T::lanes::<S>();
    let (d, w) = (b.m.d, b.m.nv * lanes);
    let j0 = jc * lanes;
    // Xᵀ[c][j] = 0 for c > j + 1: the last column read is j0 + C·L.
    let n = (j0 + C * lanes).min(d) + 1;
    let mut acc = [[T::V::<S>::zeroed(); C]; R];
    let sj = b.m.sj;
    let xt = &b.xt[..n * sj];
    // Row i0 + r of [u | Z], broadcast entry by entry (padding rows are zero).
    let z: &[T] = cast_slice(&*b.x);
    let zrows: [&[T]; R] = core::array::from_fn(|r| &z[(i0 + r) * w..][..n]);
    for (c, xc) in (0..n).zip(xt.chunks_exact(sj)) {
        let xc = &xc[jc..jc + C];
        for r in 0..R {
            let z = T::vsplat(s, zrows[r][c]);
            for cc in 0..C {
                acc[r][cc] = T::vmul_add(s, z, xc[cc], acc[r][cc]);
            }
        }
    }
    let (layout, diagonal) = dst.form;
    let (g, ow) = (dst.g, dst.overwrite);
    let neg_g = T::vsplat(s, -g);
    let acc = spill(acc);
    let mut buf = [T::ZERO; 3 * MAX_LANES];
    for (r, a) in acc.iter().enumerate() {
        let i = i0 + r;
        if i >= d {
            break;
        }
        let jend = (j0 + C * lanes).min(i + 1);
        // −g · S, row i, columns j0 .. j0 + C·L, then the diagonal apart.
        let bv: &mut [T::V<S>] = cast_slice_mut(&mut buf[..C * lanes]);
        for cc in 0..C {
            bv[cc] = T::vmul(s, neg_g, a[cc]);
        }
        let below = jend.min(i);
        if below > j0 {
            let vals = &buf[..below - j0];
            if layout == Layout::RowMajor {
                let out = &mut dst.glq[row_start(i) + j0..][..below - j0];
                scaled_into::<T, S>(s, out, vals, T::ONE, ow);
            } else {
                for (j, &v) in (j0..below).zip(vals) {
                    put(&mut dst.glq[layout.index(d, i, j)], v, ow);
                }
            }
        }
        // The diagonal, if this panel holds it (a tile's first rows may lie
        // left of the panel: i < j0).
        if j0 <= i && jend == i + 1 {
            let v = a[(i - j0) / lanes];
            let sii = cast_slice::<T::V<S>, T>(core::slice::from_ref(&v))[(i - j0) % lanes];
            let gv = match diagonal {
                Diagonal::Log => g * (T::ONE - sii * b.lqd[i]),
                Diagonal::Plain => g * (b.inv[i] - sii),
            };
            put(&mut dst.glq[layout.index(d, i, i)], gv, ow);
        }
    }
}
