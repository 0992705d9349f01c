//! The fused scoring micro-kernel over packed compact document panels (pulp).
//!
//! Documents are packed in panels of `PANEL` documents (32 for
//! `f32`, 16 for `f64`: 128 bytes). A panel is `2k + 1` rows of `PANEL`
//! numbers: `γ_D`, then `−1/σ²_D` for each of the `k` dimensions, then
//! `2μ_D/σ²_D` for each: the compact representation ([`Rep::Compact`](super::Rep)),
//! transposed so that one row is a few SIMD vectors with one document per lane.
//!
//! Queries are packed `MR` at a time, interleaved: row `p` of a query block
//! holds entry `p` (`σ²_Q + μ²_Q` for `p < k`, `μ_Q` after) of each of the
//! `MR` queries. The micro-kernel keeps an `MR × PANEL` tile of scores in
//! registers, starts it at `γ_D`, and for each of the `2k` rows does one
//! broadcast per query and one fused multiply-add per vector: a register-
//! blocked GEMM micro-kernel whose output tile is consumed at once (top-k),
//! never stored as a matrix.
//!
//! Every score is accumulated in one lane, in the same order
//! (`γ_D`, then `fma` over `p = 0..2k`), with a fused multiply-add on every
//! level: the result is bit-identical at every dispatch [`Level`](crate::simd::Level), whatever
//! the vector width or the blocking.

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

/// Rows of the register block (queries per micro-kernel call) for a lane count.
#[inline(always)]
pub(crate) fn block_rows<T: Real, S: Simd>() -> usize {
    match T::PANEL / T::lanes::<S>() {
        1 | 2 => 8,
        3 | 4 => 4,
        _ => 1,
    }
}

/// The micro-kernel: `tile[m · PANEL + lane] = γ_D + Σ_p qpack[p · MR + m] · panel[(1 + p) · PANEL + lane]`.
///
/// `qpack` is `2k × MR`, `panel` is `(2k + 1) × PANEL`, `tile` is `MR × PANEL`;
/// `NV · lanes == PANEL`.
#[inline(always)]
fn micro<S: Simd, T: Real, const MR: usize, const NV: usize>(
    simd: S,
    qpack: &[T],
    panel: &[T],
    tile: &mut [T],
) {
    let w = T::PANEL;
    let (gamma, rows) = panel.split_at(w);
    let g = T::as_simd::<S>(gamma);
    let g: [T::V<S>; NV] = core::array::from_fn(|v| g[v]);
    let mut acc = [g; MR];
    for (row, a) in rows.chunks_exact(w).zip(qpack.chunks_exact(MR)) {
        let b = T::as_simd::<S>(row);
        let b: [T::V<S>; NV] = core::array::from_fn(|v| b[v]);
        for m in 0..MR {
            let am = T::vsplat(simd, a[m]);
            for v in 0..NV {
                acc[m][v] = T::vfma(simd, am, b[v], acc[m][v]);
            }
        }
    }
    for (m, t) in tile.chunks_exact_mut(w).take(MR).enumerate() {
        let t = T::as_mut_simd::<S>(t);
        t[..NV].copy_from_slice(&acc[m]);
    }
}

/// Scores `r ≤ block_rows` packed queries (`qpack`: `2k × r`) against one
/// panel into `tile` (`r × PANEL`).
#[inline(always)]
pub(crate) fn score_block<S: Simd, T: Real>(
    simd: S,
    r: usize,
    qpack: &[T],
    panel: &[T],
    tile: &mut [T],
) {
    macro_rules! go {
        ($nv:literal; $($mr:literal)*) => {
            match r {
                $($mr => micro::<S, T, $mr, $nv>(simd, qpack, panel, tile),)*
                _ => {}
            }
        };
    }
    match T::PANEL / T::lanes::<S>() {
        2 => go!(2; 1 2 3 4 5 6 7 8),
        4 => go!(4; 1 2 3 4),
        8 => go!(8; 1),
        16 => go!(16; 1),
        32 => go!(32; 1),
        _ => {}
    }
}

/// Packs queries `first..first + r` into `qpack` (`2k × r`, interleaved) and
/// returns nothing; `a_p = σ²_Q + μ²_Q` (computed as in [`Rep::Compact`](super::Rep)).
pub(crate) fn pack_queries<T: Real>(
    k: usize,
    scale: Scale,
    mean: &[T],
    spread: &[T],
    first: usize,
    r: usize,
    qpack: &mut [T],
) {
    for m in 0..r {
        let i = first + m;
        let (mu, s) = (&mean[i * k..(i + 1) * k], &spread[i * k..(i + 1) * k]);
        for p in 0..k {
            qpack[p * r + m] = super::var_of(scale, s[p]) + mu[p] * mu[p];
            qpack[(k + p) * r + m] = mu[p];
        }
    }
}
