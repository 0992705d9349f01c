//! Large-`d` SIMD kernel: one pair at a time, the triangular solve
//! `L_q X = [μ_q − μ_p | L_p]` as a sequence of GEMM-like register tiles.
//!
//! ## Data layout
//! The right-hand side (`y = μ_q − μ_p` in column 0, `L_p`'s column `j` in
//! column `j + 1`, `w` = `d + 1` rounded up to whole vectors) is stored
//! *panel-major*: panels of [`C`] vectors (the last one narrower), each
//! panel `d` rows of `C·L` numbers, contiguous. A panel whose first column
//! is `a` is zero above row `a − 1`; those rows are neither written nor read.
//! `L_q` is read where the caller keeps it (row-major packed; a column-major
//! factor is first transposed into the workspace): the kernel never needs
//! its diagonal, only `1 / L_qᵢᵢ`, computed once per pair (vector `exp` of
//! `−log L_qᵢᵢ` for a log diagonal). `L_p`'s log diagonal is exponentiated
//! with the vector `exp` too (≤ 2 ulp, [`exp_in_place`](crate::simd::exp_in_place);
//! the kernel's error bound is dominated by the `O(d·ε)` of the solve).
//!
//! ## Micro-kernel
//! A tile is `R` rows × `C` vectors of accumulators (`R = 8` where vectors
//! are 64 bytes, 24 of AVX-512's 32 registers; `R = 3` elsewhere, 9 of
//! AVX2's 16: 4 × 3 spilled; the AVX-512 level below d = 64 runs the
//! AVX2 shape, 256-bit vectors and `R = 3`, faster on Zen 4: "Measured"),
//! initialised with the right-hand side and updated by
//!
//! ```text
//! acc[r][c] −= L_q[i0 + r][k] · X[k][c]        (k below the tile)
//! ```
//!
//! one load of `X[k]` per vector serving `R` rows, one broadcast of
//! `L_q[i0 + r][k]` (a memory operand of the FMA on AVX-512) serving `C`
//! vectors. The `k` loop of each vector starts at its own first nonzero row
//! (the loop runs in `C` segments with 1, 2, …, `C` vectors active), so the
//! zero triangle of `L_q⁻¹L_p` is skipped to within one vector's width. The
//! tile's own `R × R` triangle is finished in registers (multiplied by
//! `1 / L_qᵢᵢ` row by row), each finished vector is squared into `C`
//! running sums (fused `‖y‖² + ‖M‖²_F`) and stored. Rows of a panel are
//! tiled from the bottom (`d`) up; the `(d − start) mod R` rows at the top
//! of a panel, where the `k` loops are shortest, run as 1-row tiles.
//!
//! ## Per pair, around the solve
//! `[y | L_p]` is written panel by panel, only the rows the solve reads: a
//! row-major `L_p` row is `C` unaligned whole-vector loads (column `j ≥ 1`
//! is `L_p[i][j − 1]`, so a panel's row starts one entry before its first
//! column), the lanes right of the diagonal zeroed by a select, `y` set in
//! lane 0 of the first panel (this pass replaced a row-by-row copy with
//! per-row bookkeeping that perf put at a fifth of the time at `d = 64`:
//! 2.5 → 2.1 µs per pair, `f32`, one pair repeated, so cache-resident).
//! Its raw diagonal is read first and exponentiated a vector at a time;
//! `1 / L_qᵢᵢ` is computed in the first
//! panel's tiles, each tile's `R` entries at its start, before its `k`
//! loop streams those rows of `L_q` (a strided gather of the whole
//! diagonal up front missed the cache on every row: 12 % of the time at
//! `d = 128` under perf; computed after the `k` loop, as first written, it
//! sat between the loop and the triangle). The log-determinants are
//! summed in four interleaved partial sums each, `Σ log L_pᵢᵢ − Σ log L_qᵢᵢ`.
//!
//! ## Measured
//! Intel Xeon (Sapphire Rapids class, AVX-512, 2 cores shared with other
//! jobs, load 6–8), one thread, roofline example (`--op kl`, on-CPU time,
//! medians of 7), two runs each, pairs/s, previous kernel → this one:
//! `f32` d = 32: 0.66–0.73 M → 1.0 M; d = 64: 191–199 k → 346–347 k;
//! d = 128: 51–52 k → 86–93 k; d = 256: 8.9–9.2 k → 15.3–16.1 k; `f64` d = 32:
//! 436–512 k → 750–786 k; d = 64: 110–113 k → 190–200 k; d = 128: 27 k →
//! 45–46 k; d = 256: 4.7–4.9 k → 8.0–8.3 k. perf at `d = 128`: the 24-FMA
//! loop and its 1- and 2-vector segments take about half the time, the
//! copy of `L_p` and the first reads of `L_q` most of the rest — not the
//! memory: one pair repeated (cache-resident) runs at the rate of a batch
//! of distinct pairs (f32 d = 64: 2.5 µs per pair both, 2.1 after the
//! vector-wise right-hand side above). A software prefetch of the next pair by plain
//! loads (no `unsafe` prefetch intrinsics) was measured and was 2–5 %
//! slower (likely: its loads evict the panel from L1), so it is not in the
//! tree. Nor is `prefetcht0`/`prefetcht1` through pulp's safe SSE token
//! (as in the search kernel): one line of the next pair's means, `L_p` and
//! `L_q` (the factors it shares with this pair skipped) per `k` iteration
//! of every segment, the rest after the solve. Same machine, roofline
//! example, 4–6 runs alternated with the tree's kernel, pairs/s:
//! `f64` d = 128 42.4–49.8 k → 46.9–52.4 k, `f64` d = 256 +2–5 %, `f32`
//! d = 128 and 256 unchanged (82–95 k, 15–17 k both), d = 64 0–6 % and
//! d = 32 5–10 % slower (T0 and T1 alike; also when enabled only for
//! factors ≥ 32 KiB, the split loop and per-segment bookkeeping alone cost
//! that). Branch `blocked2-prefetch` keeps that experiment. The inner loop's assembly (AVX-512, `f32`): 24 `vfnmadd231ps` on
//! 24 register accumulators, 3 vector loads, 8 broadcasts, no spill; one
//! compare-and-branch of `k` against a row length per iteration is left.
//!
//! Where the time goes (issue 13, branch `blk3`; same machine, `perf`
//! cpu-clock samples mapped to source lines through `addr2line -i`, a
//! line-tables build, one thread, `f32`, share of the kernel's samples):
//! d = 64, 32 pairs (L2-resident): `segment`'s FMAs 30 %, the tile's
//! triangle 16 % (its FMAs wait on the last `k` FMAs), `load_panel` 17 %
//! (its loads, selects and stores), the vector `exp` of `−log L_qᵢᵢ` 6 %,
//! `log_sum` 4 %; d = 64, 256 pairs (from DRAM): the same plus the raw
//! diagonal gather of `L_p` at 10 % (the first touch of the pair);
//! d = 128, 32 pairs: `segment` 46 % (the FMAs it executes, counted, at
//! about 2 per cycle: the loop itself is at the port limit), `load_panel`
//! 21 %, the diagonal gather 4 %, the triangle 8 %. So the rest of the
//! time is the `O(d²)` pass over `L_p` (its reads of a fresh pair at the
//! single-core L2/L3 rate) and the in-register triangle, not the loop.
//! Tried there and measured against this kernel (roofline example,
//! alternated, 2–3 runs each, pairs/s; none is in the tree):
//! the triangle's rows eliminated with `L_q[r][i] / L_qᵢᵢ` pre-scaled (the
//! chain one FMA per row instead of a multiply and an FMA): unchanged
//! (`f32` d = 64 447–465 k against 458–470 k); the plain-diagonal `Σ ln`
//! as one `ln` of a product of mantissas plus the exponents: unchanged;
//! the raw diagonal of `L_p` read after the panels (no longer the first
//! touch) plus `load_panel`'s select only on the vector holding the
//! diagonal: the samples moved, the time did not (`f32` d = 64 496–505 k
//! against 490–502 k, d = 128 107–109 k against 110–112 k); `prefetcht1`
//! of the next pair in bursts before each tile (its lines spread evenly
//! over the tiles): 0–10 % slower everywhere (`f32` d = 256 16.5–17.0 k
//! against 17.9 k: likely the bursts hold the fill buffers the `L_q`
//! stream needs); the next pair's right-hand side loaded into a second
//! buffer a share of rows before each tile (demand loads overlapping the
//! FMAs, twice the `x` scratch): 10–30 % slower (`f32` d = 32 1.0–1.1 M
//! against 1.5 M, d = 128 98 k against 111 k); panels of 2 vectors at
//! d ≥ 192 (a 3-vector panel is all of L1 at d = 256): unchanged; row
//! blocks outer, panels inner (a block of `L_q` in L1 across panels, the
//! panels' triangles independent): unchanged, `d = 256` 2–5 % slower.
//! What did help: the first panel's `1 / L_qᵢᵢ` (a strided read of 8
//! diagonal entries, a vector `exp` through a buffer) computed at the
//! *start* of its tile instead of between the `k` loop and the triangle,
//! where it delayed the triangle (it depends on `L_q` alone, so now it
//! runs under the tile's FMAs). Three alternated runs each, pairs/s,
//! before → after: `f32` d = 32 1.6 → 1.7 M, d = 64 497–503 k → 507–527 k,
//! d = 128 108–110 k → 112–118 k, d = 256 18.1–18.2 k → 18.7–19.1 k; `f64`
//! d = 64 255–263 k → 268–282 k, d = 128 52–54 k → 55–55.3 k, d = 256
//! 9.1–9.4 k → 9.5–9.6 k. With that in place the pre-scaled triangle
//! above was re-measured and was 10 % slower at `f32` d = 128 (its 28
//! scalar multiplies per tile), so it stays out.
//!
//! Zen 4 (EPYC), AVX-512 (issue 13, branch `blk4`; 2 vCPUs shared with
//! other jobs, `perf` cpu-clock samples mapped to source lines, a
//! line-tables build, `f32`, share of the kernel's samples): d = 64, 64
//! pairs: `segment` 32 %, `load_panel` 18 % (10.8 % on its loads and
//! selects alone, the first touch of `L_p`), `tri_step` 13 %, the vector
//! `exp` of both diagonals 8.5 %, the raw diagonal gather 4 %, `log_sum`
//! 3 %; d = 128, 32 pairs: `segment` 50 %, `load_panel` 13.5 %,
//! `tri_step` 8 %, the `exp`s 4.4 %. Tried there (branch
//! `blk4-direct-init` keeps it): each tile starts from `L_p` directly
//! (the rows read and masked as `load_panel` does, the log diagonal
//! exponentiated per tile in the one panel that holds it, `Σ log L_pᵢᵢ`
//! after the solve), no panel copy and no `put_diagonal`. Read before the
//! `k` loop, the tile's `L_p` pointers stayed live in it and LLVM spilled
//! the `L_q` row pointers there (a reload per broadcast); added after the
//! loop, the loads of a fresh `L_p` no longer overlapped the FMAs. Both
//! slower; scratch example, alternated, pairs/s, tree → experiment (read
//! before / added after): `f32` d = 32 0.62–0.74 M → 0.38–0.54 M / 0.67–0.81 M
//! → 0.46–0.56 M; d = 64 186–198 k → 143–164 k / 244–248 k → 172–179 k;
//! `f64` d = 32 443 k → 317–332 k / 520–546 k → 300–329 k; d = 64 140 k →
//! 110–112 k / 127–143 k → 92–94 k. (Built through `core::array::from_fn`
//! with a closure the rows were 3× slower: the closure stayed out of line
//! without the level's target features.)
//! Also tried (branch `blk4-ymm`): at AVX-512, 256-bit vectors (pulp's
//! `V3` operations inside the `V4` context, so 32 registers and 8 × 3
//! tiles): a zmm FMA takes both of Zen 4's 256-bit FMA pipes, so the peak
//! is the same and the zero triangle is skipped to within 8 `f32` lanes
//! instead of 16 (at d = 32 about 27 % fewer FMAs executed), but panels are
//! half as wide, so `L_q` is streamed twice as often. Scratch example,
//! alternated, medians of 5, pairs/s, tree → 256-bit: `f32` d = 32
//! (1024 pairs) 0.92 M → 1.11 M, d = 64 (256) 304 k → 302 k, d = 128 (32)
//! 74 k → 77 k, d = 256 (8) 13 k → 13 k; `f64` 5–15 % slower (d = 32 0.67–0.72 M
//! → 0.61 M, d = 64 185 k → 153–162 k, d = 128 39–40 k → 34–35 k). Limited
//! to `f32` below d = 48 and re-measured: d = 32 0.91 M → 0.82 M, d = 40
//! 694 k → 613 k, d = 47 498 k → 479 k, d = 17 2.02 M → 2.07 M: no gain
//! beyond the noise of the shared machine (±10 % between runs), not kept.
//! What did help there: below d = 64 the AVX-512 level runs the AVX2
//! shape, 256-bit vectors and 3 × 3 tiles (pulp's `V3` operations inside
//! the `V4` context, so EVEX encodings and 32 registers), which the AVX2
//! level itself had been measured to beat AVX-512 with at d = 32 (`f32`
//! 1.27 M against 1.14 M, `f64` 0.85 M against 0.74 M pairs/s, medians of
//! 6): short tiles, a 3-row triangle, and the zero triangle skipped to
//! within 8 `f32` / 4 `f64` lanes. Scratch example, AVX-512, alternated
//! with the previous kernel, pairs/s, medians of 5 (`f64` d = 32 and 48:
//! of 6): `f32` d = 32 (1024 pairs) 1.09 M → 1.48 M (5 of 5 rounds
//! faster), d = 48 (512) 547 k → 694 k (5 of 5), d = 63 (256) 372 k →
//! 368 k (4 of 5 faster); `f64` d = 32 (1024) 0.67 M → 0.80 M (4 of 6),
//! d = 48 (512) 259 k → 335 k (5 of 6), d = 63 (256) 160 k → 168 k. From
//! d = 64 on the 8 × 3 zmm tiles stay (the AVX2 level was no faster there:
//! `f32` d = 64 376 k against 352 k, d = 128 77 k against 83 k).
//! It runs as an operation of its own ([`Narrow`], its own dispatched
//! function): first written as a branch inside the 8 × 3 kernel's function
//! it slowed that kernel at d = 64 (`f32` 0.82–0.89× in alternated runs,
//! same source). Not yet measured on a core with 512-bit FMA pipes
//! (Sapphire Rapids), where the 8 × 3 zmm tiles have twice the peak of
//! 256-bit ones: re-measure there before relying on it.

