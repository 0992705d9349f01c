//! `SimdReal`: the vector operations of `f32` and `f64` over any pulp
//! [`Simd`] token, so that every SIMD kernel has one generic source.

use super::Simd;
use crate::real::Real;
use core::fmt::Debug;
use pulp::bytemuck::Pod;

/// A [`Real`] with vector arithmetic at every pulp SIMD level (sealed:
/// implemented for `f32` and `f64`).
///
/// All methods are `#[inline(always)]` so that they compile with the target
/// features of the dispatched level.
pub trait SimdReal: Real + Pod {
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
}

macro_rules! impl_simd_real {
    ($t:ty, $v:ident, $splat:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $fma:ident, $nfma:ident, $exp:path) => {
        impl SimdReal for $t {
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
        }
    };
}

impl_simd_real!(
    f32,
    f32s,
    splat_f32s,
    add_f32s,
    sub_f32s,
    mul_f32s,
    div_f32s,
    mul_add_e_f32s,
    negate_mul_add_e_f32s,
    super::exp::exp_f32
);
impl_simd_real!(
    f64,
    f64s,
    splat_f64s,
    add_f64s,
    sub_f64s,
    mul_f64s,
    div_f64s,
    mul_add_e_f64s,
    negate_mul_add_e_f64s,
    super::exp::exp_f64
);
