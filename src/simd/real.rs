//! `SimdReal`: the vector operations of `f32` and `f64` over any pulp
//! [`Simd`] token, so that every SIMD kernel has one generic source.

use super::Simd;
use core::fmt::Debug;
use pulp::bytemuck::Pod;

/// The vector arithmetic of `f32` and `f64` at every pulp SIMD level: a
/// supertrait of [`Real`](crate::Real) that users cannot name (it lives in
/// a private module), so that [`Real`](crate::Real) is the crate's one
/// public numeric trait and every kernel has one generic source.
///
/// All methods are `#[inline(always)]` so that they compile with the target
/// features of the dispatched level.
pub trait SimdReal: Pod {
    /// Numbers per packed document panel of the scoring kernel (128 bytes).
    const PANEL: usize;
    /// The vector of this scalar at level `S`.
    type V<S: Simd>: Copy + Pod + Debug;

    /// Lanes per vector at level `S`.
    #[inline(always)]
    fn lanes<S: Simd>() -> usize {
        core::mem::size_of::<Self::V<S>>() / core::mem::size_of::<Self>()
    }
    /// Every lane `x`.
    fn vsplat<S: Simd>(s: S, x: Self) -> Self::V<S>;
    /// `a + b`.
    fn vadd<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a − b`.
    fn vsub<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a · b`.
    fn vmul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a / b`.
    fn vdiv<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a · b + c` (fused where the level has FMA).
    fn vmul_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// `c − a · b` (fused where the level has FMA).
    fn vneg_mul_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// Lane-wise `eˣ` (see [`exp_in_place`](super::exp_in_place) for its accuracy).
    fn vexp<S: Simd>(s: S, x: Self::V<S>) -> Self::V<S>;
    /// `a · b + c`, fused on every level (emulated where the level has no
    /// FMA), so that the scoring kernel's results are bit-identical across
    /// levels.
    fn vfma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// Whether any lane of `a` is greater than that of `b`.
    fn any_gt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> bool;
    /// Whether any lane of `a` is less than that of `b`.
    fn any_lt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> bool;
    /// The whole vectors at the head of `x`.
    fn as_simd<S: Simd>(x: &[Self]) -> &[Self::V<S>];
    /// The whole vectors at the head of `x`, mutable.
    fn as_mut_simd<S: Simd>(x: &mut [Self]) -> &mut [Self::V<S>];
}

macro_rules! impl_simd_real {
    ($t:ty, $panel:expr, $v:ident, $splat:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $fma:ident, $nfma:ident, $exp:path,
     [$lanes:ident, $sfma:ident, $gt:ident, $lt:ident, $first:ident, $as:ident, $as_mut:ident]) => {
        impl SimdReal for $t {
            const PANEL: usize = $panel;
            type V<S: Simd> = S::$v;
            #[inline(always)]
            fn vsplat<S: Simd>(s: S, x: Self) -> Self::V<S> {
                s.$splat(x)
            }
            #[inline(always)]
            fn vadd<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                s.$add(a, b)
            }
            #[inline(always)]
            fn vsub<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                s.$sub(a, b)
            }
            #[inline(always)]
            fn vmul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                s.$mul(a, b)
            }
            #[inline(always)]
            fn vdiv<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                s.$div(a, b)
            }
            #[inline(always)]
            fn vmul_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S> {
                s.$fma(a, b, c)
            }
            #[inline(always)]
            fn vneg_mul_add<S: Simd>(
                s: S,
                a: Self::V<S>,
                b: Self::V<S>,
                c: Self::V<S>,
            ) -> Self::V<S> {
                s.$nfma(a, b, c)
            }
            #[inline(always)]
            fn vexp<S: Simd>(s: S, x: Self::V<S>) -> Self::V<S> {
                $exp(s, x)
            }
            #[inline(always)]
            fn vfma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S> {
                s.$sfma(a, b, c)
            }
            #[inline(always)]
            fn any_gt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> bool {
                s.$first(s.$gt(a, b)) < S::$lanes
            }
            #[inline(always)]
            fn any_lt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> bool {
                s.$first(s.$lt(a, b)) < S::$lanes
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
    splat_f32s,
    add_f32s,
    sub_f32s,
    mul_f32s,
    div_f32s,
    mul_add_e_f32s,
    negate_mul_add_e_f32s,
    super::exp::exp_f32,
    [
        F32_LANES,
        mul_add_f32s,
        greater_than_f32s,
        less_than_f32s,
        first_true_m32s,
        as_simd_f32s,
        as_mut_simd_f32s
    ]
);
impl_simd_real!(
    f64,
    16,
    f64s,
    splat_f64s,
    add_f64s,
    sub_f64s,
    mul_f64s,
    div_f64s,
    mul_add_e_f64s,
    negate_mul_add_e_f64s,
    super::exp::exp_f64,
    [
        F64_LANES,
        mul_add_f64s,
        greater_than_f64s,
        less_than_f64s,
        first_true_m64s,
        as_simd_f64s,
        as_mut_simd_f64s
    ]
);