use super::lanes::{Pairs, Side};
use super::scalar::finish;
use crate::real::Real;
use crate::simd::{Level, Simd, Zeroable};
use crate::tril::{Diagonal, Layout, row_start};
use crate::view::PackedTril;
use pulp::WithSimd;
use pulp::bytemuck::{cast_slice, cast_slice_mut};

/// Vectors per panel and per tile (the tile's width), every level.
const C: usize = 3;
/// Most lanes of any level (16 × `f32`).
const MAX_LANES: usize = 16;

/// Computes `out[k]` for every `k < out.len()`; shapes (and plain-diagonal
/// positivity) are the caller's to check, and `work` holds at least
/// `d·w + d(d+1)/2 + d` scalars, `w` = `d + 1` rounded up to whole vectors
/// (the batch layer's scratch). Returns `false` if the host lacks `level`.
pub(crate) fn kl_blocked<T: Real>(
    level: Level,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: &mut [T],
    work: &mut [T],
) -> bool {
    let op = BlockedOp {
        d,
        p,
        q,
        pairs,
        out,
        work,
    };
    // Below d = 64 the AVX-512 level runs the AVX2 shape (256-bit vectors,
    // 3 × 3 tiles) inside the AVX-512 context (module doc, "Measured"), as
    // an operation of its own: in the same function as the 8 × 3 kernel it
    // slowed that one at d = 64 by 15–18 %.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if d < 64 && level == Level::Avx512 {
        return level.dispatch(Narrow(op)).is_some();
    }
    level.dispatch(op).is_some()
}

