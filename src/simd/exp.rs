//! Vector `eˣ` on pulp's [`Simd`] trait (pulp has none).
//!
//! Cody–Waite reduction `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, `n = round(x / ln 2)`
//! found with the round-to-nearest "magic number" addition; `eʳ` as
//! `1 + r + r²·g(r)`, `g` a minimax polynomial (degree 4 for `f32`, 9 for
//! `f64`: relative error `3.7·10⁻⁹` and `1.0·10⁻¹⁷`, below `2⁻²⁸` and
//! `2⁻⁵⁶`) in Horner form; `2ⁿ` built from its bit
//! pattern. Inputs are clamped to the range where the result is neither `0`
//! nor `∞` so that `n` stays small, and `2ⁿ` is split into two factors near the
//! ends so that results that overflow to `∞` or underflow to subnormals or `0`
//! round once, as libm's do. NaN lanes return their input.
//!
//! While every lane of a vector has `|x|` below 69 (`f32`) or 690 (`f64`),
//! as the kernels' diagonals do, the clamps and the split are skipped (one
//! compare and branch instead); for `f64`, `2ⁿ` comes from one FMA and a
//! 32-bit shift, not a 64-bit multiply (which AVX2 lacks and AVX-512 runs
//! as three µops).
//!
//! Only vector arithmetic, compares, selects and integer add/shift/multiply,
//! no `unsafe`. At AVX-512 the `f64` `exp` is its own: a 16-entry table
//! held in two registers, a degree-6 polynomial and `vscalefpd` (see
//! [`v4`]), 16 operations and no branch. Roofline example's `kl`, `f64`,
//! 4096 pairs, one thread, Sapphire Rapids-class Xeon: d = 2 250 → 380 M
//! pairs/s, d = 3 150 → 218 M (three alternated runs each; the generic path's
//! `2ⁿ` went through a store and a reload there). Still at most 1 ulp from
//! libm over the test's 240 000 inputs.

use super::Simd;
use pulp::bytemuck::cast;

/// `2⁻⁶⁴`, `2⁶⁴`.
const F32_SPLIT: (f32, f32) = (f32::from_bits(63 << 23), f32::from_bits(191 << 23));
/// `2⁻⁵¹²`, `2⁵¹²`.
const F64_SPLIT: (f64, f64) = (f64::from_bits(511 << 52), f64::from_bits(1535 << 52));

/// `|x|` below which `n = round(x / ln 2)` stays within `±100` (`f32`):
/// `2ⁿ` is one normal number and needs no split.
const F32_FAST: f32 = 69.0;
/// The same for `f64` (`|n| ≤ 1000`).
const F64_FAST: f64 = 690.0;
/// `1.5 · 2²³`: adding it rounds an `f32` of magnitude below `2²²` to an integer.
const MAGIC_F32: f32 = 12_582_912.0;
/// `ln 2` in two parts for the `f64` Cody–Waite reduction: the first
/// `0x3fe6_2e42_fee0_0000` (32 significant bits, so `n · LN2_HI_F64` is exact
/// for `|n| < 2²¹`), the second the rest.
const LN2_HI_F64: f64 = 6.931_471_803_691_238e-1;
const LN2_LO_F64: f64 = 1.908_214_929_270_587_7e-10;
/// `1.5 · 2⁵²`, the same for `f64`.
const MAGIC_F64: f64 = 6_755_399_441_055_744.0;

/// `eˣ`, `f32`: while every lane has `|x| < 69` (or is NaN), the reduction,
/// the polynomial and `2ⁿ` from its bits, nothing else (no clamp, no split,
/// no NaN select); otherwise
/// [`exp_f32_wide`].
#[inline(always)]
pub(crate) fn exp_f32<S: Simd>(s: S, x: S::f32s) -> S::f32s {
    let far = s.greater_than_or_equal_f32s(s.abs_f32s(x), s.splat_f32s(F32_FAST));
    if s.first_true_m32s(far) < S::F32_LANES {
        return exp_f32_wide(s, x);
    }
    // n + 127 ∈ [27, 227]. A NaN lane stays NaN through the product.
    let (n, p) = reduce_f32(s, x);
    s.mul_f32s(p, pow2_f32(s, n))
}

/// `2ⁿ` for integer-valued `n` with `n + 127 ∈ [1, 254]`: `n + 127 + MAGIC`
/// is an exact integer-valued float whose low mantissa bits are `n + 127`;
/// shifted left by 23 they are the exponent field, and MAGIC's own bits
/// (22 and up) leave the word.
#[inline(always)]
fn pow2_f32<S: Simd>(s: S, n: S::f32s) -> S::f32s {
    let biased = s.add_f32s(n, s.splat_f32s(MAGIC_F32 + 127.0));
    let scale = s.wrapping_dyn_shl_u32s(s.transmute_u32s_f32s(biased), s.splat_u32s(23));
    s.transmute_f32s_u32s(scale)
}

