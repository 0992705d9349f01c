//! The fused scoring micro-kernel over packed compact document panels (pulp).
//!
//! Documents are packed in panels of `PANEL` documents (32 for
//! `f32`, 16 for `f64`: 128 bytes). A panel is `2k + 1` rows of `PANEL`
//! numbers: `γ_D`, then `−1/σ²_D` for each of the `k` dimensions, then
//! `2μ_D/σ²_D` for each: the compact representation ([`Rep::Compact`](super::Rep)),
//! transposed so that one row is a few SIMD vectors with one document per lane.
//!
//! Queries are packed in groups of [`GROUP`] (64), and within a group in
//! blocks of `MR` ([`block_rows`]), interleaved: row `p` of a block holds
//! entry `p` (`σ²_Q + μ²_Q` for `p < k`, `μ_Q` after) of each of its
//! queries. The micro-kernel keeps an `MR × lanes·NV` tile of scores in
//! registers, starts it at `γ_D`, and for each row does one broadcast per
//! query, `NV` loads and `MR · NV` fused multiply-adds: a register-blocked
//! GEMM micro-kernel whose output tile is consumed at once (top-k), never
//! stored as a matrix.
//!
//! # Blocking (measured on an Intel Xeon, Sapphire Rapids class, AVX-512)
//! - Tile: `14 × 2` vectors on AVX-512 (28 accumulators, 2 loads and a
//!   broadcast: all 32 registers, no spills); on AVX2 two half-panel passes
//!   of a `6 × 2` tile (12 accumulators + 3 = 15 of 16 registers; the
//!   `4 × 4` tile it replaces needed 21 and spilled: 1.5× faster at AVX2).
//!   In isolation (one chunk in L1) `8 × 2`, `6 × 4`, `8 × 3`, `12 × 2` and
//!   `14 × 2` reach 77–81 % of the FMA peak, `14 × 2` the most.
//! - Chunks: the `2k` rows are scored [`CHUNK_ROWS`] (64) at a time; every
//!   query block of the group passes over one chunk (8 KiB of the panel in
//!   `f32`) before the next, continuing its tile from memory. The chunk, the
//!   group's rows of it (16 KiB) and the tiles (8 KiB) stay in L1. 32, 64
//!   and 128 rows measured alike.
//! - Prefetching: the index (16.8 MB at k = 128, 16 384 documents) streams
//!   from memory once per group. Each chunk's calls also prefetch the next
//!   chunk (the next panel's first after the last) into L1, one line every
//!   [`SPREAD`] rows, so that it arrives while this one is scored. At
//!   k = 128, 64 × 16 384 (f32, one thread), against leaving it to the
//!   hardware prefetcher (which only starts when the first block demands
//!   the chunk): +8 points of the FMA peak with plain loads of one element
//!   per line (a load that misses holds up retirement), +8 more with
//!   `prefetcht0` (x86 only, through pulp's safe SSE token; no read ahead
//!   elsewhere). Two chunks ahead measured alike.
//!
//! - Whole search (`cargo run --release -p gaussian-kl-bench --example
//!   roofline -- --op mrl_top_k`: k = 128, 64 queries × 16 384 documents,
//!   top-10 KL, f32, one thread, AVX-512, the machine shared): 209–211 M
//!   pairs/s, 56–57 % of the FMA peak (35 % before this blocking, same day);
//!   3.0× sgemm on the 3k+1 map. What is left: the memory stream (about 7
//!   points: 4 096 documents, whose index stays in cache, score higher) and
//!   the heaps (about 5). AVX2 (forced level): 161 M pairs/s, was 99 M.
//!
//! Every score is accumulated in one lane, in the same order
//! (`γ_D`, then `fma` over `p = 0..2k`), with a fused multiply-add on every
//! level; a tile stored between chunks and reloaded is exact: the result is
//! bit-identical at every dispatch [`Level`](crate::simd::Level), whatever
//! the vector width, the tile, the chunking or the group.

use pulp::Simd;

use super::Scale;
use super::mips::{doc_entry, gamma_doc};
use crate::real::Real;