/// [`BlockedOp`] in 256-bit vectors and 3 × 3 tiles at the AVX-512 level.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
struct Narrow<'a, T>(BlockedOp<'a, T>);

#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
impl<T: Real> WithSimd for Narrow<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let any: &dyn core::any::Any = &s;
        match any.downcast_ref::<pulp::x86::V4>() {
            Some(v4) => run::<T, pulp::x86::V3, 3>(**v4, self.0),
            None => self.0.with_simd(s),
        }
    }
}

struct BlockedOp<'a, T> {
    d: usize,
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: &'a mut [T],
    work: &'a mut [T],
}

impl<T: Real> WithSimd for BlockedOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        // 64-byte vectors: 32 registers (AVX-512) or emulated; 8 × 3 tiles.
        // Else 16 registers (AVX2): 3 × 3 (9 accumulators, 3 loads, one
        // broadcast); 4 × 3 needs all 16 and LLVM spilled two of them
        // (AVX2, d = 128: 3 × 3 gave 68–70 k pairs/s f32 and 33–35 k f64
        // against 58–62 k and 26–30 k; equal at d = 64).
        if core::mem::size_of::<T::V<S>>() >= 64 {
            run::<T, S, 8>(s, self);
        } else {
            run::<T, S, 3>(s, self);
        }
    }
}