/// `n = round(x / ln 2)` and `eʳ`, `r = x − n·ln 2` (Cody–Waite), `f32`.
#[inline(always)]
fn reduce_f32<S: Simd>(s: S, x: S::f32s) -> (S::f32s, S::f32s) {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0x3f31_8000: 9 significant bits, n·LN2_HI exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // eʳ = 1 + r + r²·g(r): g of degree 4, minimax for the relative error
    // of eʳ on |r| ≤ ln 2 / 2 (3.7e-9 with these f32 coefficients, against
    // 1.2e-7 for the degree-6 Taylor polynomial; the degree-7 one this
    // replaces needed one more FMA).
    const C: [f32; 5] = [
        f32::from_bits(0x3ab5_120b), // 1.381_458e-3
        f32::from_bits(0x3c09_1cf9), // 8.368_724e-3
        f32::from_bits(0x3d2a_ac79), // 4.166_839e-2
        f32::from_bits(0x3e2a_aa49), // 0.166_665_2
        f32::from_bits(0x3eff_fffe), // 0.499_999_94
    ];
    let magic = s.splat_f32s(MAGIC_F32);
    let n = s.sub_f32s(s.mul_add_e_f32s(x, s.splat_f32s(LOG2E), magic), magic);
    let r = s.negate_mul_add_e_f32s(n, s.splat_f32s(LN2_HI), x);
    let r = s.negate_mul_add_e_f32s(n, s.splat_f32s(LN2_LO), r);
    let mut p = s.splat_f32s(C[0]);
    for c in &C[1..] {
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(*c));
    }
    let one = s.splat_f32s(1.0);
    p = s.mul_add_e_f32s(p, r, one);
    p = s.mul_add_e_f32s(p, r, one);
    (n, p)
}

/// `eˣ`, `f32`, any input: clamped so that `n` stays small, `2ⁿ` split in
/// two factors near the ends of the range.
#[inline(never)]
fn exp_f32_wide<S: Simd>(s: S, x: S::f32s) -> S::f32s {
    let xc = s.min_f32s(s.max_f32s(x, s.splat_f32s(-104.0)), s.splat_f32s(89.0));
    let (n, p) = reduce_f32(s, xc);
    let one = s.splat_f32s(1.0);
    // Split 2ⁿ = 2ⁿ¹ · corr near the ends of the range.
    let lo = s.less_than_f32s(n, s.splat_f32s(-100.0));
    let hi = s.greater_than_f32s(n, s.splat_f32s(100.0));
    let shift = s.select_f32s(
        lo,
        s.splat_f32s(64.0),
        s.select_f32s(hi, s.splat_f32s(-64.0), s.splat_f32s(0.0)),
    );
    let corr = s.select_f32s(
        lo,
        s.splat_f32s(F32_SPLIT.0),
        s.select_f32s(hi, s.splat_f32s(F32_SPLIT.1), one),
    );
    // n1 = n + shift: n1 + 127 ∈ [41, 192].
    let res = s.mul_f32s(s.mul_f32s(p, pow2_f32(s, s.add_f32s(n, shift))), corr);
    s.select_f32s(s.equal_f32s(x, x), res, x)
}

/// `2ⁿ` for integer-valued `n` with `n + 1023 ∈ [1, 2046]`: the `f64`
/// `1.5·2⁵² + (n + 1023)·2³²` (exact: one FMA) has `n + 1023` in bits
/// 0–10 of its high 32-bit word (bit 19 holds the `1.5`'s half) and zero in
/// its low word, so shifting both words left by 20 leaves exactly the
/// exponent field `(n + 1023) << 52`. (pulp's scalar level has 32-bit
/// `u32s`, half an `f64`: there the exponent is shifted in 64 bits.)
#[inline(always)]
fn pow2_f64<S: Simd>(s: S, n: S::f64s) -> S::f64s {
    if core::mem::size_of::<S::u32s>() != core::mem::size_of::<S::f64s>() {
        let biased = s.add_f64s(n, s.splat_f64s(MAGIC_F64 + 1023.0));
        let k = s.sub_u64s(
            s.transmute_u64s_f64s(biased),
            s.splat_u64s(MAGIC_F64.to_bits()),
        );
        return s.transmute_f64s_u64s(s.mul_u64s(k, s.splat_u64s(1u64 << 52)));
    }
    let t = s.mul_add_e_f64s(
        n,
        s.splat_f64s(4_294_967_296.0),
        s.splat_f64s(MAGIC_F64 + 1023.0 * 4_294_967_296.0),
    );
    let w = s.wrapping_dyn_shl_u32s(cast(t), s.splat_u32s(20));
    cast(w)
}