/// Length of the packed panels for `nd` documents in `k` dimensions:
/// `⌈nd / PANEL⌉ · (2k + 1) · PANEL`, or `None` on overflow.
pub(crate) fn packed_len<T: Real>(k: usize, nd: usize) -> Option<usize> {
    let panels = nd.div_ceil(T::PANEL);
    panels
        .checked_mul(k.checked_mul(2)?.checked_add(1)?)?
        .checked_mul(T::PANEL)
}

/// Packs documents `first..first + count` (`count ≤ PANEL`) of a checked
/// batch into one panel (`(2k + 1) · PANEL` numbers); missing lanes are 0.
pub(crate) fn pack_panel<T: Real>(
    k: usize,
    scale: Scale,
    mean: &[T],
    spread: &[T],
    first: usize,
    count: usize,
    panel: &mut [T],
) {
    let w = T::PANEL;
    panel.fill(T::ZERO);
    for lane in 0..count {
        let j = first + lane;
        let (m, s) = (&mean[j * k..(j + 1) * k], &spread[j * k..(j + 1) * k]);
        panel[lane] = gamma_doc(scale, m, s);
        for p in 0..k {
            let (wp, bp) = doc_entry(scale, m[p], s[p]);
            panel[(1 + p) * w + lane] = wp;
            panel[(1 + k + p) * w + lane] = bp;
        }
    }
}

/// A prefetch of one cache line into L1, where the target offers it safely
/// (x86, through pulp's SSE token); nothing elsewhere.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefetch {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    sse: Option<pulp::core_arch::x86::Sse>,
}

impl Prefetch {
    /// The host's prefetch (checked once per search).
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            sse: pulp::core_arch::x86::Sse::try_new(),
        }
    }

    /// Asks for the line holding `x[0]` (a hint: no load, no fault).
    #[inline(always)]
    fn line<T>(self, x: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(sse) = self.sse {
            sse._mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(x.as_ptr().cast::<i8>());
        }
        #[cfg(target_arch = "x86")]
        if let Some(sse) = self.sse {
            sse._mm_prefetch::<{ core::arch::x86::_MM_HINT_T0 }>(x.as_ptr().cast::<i8>());
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        let _ = (self, x);
    }
}

/// Rows of the register block (queries per micro-kernel call) for a lane count.
#[inline(always)]
pub(crate) fn block_rows<T: Real, S: Simd>() -> usize {
    match T::PANEL / T::lanes::<S>() {
        1 | 2 => 14,
        3 | 4 => 6,
        _ => 1,
    }
}

/// Rows of the representation (dimensions × 2) scored per pass of a query
/// block over a panel: the chunk of the panel (`CHUNK_ROWS · PANEL` numbers,
/// 8 KiB in `f32`), the matching rows of every query of a group
/// (`CHUNK_ROWS · GROUP`, 16 KiB) and the group's running tiles
/// (`GROUP · PANEL`, 8 KiB) stay in L1 while every query block of the group
/// passes over the chunk.
pub(crate) const CHUNK_ROWS: usize = 64;

/// Queries scored together against each panel (a multiple of every
/// [`block_rows`]): the documents stream from memory once per group.
pub(crate) const GROUP: usize = 64;

/// Rows of the micro-kernel per line prefetched: one line a row bunches the
/// misses (2 measured about a point of the FMA peak better than 1 and 4).
const SPREAD: usize = 2;

/// One row of the micro-kernel: `acc[m][v] += a[m] · row[v]` (a closure
/// would not inherit the SIMD target features).
#[inline(always)]
fn fma_row<S: Simd, T: Real, const MR: usize, const NV: usize>(
    simd: S,
    acc: &mut [[T::V<S>; NV]; MR],
    (row, cv): (&[T], usize),
    a: &[T],
) {
    let b = T::as_simd::<S>(row);
    let b: [T::V<S>; NV] = core::array::from_fn(|v| b[cv + v]);
    for m in 0..MR {
        let am = T::vsplat(simd, a[m]);
        for v in 0..NV {
            acc[m][v] = T::vfma(simd, am, b[v], acc[m][v]);
        }
    }
}