/// The pair loop with `R`-row tiles.
#[inline(always)]
fn run<T: Real, S: Simd, const R: usize>(s: S, op: BlockedOp<'_, T>) {
    let BlockedOp {
        d,
        p,
        q,
        pairs,
        out,
        work,
    } = op;
    let lanes = T::lanes::<S>();
    let wv = (d + 1).div_ceil(lanes);
    let tri = row_start(d);
    let (x, rest) = work.split_at_mut(d * wv * lanes);
    let (lq_buf, rest) = rest.split_at_mut(tri);
    let diag = &mut rest[..d];
    for (k, o) in out.iter_mut().enumerate() {
        let (kp, kq) = pairs.get(k);
        let tp = PackedTril {
            d,
            data: &p.tril[kp * tri..kp * tri + tri],
            layout: p.layout,
            diagonal: p.diagonal,
        };
        let tq = PackedTril {
            d,
            data: &q.tril[kq * tri..kq * tri + tri],
            layout: q.layout,
            diagonal: q.diagonal,
        };
        let mp = &p.means[kp * d..kp * d + d];
        let mq = &q.means[kq * d..kq * d + d];
        // load_rhs also reads L_p's raw diagonal into `diag`.
        load_rhs::<T, S>(s, tp, (mp, mq), [lanes, wv], x, diag);
        let ld_p = log_sum(tp.diagonal, diag.iter().copied());
        if tp.diagonal == Diagonal::Log {
            map_in_place::<T, S>(s, diag, Diagonal::Log, false);
            put_diagonal([d, lanes, wv], x, diag);
        }
        let lq: &[T] = if tq.layout == Layout::RowMajor {
            tq.data
        } else {
            for i in 0..d {
                for j in 0..=i {
                    lq_buf[row_start(i) + j] = tq.data[tq.layout.index(d, i, j)];
                }
            }
            lq_buf
        };
        let sq = solve::<T, S, R>(s, [d, wv], x, (lq, tq.diagonal), diag);
        // L_q's diagonal is in cache now (the solve read every row of it).
        let ld_q = log_sum(tq.diagonal, (0..d).map(|i| lq[row_start(i) + i]));
        *o = finish(d, sq, T::ZERO, ld_p - ld_q);
    }
}