/// `eˣ`, `f64`: while every lane has `|x| < 690` (or is NaN), the
/// reduction, the polynomial and `2ⁿ` ([`pow2_f64`]); otherwise
/// [`exp_f64_wide`].
#[inline(always)]
pub(crate) fn exp_f64<S: Simd>(s: S, x: S::f64s) -> S::f64s {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    {
        let any: &dyn core::any::Any = &s;
        if let Some(v4) = any.downcast_ref::<pulp::x86::V4>()
            && let Ok(xv) = pulp::bytemuck::try_cast(x)
            && let Ok(y) = pulp::bytemuck::try_cast(v4::exp_f64(*v4, xv))
        {
            return y;
        }
    }
    let far = s.greater_than_or_equal_f64s(s.abs_f64s(x), s.splat_f64s(F64_FAST));
    if s.first_true_m64s(far) < S::F64_LANES {
        return exp_f64_wide(s, x);
    }
    // A NaN lane stays NaN through the product.
    let (n, p) = reduce_f64(s, x);
    s.mul_f64s(p, pow2_f64(s, n))
}

/// `n = round(x / ln 2)` and `eʳ`, `r = x − n·ln 2` (Cody–Waite), `f64`.
#[inline(always)]
fn reduce_f64<S: Simd>(s: S, x: S::f64s) -> (S::f64s, S::f64s) {
    const LOG2E: f64 = core::f64::consts::LOG2_E;
    // eʳ = 1 + r + r²·g(r): g of degree 9, minimax for the relative error
    // of eʳ on |r| ≤ ln 2 / 2 (1.0e-17 with these coefficients rounded to
    // f64; the degree-13 Taylor polynomial it replaces needed two more FMAs).
    const C: [f64; 10] = [
        2.500_005_286_105_610_3e-8,
        2.763_026_339_755_995_5e-7,
        2.755_758_647_779_769e-6,
        2.480_149_305_995_927_4e-5,
        1.984_126_950_637_735_2e-4,
        1.388_888_894_366_424_3e-3,
        8.333_333_333_494_593e-3,
        4.166_666_666_653_004_4e-2,
        0.166_666_666_666_664_13,
        0.500_000_000_000_001_1,
    ];
    let magic = s.splat_f64s(MAGIC_F64);
    let n = s.sub_f64s(s.mul_add_e_f64s(x, s.splat_f64s(LOG2E), magic), magic);
    let r = s.negate_mul_add_e_f64s(n, s.splat_f64s(LN2_HI_F64), x);
    let r = s.negate_mul_add_e_f64s(n, s.splat_f64s(LN2_LO_F64), r);
    let mut p = s.splat_f64s(C[0]);
    for c in &C[1..] {
        p = s.mul_add_e_f64s(p, r, s.splat_f64s(*c));
    }
    let one = s.splat_f64s(1.0);
    p = s.mul_add_e_f64s(p, r, one);
    p = s.mul_add_e_f64s(p, r, one);
    (n, p)
}

/// `eˣ`, `f64`, any input: clamped so that `n` stays small, `2ⁿ` split in
/// two factors near the ends of the range.
#[inline(never)]
fn exp_f64_wide<S: Simd>(s: S, x: S::f64s) -> S::f64s {
    let xc = s.min_f64s(s.max_f64s(x, s.splat_f64s(-746.0)), s.splat_f64s(710.0));
    let (n, p) = reduce_f64(s, xc);
    let one = s.splat_f64s(1.0);
    let lo = s.less_than_f64s(n, s.splat_f64s(-1000.0));
    let hi = s.greater_than_f64s(n, s.splat_f64s(1000.0));
    let shift = s.select_f64s(
        lo,
        s.splat_f64s(512.0),
        s.select_f64s(hi, s.splat_f64s(-512.0), s.splat_f64s(0.0)),
    );
    let corr = s.select_f64s(
        lo,
        s.splat_f64s(F64_SPLIT.0),
        s.select_f64s(hi, s.splat_f64s(F64_SPLIT.1), one),
    );
    // n1 = n + shift ∈ [−565, 535]: n1 + 1023 ∈ [458, 1558].
    let res = s.mul_f64s(s.mul_f64s(p, pow2_f64(s, s.add_f64s(n, shift))), corr);
    s.select_f64s(s.equal_f64s(x, x), res, x)
}

