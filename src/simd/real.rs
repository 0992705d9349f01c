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
    /// `v` with lanes `n..` set to zero (`n ≥ lanes` keeps all of them).
    fn vkeep_first<S: Simd>(s: S, v: Self::V<S>, n: usize) -> Self::V<S>;
    /// `v` with lane `k` replaced by `x` (`v` itself for `k ≥ lanes`).
    fn vset_lane<S: Simd>(s: S, v: Self::V<S>, k: usize, x: Self) -> Self::V<S>;
    /// The whole vectors at the head of `x`.
    fn as_simd<S: Simd>(x: &[Self]) -> &[Self::V<S>];
    /// The whole vectors at the head of `x`, mutable.
    fn as_mut_simd<S: Simd>(x: &mut [Self]) -> &mut [Self::V<S>];
}

macro_rules! impl_simd_real {
    ($t:ty, $panel:expr, $v:ident, $splat:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $fma:ident, $nfma:ident, $exp:path,
     [$lanes:ident, $sfma:ident, $gt:ident, $lt:ident, $first:ident, $as:ident, $as_mut:ident],
     [$between:ident, $select:ident, $ut:ty]) => {
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
            fn vkeep_first<S: Simd>(s: S, v: Self::V<S>, n: usize) -> Self::V<S> {
                let n = n.min(S::$lanes) as $ut;
                s.$select(s.$between(0, n).mask(), v, s.$splat(0.0))
            }
            #[inline(always)]
            fn vset_lane<S: Simd>(s: S, v: Self::V<S>, k: usize, x: Self) -> Self::V<S> {
                if k >= S::$lanes {
                    return v;
                }
                let k = k as $ut;
                s.$select(s.$between(k, k + 1).mask(), s.$splat(x), v)
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
    ],
    [mask_between_m32s, select_f32s, u32]
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
    ],
    [mask_between_m64s, select_f64s, u64]
);

#[cfg(test)]
mod tests {
    use super::SimdReal;
    use crate::simd::{Level, Simd};
    use pulp::WithSimd;
    use pulp::bytemuck::cast_slice;

    /// Checks `vkeep_first` for every `n` in `0..=lanes + 1` and `vset_lane`
    /// for every lane (and one past the end) against lane-by-lane
    /// expectations; returns the number of cases checked.
    struct Lanes<T>(core::marker::PhantomData<T>);
    impl<T: SimdReal + crate::Real> WithSimd for Lanes<T> {
        type Output = usize;
        fn with_simd<S: Simd>(self, s: S) -> usize {
            let lanes = T::lanes::<S>();
            let src: std::vec::Vec<T> = (1..=lanes).map(T::from_usize).collect();
            let v = T::as_simd::<S>(&src)[0];
            let x = T::from_usize(1000);
            let mut cases = 0;
            for n in 0..=lanes + 1 {
                let kept = T::vkeep_first(s, v, n);
                let got: &[T] = cast_slice(core::slice::from_ref(&kept));
                for (j, &g) in got.iter().enumerate() {
                    let want = if j < n { src[j] } else { T::ZERO };
                    assert_eq!(g, want, "vkeep_first n = {n}, lane {j}");
                }
                cases += 1;
            }
            for k in 0..=lanes {
                let set = T::vset_lane(s, v, k, x);
                let got: &[T] = cast_slice(core::slice::from_ref(&set));
                for (j, &g) in got.iter().enumerate() {
                    let want = if j == k { x } else { src[j] };
                    assert_eq!(g, want, "vset_lane k = {k}, lane {j}");
                }
                cases += 1;
            }
            cases
        }
    }

    #[test]
    fn keep_first_and_set_lane_at_every_level() {
        for &level in Level::all() {
            for cases in [
                level.dispatch(Lanes::<f32>(core::marker::PhantomData)),
                level.dispatch(Lanes::<f64>(core::marker::PhantomData)),
            ]
            .into_iter()
            .flatten()
            {
                // lanes + 2 values of n and lanes + 1 of k, lanes ≥ 1.
                assert!(cases >= 5, "{level:?}");
            }
        }
    }
}