/// `Σ log Lᵢᵢ` of raw diagonal entries, in four interleaved partial sums
/// (a single running sum was a chain of `d` dependent adds).
#[inline(always)]
pub(crate) fn log_sum<T: Real>(diagonal: Diagonal, raw: impl Iterator<Item = T>) -> T {
    // One loop per encoding: a `match` inside kept the sums in memory.
    let mut acc = [T::ZERO; 4];
    match diagonal {
        Diagonal::Log => raw.enumerate().for_each(|(i, r)| acc[i % 4] += r),
        Diagonal::Plain => raw.enumerate().for_each(|(i, r)| acc[i % 4] += r.ln()),
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3])
}

/// Writes `diag[i]` at `L_p`'s diagonal entry `(i, i)` (column `i + 1`) in
/// the panels of `x` (`[d, lanes, wv]`), panel by panel.
#[inline(always)]
fn put_diagonal<T: Real>([d, lanes, wv]: [usize; 3], x: &mut [T], diag: &[T]) {
    let mut c0 = 0;
    while c0 < wv {
        let width = C.min(wv - c0) * lanes;
        let a = c0 * lanes;
        let panel = &mut x[d * a..d * (a + width)];
        // Rows a − 1 .. a + width − 1 have their diagonal in this panel.
        for i in a.saturating_sub(1)..(a + width - 1).min(d) {
            panel[i * width + i + 1 - a] = diag[i];
        }
        c0 += C;
    }
}

/// `xs[i] ← eˣ` (`Log`), `e⁻ˣ` (`Log`, `inverse`), `x` (`Plain`) or `1 / x`
/// (`Plain`, `inverse`) a vector at a time (the tail zero-padded; also the
/// blocked gradient's).
#[inline(always)]
pub(crate) fn map_in_place<T: Real, S: Simd>(
    s: S,
    xs: &mut [T],
    diagonal: Diagonal,
    inverse: bool,
) {
    let lanes = T::lanes::<S>();
    let (head, tail) = xs.split_at_mut(xs.len() / lanes * lanes);
    for v in T::as_mut_simd::<S>(head) {
        *v = map_one::<T, S>(s, *v, diagonal, inverse);
    }
    if !tail.is_empty() {
        let mut b = [T::V::<S>::zeroed()];
        cast_slice_mut::<T::V<S>, T>(&mut b)[..tail.len()].copy_from_slice(tail);
        b[0] = map_one::<T, S>(s, b[0], diagonal, inverse);
        tail.copy_from_slice(&cast_slice::<T::V<S>, T>(&b)[..tail.len()]);
    }
}