/// The micro-kernel: `tile[m · PANEL + lane] += Σ_p qpack[p · MR + m] · rows[p · PANEL + lane]`
/// over the rows `p` of one chunk, the tile starting at `init` (the `γ_D`
/// row) when given, else at its own values (the earlier chunks' partial sums,
/// stored and reloaded exactly).
///
/// `qpack` is `rows × MR`, `rows` is `rows × PANEL`, `tile` is `MR × PANEL`;
/// `NV · lanes == PANEL`.
#[inline(always)]
fn micro<S: Simd, T: Real, const MR: usize, const NV: usize>(
    simd: S,
    qpack: &[T],
    rows: &[T],
    (init, (touch, pf), cv): (Option<&[T]>, (&[T], Prefetch), usize),
    tile: &mut [T],
) {
    let w = T::PANEL;
    let line = 64 / core::mem::size_of::<T>();
    let mut acc: [[T::V<S>; NV]; MR] = match init {
        Some(gamma) => {
            let g = T::as_simd::<S>(gamma);
            let g: [T::V<S>; NV] = core::array::from_fn(|v| g[cv + v]);
            [g; MR]
        }
        None => core::array::from_fn(|m| {
            let t = T::as_simd::<S>(&tile[m * w..(m + 1) * w]);
            core::array::from_fn(|v| t[cv + v])
        }),
    };
    // The first rows also prefetch the lines of `touch` (part of the next
    // chunk), one every `SPREAD` rows, so that it arrives while this one is
    // scored.
    let lines = touch.chunks_exact(line);
    let n_touch = lines.len().min(rows.len() / (w * SPREAD));
    let (rows_t, rows_rest) = rows.split_at(n_touch * w * SPREAD);
    let (q_t, q_rest) = qpack.split_at(n_touch * MR * SPREAD);
    for ((rows2, a2), l) in rows_t
        .chunks_exact(w * SPREAD)
        .zip(q_t.chunks_exact(MR * SPREAD))
        .zip(lines)
    {
        pf.line(l);
        for (row, a) in rows2.chunks_exact(w).zip(a2.chunks_exact(MR)) {
            fma_row(simd, &mut acc, (row, cv), a);
        }
    }
    for (row, a) in rows_rest.chunks_exact(w).zip(q_rest.chunks_exact(MR)) {
        fma_row(simd, &mut acc, (row, cv), a);
    }
    for (m, t) in tile.chunks_exact_mut(w).take(MR).enumerate() {
        let t = T::as_mut_simd::<S>(t);
        for (tv, &av) in t.iter_mut().skip(cv).zip(&acc[m]) {
            *tv = av;
        }
    }
}

