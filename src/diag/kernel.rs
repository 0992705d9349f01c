//! The fused scoring micro-kernel over packed compact document panels (pulp).
//!
//! Documents are packed in panels of [`ScoreReal::PANEL`] documents (32 for
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

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element types of the SIMD scoring kernel: `f32` and `f64`.
///
/// Crate-internal: it is `pub` in a private module, so it can bound the
/// public search functions (`T: ScoreReal` reads "`T` is `f32` or `f64`")
/// while no user can name, implement or call it (sealed). It stays apart from
/// [`SimdReal`](crate::simd::SimdReal) because the scoring kernel needs an
/// always-fused multiply-add (bit-identical results at every level) and lane
/// comparisons, which `SimdReal` does not have.
pub trait ScoreReal: Real + sealed::Sealed {
    /// Documents per packed panel (128 bytes' worth).
    const PANEL: usize;
    #[doc(hidden)]
    type V<S: Simd>: Copy;
    #[doc(hidden)]
    fn lanes<S: Simd>() -> usize;
    #[doc(hidden)]
    fn splat<S: Simd>(simd: S, x: Self) -> Self::V<S>;
    #[doc(hidden)]
    fn fma<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    #[doc(hidden)]
    fn vadd<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    #[doc(hidden)]
    fn vmul<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    #[doc(hidden)]
    fn any_gt<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> bool;
    #[doc(hidden)]
    fn any_lt<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> bool;
    #[doc(hidden)]
    fn as_simd<S: Simd>(x: &[Self]) -> &[Self::V<S>];
    #[doc(hidden)]
    fn as_mut_simd<S: Simd>(x: &mut [Self]) -> &mut [Self::V<S>];
}

macro_rules! impl_simd_real {
    ($t:ty, $panel:expr, $v:ident, $lanes:ident, $splat:ident, $fma:ident, $as:ident, $as_mut:ident,
     $add:ident, $mul:ident, $gt:ident, $lt:ident, $first:ident) => {
        impl ScoreReal for $t {
            const PANEL: usize = $panel;
            type V<S: Simd> = S::$v;
            #[inline(always)]
            fn lanes<S: Simd>() -> usize {
                S::$lanes
            }
            #[inline(always)]
            fn splat<S: Simd>(simd: S, x: Self) -> Self::V<S> {
                simd.$splat(x)
            }
            #[inline(always)]
            fn fma<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S> {
                simd.$fma(a, b, c)
            }
            #[inline(always)]
            fn vadd<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                simd.$add(a, b)
            }
            #[inline(always)]
            fn vmul<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                simd.$mul(a, b)
            }
            #[inline(always)]
            fn any_gt<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> bool {
                simd.$first(simd.$gt(a, b)) < S::$lanes
            }
            #[inline(always)]
            fn any_lt<S: Simd>(simd: S, a: Self::V<S>, b: Self::V<S>) -> bool {
                simd.$first(simd.$lt(a, b)) < S::$lanes
            }
            #[inline(always)]
            fn as_simd<S: Simd>(x: &[Self]) -> &[Self::V<S>] {
                S::$as(x).0
            }
            #[inline(always)]
            fn as_mut_simd<S: Simd>(x: &mut [Self]) -> &mut [Self::V<S>] {
                S::$as_mut(x).0
            }
        }
    };
}

impl_simd_real!(
    f32,
    32,
    f32s,
    F32_LANES,
    splat_f32s,
    mul_add_f32s,
    as_simd_f32s,
    as_mut_simd_f32s,
    add_f32s,
    mul_f32s,
    greater_than_f32s,
    less_than_f32s,
    first_true_m32s
);
impl_simd_real!(
    f64,
    16,
    f64s,
    F64_LANES,
    splat_f64s,
    mul_add_f64s,
    as_simd_f64s,
    as_mut_simd_f64s,
    add_f64s,
    mul_f64s,
    greater_than_f64s,
    less_than_f64s,
    first_true_m64s
);

/// Length of the packed panels for `nd` documents in `k` dimensions:
/// `⌈nd / PANEL⌉ · (2k + 1) · PANEL`, or `None` on overflow.
pub(crate) fn packed_len<T: ScoreReal>(k: usize, nd: usize) -> Option<usize> {
    let panels = nd.div_ceil(T::PANEL);
    panels
        .checked_mul(k.checked_mul(2)?.checked_add(1)?)?
        .checked_mul(T::PANEL)
}

/// Packs documents `first..first + count` (`count ≤ PANEL`) of a checked
/// batch into one panel (`(2k + 1) · PANEL` numbers); missing lanes are 0.
pub(crate) fn pack_panel<T: ScoreReal>(
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
pub(crate) fn block_rows<T: ScoreReal, S: Simd>() -> usize {
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
fn micro<S: Simd, T: ScoreReal, const MR: usize, const NV: usize>(
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
            let am = T::splat(simd, a[m]);
            for v in 0..NV {
                acc[m][v] = T::fma(simd, am, b[v], acc[m][v]);
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
pub(crate) fn score_block<S: Simd, T: ScoreReal>(
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
pub(crate) fn pack_queries<T: ScoreReal>(
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