/// One vector of [`map_in_place`] (a function, not a closure: a closure
/// left out of line would lose the level's target features).
#[inline(always)]
fn map_one<T: Real, S: Simd>(s: S, v: T::V<S>, diagonal: Diagonal, inverse: bool) -> T::V<S> {
    match (diagonal, inverse) {
        (Diagonal::Log, false) => T::vexp(s, v),
        (Diagonal::Log, true) => T::vexp(s, T::vsub(s, T::vsplat(s, T::ZERO), v)),
        (Diagonal::Plain, false) => v,
        (Diagonal::Plain, true) => T::vdiv(s, T::vsplat(s, T::ONE), v),
    }
}

/// `[y | L_p]` into the panels of `x` (`[lanes, wv]`: lanes, vectors per
/// row), the raw diagonal of `L_p` into `raw`. Panel by panel, only the
/// rows the solve reads (from `a − 1` down, `a` the panel's first column).
#[inline(always)]
fn load_rhs<T: Real, S: Simd>(
    s: S,
    tp: PackedTril<'_, T>,
    (mp, mq): (&[T], &[T]),
    [lanes, wv]: [usize; 2],
    x: &mut [T],
    raw: &mut [T],
) {
    let d = tp.d;
    for (i, r) in raw.iter_mut().enumerate().take(d) {
        *r = tp.data[tp.layout.index(d, i, i)];
    }
    let mut c0 = 0;
    while c0 < wv {
        let cp = C.min(wv - c0);
        let a = c0 * lanes;
        let panel = T::as_mut_simd::<S>(&mut x[d * a..d * (a + cp * lanes)]);
        let means = (mp, mq);
        match cp {
            1 => load_panel::<T, S, 1>(s, tp, means, a, panel.as_chunks_mut().0),
            2 => load_panel::<T, S, 2>(s, tp, means, a, panel.as_chunks_mut().0),
            _ => load_panel::<T, S, C>(s, tp, means, a, panel.as_chunks_mut().0),
        }
        c0 += cp;
    }
}

/// One panel of [`load_rhs`] (`CP` vectors from column `a`, `rows[i]` its
/// row `i`). A row-major factor is read a vector at a time: column `j ≥ 1`
/// of row `i` is `L_p[i][j − 1]`, at `row_start(i) + j − 1`, so the
/// panel's row is `CP` unaligned loads from `row_start(i) + a − 1` (for
/// `a = 0` the lane before the row, row `i − 1`'s last entry, is then
/// replaced by `y`), the lanes right of the diagonal zeroed by a select.
/// Rows whose loads would run past the end of the factor, and other
/// layouts, go element by element.
#[inline(always)]
fn load_panel<T: Real, S: Simd, const CP: usize>(
    s: S,
    tp: PackedTril<'_, T>,
    (mp, mq): (&[T], &[T]),
    a: usize,
    rows: &mut [[T::V<S>; CP]],
) {
    let lanes = T::lanes::<S>();
    for (i, row) in rows.iter_mut().enumerate().skip(a.saturating_sub(1)) {
        // Columns a..i + 2 are the nonzero ones (y and L_p's row).
        let len = i + 2 - a;
        let base = (row_start(i) + a).wrapping_sub(1);
        if tp.layout == Layout::RowMajor && base < tp.data.len() {
            // The last rows' loads would run past the factor: those read
            // what is left of it from a zero-padded copy.
            let mut pad = [T::V::<S>::zeroed(); C];
            let src: &[T] = match tp.data.get(base..base + CP * lanes) {
                Some(src) => src,
                None => {
                    let tail = &tp.data[base..];
                    let buf: &mut [T] = cast_slice_mut(&mut pad[..]);
                    buf[..tail.len()].copy_from_slice(tail);
                    cast_slice(&pad[..])
                }
            };
            let v: &[[T::V<S>; CP]] = T::as_simd::<S>(src).as_chunks().0;
            for c in 0..CP {
                row[c] = T::vkeep_first(s, v[0][c], len.saturating_sub(c * lanes));
            }
        } else {
            for (c, out) in row.iter_mut().enumerate() {
                *out = gather::<T, S>(tp, i, a + c * lanes, len.saturating_sub(c * lanes));
            }
        }
        if a == 0 {
            row[0] = T::vset_lane(s, row[0], 0, mq[i] - mp[i]);
        }
    }
}