/// `eˣ`, `f64`, AVX-512: a 16-entry table instead of a long polynomial.
///
/// `x = (16k + j)·ln 2 / 16 + r`, `|r| ≤ ln 2 / 32`, and
/// `eˣ = 2ᵏ · 2^(j/16) · eʳ`: `2^(j/16)` from a table of 16 `f64` held in
/// two registers (one `vpermt2pd` whose index is the low 4 bits of the
/// magic-number sum itself), `eʳ − 1 = r + r²·g(r)` with `g` of degree 4
/// (minimax, relative error of `eʳ` `1.2·10⁻¹⁷` with the rounded
/// coefficients, fitted like the others), joined to the table entry by one
/// FMA (`t + t·(eʳ − 1)`, so the polynomial's rounding is relative to
/// `eʳ − 1`, not to `eʳ`) and `2ᵏ` applied by `vscalefpd`, which rounds
/// once into the subnormals and saturates to `0` or `∞` by itself. So the
/// input is only clamped (`vminpd`/`vmaxpd`, NaN kept: the input is the
/// second operand) and no lane ever takes a slow path: 16 vector
/// operations against the generic path's 20 and a branch.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
mod v4 {
    use core::arch::x86_64::__m512d;
    use pulp::x86::V4;

    /// `2^(j/16)`, `j = 0..16`, rounded to nearest (the two registers).
    const TABLE: [[f64; 8]; 2] = [
        [
            1.0,
            1.044_273_782_427_413_8,
            1.090_507_732_665_257_7,
            1.138_788_634_756_691_6,
            1.189_207_115_002_721,
            1.241_857_812_073_484,
            1.296_839_554_651_009_6,
            1.354_255_546_936_892_7,
        ],
        [
            core::f64::consts::SQRT_2,
            1.476_826_145_939_499_3,
            1.542_210_825_407_940_7,
            1.610_490_331_949_254_3,
            1.681_792_830_507_429,
            1.756_252_160_373_299_5,
            1.834_008_086_409_342_4,
            1.915_206_561_397_147_4,
        ],
    ];

    #[inline(always)]
    pub(super) fn exp_f64(s: V4, x: __m512d) -> __m512d {
        const MAGIC: f64 = super::MAGIC_F64;
        const SIXTEEN_OVER_LN2: f64 = 16.0 * core::f64::consts::LOG2_E;
        // ln 2 / 16 in the reduction's two parts (dividing by 16 is exact).
        const LN2_16_HI: f64 = super::LN2_HI_F64 / 16.0;
        const LN2_16_LO: f64 = super::LN2_LO_F64 / 16.0;
        const G: [f64; 5] = [
            1.388_859_374_565_889e-3,
            8.333_472_060_177_597e-3,
            4.166_666_669_330_476e-2,
            0.166_666_666_644_134_38,
            0.499_999_999_999_996_06,
        ];
        let f = s.avx512f;
        let c = |v: f64| f._mm512_set1_pd(v);
        // e⁻⁷⁴⁶ rounds to 0 and e⁷¹⁰ to ∞: the clamp changes no result and
        // keeps 16·x / ln 2 far inside the magic number's range.
        let x = f._mm512_max_pd(c(-746.0), f._mm512_min_pd(c(710.0), x));
        // t's low mantissa bits are n = round(16·x / ln 2), j = n mod 16 its
        // low four.
        let t = f._mm512_fmadd_pd(x, c(SIXTEEN_OVER_LN2), c(MAGIC));
        let n = f._mm512_sub_pd(t, c(MAGIC));
        let r = f._mm512_fnmadd_pd(n, c(LN2_16_HI), x);
        let r = f._mm512_fnmadd_pd(n, c(LN2_16_LO), r);
        let mut g = c(G[0]);
        for k in &G[1..] {
            g = f._mm512_fmadd_pd(g, r, c(*k));
        }
        // eʳ − 1 = r·(1 + r·g).
        let em1 = f._mm512_mul_pd(f._mm512_fmadd_pd(g, r, c(1.0)), r);
        let tab = f._mm512_permutex2var_pd(
            pulp::bytemuck::cast(TABLE[0]),
            f._mm512_castpd_si512(t),
            pulp::bytemuck::cast(TABLE[1]),
        );
        let y = f._mm512_fmadd_pd(tab, em1, tab);
        // 2ᵏ, k = ⌊n / 16⌋, by vscalefpd (which floors its exponent).
        f._mm512_scalef_pd(y, f._mm512_mul_pd(n, c(0.0625)))
    }
}
