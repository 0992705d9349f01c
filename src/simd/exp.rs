//! Vector `eˣ` on pulp's [`Simd`] trait (pulp has none).
//!
//! Cody–Waite reduction `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, `n = round(x / ln 2)`
//! found with the round-to-nearest "magic number" addition; `eʳ` by its Taylor
//! polynomial (degree 7 for `f32`, 13 for `f64`: truncation error below
//! `2⁻²⁷` and `2⁻⁵⁶` respectively) in Horner form; `2ⁿ` built from its bit
//! pattern. Inputs are clamped to the range where the result is neither `0`
//! nor `∞` so that `n` stays small, and `2ⁿ` is split into two factors near the
//! ends so that results that overflow to `∞` or underflow to subnormals or `0`
//! round once, as libm's do. NaN lanes return their input.
//!
//! Only vector arithmetic, compares, selects and integer add/shift/multiply:
//! no table, no `unsafe`.

use super::Simd;

/// `2⁻⁶⁴`, `2⁶⁴`.
const F32_SPLIT: (f32, f32) = (f32::from_bits(63 << 23), f32::from_bits(191 << 23));
/// `2⁻⁵¹²`, `2⁵¹²`.
const F64_SPLIT: (f64, f64) = (f64::from_bits(511 << 52), f64::from_bits(1535 << 52));

#[inline(always)]
pub(crate) fn exp_f32<S: Simd>(s: S, x: S::f32s) -> S::f32s {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0x3f31_8000: 9 significant bits, n·LN2_HI exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1/k!, k = 7 … 2
    const C: [f32; 6] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let xc = s.min_f32s(s.max_f32s(x, s.splat_f32s(-104.0)), s.splat_f32s(89.0));
    let magic = s.splat_f32s(MAGIC);
    let n = s.sub_f32s(s.mul_add_e_f32s(xc, s.splat_f32s(LOG2E), magic), magic);
    let r = s.negate_mul_add_e_f32s(n, s.splat_f32s(LN2_HI), xc);
    let r = s.negate_mul_add_e_f32s(n, s.splat_f32s(LN2_LO), r);
    let mut p = s.splat_f32s(C[0]);
    for c in &C[1..] {
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(*c));
    }
    let one = s.splat_f32s(1.0);
    p = s.mul_add_e_f32s(p, r, one);
    p = s.mul_add_e_f32s(p, r, one);
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
    // n1 + 127 + MAGIC is an exact integer-valued float whose low mantissa
    // bits are n1 + 127 ∈ [41, 192].
    let biased = s.add_f32s(s.add_f32s(n, shift), s.splat_f32s(MAGIC + 127.0));
    let k = s.sub_u32s(s.transmute_u32s_f32s(biased), s.splat_u32s(MAGIC.to_bits()));
    let scale = s.transmute_f32s_u32s(s.wrapping_dyn_shl_u32s(k, s.splat_u32s(23)));
    let res = s.mul_f32s(s.mul_f32s(p, scale), corr);
    s.select_f32s(s.equal_f32s(x, x), res, x)
}

#[inline(always)]
pub(crate) fn exp_f64<S: Simd>(s: S, x: S::f64s) -> S::f64s {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2⁵²
    const LOG2E: f64 = core::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1; // 0x3fe6_2e42_fee0_0000
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1/k!, k = 13 … 2
    const C: [f64; 12] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let xc = s.min_f64s(s.max_f64s(x, s.splat_f64s(-746.0)), s.splat_f64s(710.0));
    let magic = s.splat_f64s(MAGIC);
    let n = s.sub_f64s(s.mul_add_e_f64s(xc, s.splat_f64s(LOG2E), magic), magic);
    let r = s.negate_mul_add_e_f64s(n, s.splat_f64s(LN2_HI), xc);
    let r = s.negate_mul_add_e_f64s(n, s.splat_f64s(LN2_LO), r);
    let mut p = s.splat_f64s(C[0]);
    for c in &C[1..] {
        p = s.mul_add_e_f64s(p, r, s.splat_f64s(*c));
    }
    let one = s.splat_f64s(1.0);
    p = s.mul_add_e_f64s(p, r, one);
    p = s.mul_add_e_f64s(p, r, one);
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
    // Low mantissa bits of n1 + 1023 + MAGIC hold n1 + 1023 ∈ [458, 1536].
    let biased = s.add_f64s(s.add_f64s(n, shift), s.splat_f64s(MAGIC + 1023.0));
    let k = s.sub_u64s(s.transmute_u64s_f64s(biased), s.splat_u64s(MAGIC.to_bits()));
    let scale = s.transmute_f64s_u64s(s.mul_u64s(k, s.splat_u64s(1u64 << 52)));
    let res = s.mul_f64s(s.mul_f64s(p, scale), corr);
    s.select_f64s(s.equal_f64s(x, x), res, x)
}