/// Columns `col..col + n` of row `i` of `[· | L_p]` (column `j ≥ 1` is
/// `L_p[i][j − 1]`, column 0 left zero), element by element, the lanes
/// from `n` on zero: [`load_rhs`] for other layouts (and row 0's `y`).
#[inline(always)]
fn gather<T: Real, S: Simd>(tp: PackedTril<'_, T>, i: usize, col: usize, n: usize) -> T::V<S> {
    let mut b = [T::V::<S>::zeroed()];
    let lanes = cast_slice_mut::<T::V<S>, T>(&mut b);
    let n = n.min(lanes.len());
    for (t, j) in lanes.iter_mut().zip(col..col + n) {
        if j > 0 {
            *t = tp.data[tp.layout.index(tp.d, i, j - 1)];
        }
    }
    b[0]
}

/// Solves `L_q X = B` in place (`B` in the panels of `x`, `[d, wv]`) given
/// `L_q` row-major packed with its diagonal encoding; fills `inv` with
/// `1 / L_qᵢᵢ` on the way (in the first panel, which visits every row in
/// order, each tile's `R` entries as soon as its rows of `L_q` are in
/// cache); returns `Σ X²`.
#[inline(always)]
fn solve<T: Real, S: Simd, const R: usize>(
    s: S,
    [d, wv]: [usize; 2],
    x: &mut [T],
    (lq, diagonal): (&[T], Diagonal),
    inv: &mut [T],
) -> T {
    let lanes = T::lanes::<S>();
    let zero = T::vsplat(s, T::ZERO);
    let xv = T::as_mut_simd::<S>(&mut x[..d * wv * lanes]);
    let mut total = zero;
    let mut c0 = 0;
    while c0 < wv {
        let cp = C.min(wv - c0);
        let panel = &mut xv[d * c0..d * (c0 + cp)];
        let geo = [d, c0 * lanes, lanes];
        let q = (lq, diagonal, c0 == 0);
        let sq = match cp {
            1 => panel_solve::<T, S, R, 1>(s, geo, panel.as_chunks_mut().0, q, inv),
            2 => panel_solve::<T, S, R, 2>(s, geo, panel.as_chunks_mut().0, q, inv),
            _ => panel_solve::<T, S, R, C>(s, geo, panel.as_chunks_mut().0, q, inv),
        };
        total = T::vadd(s, total, sq);
        c0 += cp;
    }
    reduce::<T, S>(total)
}

/// The lanes of `v`, summed pairwise (also the blocked gradient's).
#[inline(always)]
pub(crate) fn reduce<T: Real, S: Simd>(v: T::V<S>) -> T {
    let lanes = T::lanes::<S>();
    let mut buf = [T::ZERO; MAX_LANES];
    buf[..lanes].copy_from_slice(cast_slice(core::slice::from_ref(&v)));
    let mut n = lanes;
    while n > 1 {
        let h = n / 2;
        for i in 0..h {
            buf[i] += buf[i + h];
        }
        if n % 2 == 1 {
            buf[0] += buf[n - 1];
        }
        n = h;
    }
    buf[0]
}

/// One panel (`CP` vectors, `d` rows; `[d, a, lanes]`, `a` its first
/// column): 1-row tiles at the top, then `R`-row tiles down to `d`. Returns
/// the panel's `Σ X²` as one vector.
#[inline(always)]
fn panel_solve<T: Real, S: Simd, const R: usize, const CP: usize>(
    s: S,
    [d, a, lanes]: [usize; 3],
    xs: &mut [[T::V<S>; CP]],
    q: (&[T], Diagonal, bool),
    inv: &mut [T],
) -> T::V<S> {
    let starts: [usize; CP] = core::array::from_fn(|c| (a + c * lanes).saturating_sub(1));
    let r0 = starts[0];
    let top = (d - r0) % R;
    let mut sq = [T::vsplat(s, T::ZERO); CP];
    for i in r0..r0 + top {
        tile::<T, S, 1, CP>(s, xs, i, starts, q, inv, &mut sq);
    }
    let mut i0 = r0 + top;
    while i0 < d {
        tile::<T, S, R, CP>(s, xs, i0, starts, q, inv, &mut sq);
        i0 += R;
    }
    let mut t = sq[0];
    for v in &sq[1..] {
        t = T::vadd(s, t, *v);
    }
    t
}