/// Scores `r ≤ block_rows` packed queries (`qpack`: `rows × r`) against one
/// chunk of a panel (`rows`) into `tile` (`r × PANEL`), see [`micro`].
#[inline(always)]
fn score_block<S: Simd, T: Real>(
    simd: S,
    r: usize,
    qpack: &[T],
    rows: &[T],
    (init, touch): (Option<&[T]>, (&[T], Prefetch)),
    tile: &mut [T],
) {
    macro_rules! go {
        ($nv:literal, $cv:expr, $touch:expr; $($mr:literal)*) => {
            match r {
                $($mr => micro::<S, T, $mr, $nv>(simd, qpack, rows, (init, $touch, $cv), tile),)*
                _ => {}
            }
        };
        ($nv:literal; $($mr:literal)*) => {
            go!($nv, 0, touch; $($mr)*)
        };
    }
    match T::PANEL / T::lanes::<S>() {
        2 => go!(2; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
        // Two half-panel passes of a 6 × 2 tile: 12 accumulators, 2 loads
        // and a broadcast fit AVX2's 16 registers (a 4 × 4 tile did not).
        4 => {
            go!(2, 0, touch; 1 2 3 4 5 6);
            go!(2, 2, (&[], touch.1); 1 2 3 4 5 6);
        }
        8 => go!(8; 1),
        16 => go!(16; 1),
        32 => go!(32; 1),
        _ => {}
    }
}

/// Scores the `nq ≤ GROUP` queries of a group (`qpack`, `2k · nq` numbers
/// as [`pack_group`] writes them, with `mr = block_rows`) against one panel into `tiles` (`nq × PANEL`).
///
/// The `2k` rows are taken `CHUNK_ROWS` at a time; for each chunk, every
/// query block passes over it (the chunk stays in L1), continuing its tile
/// from the previous chunk. Each score is still `γ_D`, then one fused
/// multiply-add per row in order `p = 0..2k`: the same value whatever the
/// chunking, the blocking or the vector width.
#[inline(always)]
pub(crate) fn score_group<S: Simd, T: Real>(
    simd: S,
    (d2, mr, nq): (usize, usize, usize),
    qpack: &[T],
    (panel, next, pf): (&[T], &[T], Prefetch),
    tiles: &mut [T],
) {
    let w = T::PANEL;
    let (gamma, rows) = panel.split_at(w);
    let blocks = nq.div_ceil(mr).max(1);
    let mut c0 = 0;
    loop {
        let c1 = d2.min(c0 + CHUNK_ROWS);
        let h = c1 - c0;
        let init = (c0 == 0).then_some(gamma);
        let qchunk = &qpack[c0 * nq..c1 * nq];
        // The chunk after this one (of this panel, else the first of the
        // next), read a line at a time by this chunk's calls: it arrives
        // from memory while this one is scored, and L1 holds only two chunks.
        let ahead = if c1 < d2 {
            &rows[c1 * w..d2.min(c1 + CHUNK_ROWS) * w]
        } else {
            &next[..next.len().min((1 + CHUNK_ROWS) * w)]
        };
        let mut touch = ahead.chunks(ahead.len().div_ceil(blocks).max(1));
        let mut start = 0;
        while start < nq {
            let r = mr.min(nq - start);
            score_block(
                simd,
                r,
                &qchunk[h * start..h * (start + r)],
                &rows[c0 * w..c1 * w],
                (init, (touch.next().unwrap_or(&[]), pf)),
                &mut tiles[start * w..(start + r) * w],
            );
            start += r;
        }
        c0 = c1;
        if c0 >= d2 {
            break;
        }
    }
}

/// Entry `p` of query `i`'s compact vector without the leading `1`:
/// `σ²_Q + μ²_Q` for `p < k` (computed as in [`Rep::Compact`](super::Rep)),
/// `μ_Q` after.
#[inline(always)]
fn query_entry<T: Real>(k: usize, scale: Scale, mean: &[T], spread: &[T], i: usize, p: usize) -> T {
    if p < k {
        let mu = mean[i * k + p];
        super::var_of(scale, spread[i * k + p]) + mu * mu
    } else {
        mean[i * k + p - k]
    }
}

/// Packs the group of queries `first..first + n` (`n ≤ GROUP`) into `qpack`
/// (`2k · n` numbers) in the order [`score_group`] reads them: chunk after
/// chunk of `CHUNK_ROWS` rows, within a chunk block after block of `mr`
/// queries, within a block row after row of the block's queries
/// (interleaved), so that one chunk of the whole group is contiguous.
pub(crate) fn pack_group<T: Real>(
    k: usize,
    scale: Scale,
    (mean, spread): (&[T], &[T]),
    (first, n, mr): (usize, usize, usize),
    qpack: &mut [T],
) {
    let d2 = 2 * k;
    let mut o = 0;
    let mut c0 = 0;
    while c0 < d2 {
        let c1 = d2.min(c0 + CHUNK_ROWS);
        let mut start = 0;
        while start < n {
            let r = mr.min(n - start);
            for p in c0..c1 {
                for m in 0..r {
                    qpack[o] = query_entry(k, scale, mean, spread, first + start + m, p);
                    o += 1;
                }
            }
            start += r;
        }
        c0 = c1;
    }
}