/// Rows `i0..i0 + R` of a panel: the update by the rows above, the
/// in-register triangle, the squares and the store. Every index into the
/// accumulators is a constant after unrolling, so they stay in registers.
#[inline(always)]
fn tile<T: Real, S: Simd, const R: usize, const CP: usize>(
    s: S,
    xs: &mut [[T::V<S>; CP]],
    i0: usize,
    starts: [usize; CP],
    (lq, diagonal, first): (&[T], Diagonal, bool),
    inv: &mut [T],
    sq: &mut [T::V<S>; CP],
) {
    let (done, rest) = xs.split_at_mut(i0);
    let rows_out = &mut rest[..R];
    let mut acc: [[T::V<S>; CP]; R] = core::array::from_fn(|r| rows_out[r]);
    // Row i0 + r of L_q left of its diagonal.
    let lrows: [&[T]; R] = core::array::from_fn(|r| {
        let i = i0 + r;
        &lq[row_start(i)..row_start(i) + i]
    });
    // 1 / L_qᵢᵢ first: it depends on L_q alone, so it runs under the FMAs.
    let inv = &mut inv[i0..i0 + R];
    if first {
        let mut buf = [T::ZERO; MAX_R];
        for (r, b) in buf.iter_mut().enumerate().take(R) {
            *b = lq[row_start(i0 + r) + i0 + r];
        }
        map_in_place::<T, S>(s, &mut buf[..R], diagonal, true);
        inv.copy_from_slice(&buf[..R]);
    }
    // Vector c is active for k ≥ starts[c]: segment `n` has the first n.
    let bound = |n: usize| starts.get(n).map_or(i0, |&st| st.min(i0));
    acc = segment::<T, S, R, CP, 1>(s, acc, done, &lrows, [bound(0), bound(1)]);
    if CP > 1 {
        acc = segment::<T, S, R, CP, 2>(s, acc, done, &lrows, [bound(1), bound(2)]);
    }
    if CP > 2 {
        acc = segment::<T, S, R, CP, 3>(s, acc, done, &lrows, [bound(2), bound(3)]);
    }
    let tri = (&lrows, i0, &*inv);
    acc = tri_step::<T, S, R, CP, 0>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 1>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 2>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 3>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 4>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 5>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 6>(s, acc, tri, sq);
    acc = tri_step::<T, S, R, CP, 7>(s, acc, tri, sq);
    for (o, a) in rows_out.iter_mut().zip(acc) {
        *o = a;
    }
}

/// Most rows of a tile ([`tri_step`] is called for rows 0..8).
const MAX_R: usize = 8;

/// Row `Q` of the tile's triangle (a no-op for `Q ≥ R`): scaled by
/// `1 / L_qᵢᵢ`, squared into `sq`, and eliminated from the rows below it
/// (so row `r` sees `q = 0, 1, …, r − 1` in order, then its scaling).
#[inline(always)]
fn tri_step<T: Real, S: Simd, const R: usize, const CP: usize, const Q: usize>(
    s: S,
    mut acc: [[T::V<S>; CP]; R],
    (lrows, i0, inv): (&[&[T]; R], usize, &[T]),
    sq: &mut [T::V<S>; CP],
) -> [[T::V<S>; CP]; R] {
    const { assert!(R <= MAX_R) };
    if Q >= R {
        return acc;
    }
    let iv = T::vsplat(s, inv[Q]);
    let mut xq = acc[Q];
    for (c, v) in xq.iter_mut().enumerate() {
        *v = T::vmul(s, *v, iv);
        sq[c] = T::vmul_add(s, *v, *v, sq[c]);
    }
    acc[Q] = xq;
    for r in Q + 1..R {
        let l = T::vsplat(s, lrows[r][i0 + Q]);
        for c in 0..CP {
            acc[r][c] = T::vneg_mul_add(s, l, xq[c], acc[r][c]);
        }
    }
    acc
}

/// The micro-kernel: `acc[r][c] −= L_q[i0 + r][k] · X[k][c]` for
/// `k ∈ lo..hi` and the first `A` vectors.
#[inline(always)]
fn segment<T: Real, S: Simd, const R: usize, const CP: usize, const A: usize>(
    s: S,
    mut acc: [[T::V<S>; CP]; R],
    done: &[[T::V<S>; CP]],
    lrows: &[&[T]; R],
    [lo, hi]: [usize; 2],
) -> [[T::V<S>; CP]; R] {
    if lo >= hi {
        return acc;
    }
    let x = &done[lo..hi];
    let l: [&[T]; R] = core::array::from_fn(|r| &lrows[r][lo..hi]);
    for (k, xk) in x.iter().enumerate() {
        for r in 0..R {
            let b = T::vsplat(s, l[r][k]);
            for c in 0..A.min(CP) {
                acc[r][c] = T::vneg_mul_add(s, b, xk[c], acc[r][c]);
            }
        }
    }
    acc
}
