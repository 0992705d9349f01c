//! The sealed floating-point trait every kernel is generic over.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real floating-point scalar: implemented for `f32` and `f64` only (sealed).
///
/// The crate's one numeric trait: every function, scalar or SIMD, is generic
/// over `T: Real`. Every kernel has one generic source; this trait supplies
/// the handful of scalar operations they need, with the transcendental
/// functions taken from [`libm`] so that results do not depend on the
/// platform's C library. Its vector arithmetic (pulp's SIMD vectors of
/// `f32` and `f64`) lives in a supertrait that is internal to the crate.
///
/// ```
/// use gaussian_kl::Real;
/// fn twice<T: Real>(x: T) -> T { x + x }
/// assert_eq!(twice(1.5f32), 3.0);
/// assert_eq!(<f64 as Real>::from_f64(0.25).exp(), 0.25f64.exp());
/// ```
pub trait Real:
    sealed::Sealed
    + crate::simd::SimdReal
    + Copy
    + Default
    + PartialOrd
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// `0.5`.
    const HALF: Self;
    /// Machine epsilon (the distance from 1 to the next larger number).
    const EPSILON: Self;
    /// Not a number.
    const NAN: Self;
    /// Positive infinity.
    const INFINITY: Self;

    /// Converts from `f64`, rounding to nearest.
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn third<T: Real>() -> T { T::from_f64(1.0 / 3.0) }
    /// assert_eq!(third::<f32>(), 1.0f32 / 3.0);
    /// ```
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exact for both implementations).
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn widen<T: Real>(x: T) -> f64 { x.to_f64() }
    /// assert_eq!(widen(0.1f32), 0.1f32 as f64);
    /// ```
    fn to_f64(self) -> f64;
    /// Converts a count to this type, rounding to nearest.
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn mean<T: Real>(xs: &[T]) -> T { xs.iter().fold(T::ZERO, |a, &x| a + x) / T::from_usize(xs.len()) }
    /// assert_eq!(mean(&[1.0f64, 2.0, 6.0]), 3.0);
    /// ```
    fn from_usize(n: usize) -> Self;
    /// `eˣ` (libm).
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn e<T: Real>() -> T { T::ONE.exp() }
    /// assert!((e::<f64>() - core::f64::consts::E).abs() <= 4.0 * f64::EPSILON);
    /// ```
    fn exp(self) -> Self;
    /// Natural logarithm (libm).
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn log_det<T: Real>(diag: &[T]) -> T { diag.iter().fold(T::ZERO, |a, &x| a + x.ln()) }
    /// assert_eq!(log_det(&[1.0f64, 1.0]), 0.0);
    /// ```
    fn ln(self) -> Self;
    /// Square root (correctly rounded).
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn root<T: Real>(x: T) -> T { x.sqrt() }
    /// assert_eq!(root(2.25f32), 1.5);
    /// ```
    fn sqrt(self) -> Self;
    /// Absolute value.
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn dist<T: Real>(a: T, b: T) -> T { (a - b).abs() }
    /// assert_eq!(dist(1.0f64, 3.5), 2.5);
    /// ```
    fn abs(self) -> Self;
    /// `true` unless the value is NaN or infinite.
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn ok<T: Real>(x: T) -> bool { x.is_finite() }
    /// assert!(ok(1.0f32) && !ok(f32::INFINITY) && !ok(f32::NAN));
    /// ```
    fn is_finite(self) -> bool;
    /// `true` if the value is NaN.
    ///
    /// ```
    /// use gaussian_kl::Real;
    /// fn nan<T: Real>(x: T) -> bool { x.is_nan() }
    /// assert!(nan(f64::NAN) && !nan(f64::INFINITY));
    /// ```
    fn is_nan(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty, $exp:path, $ln:path, $sqrt:path, $abs:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            const EPSILON: Self = <$t>::EPSILON;
            const NAN: Self = <$t>::NAN;
            const INFINITY: Self = <$t>::INFINITY;

            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                $sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                $abs(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}

impl_real!(f32, libm::expf, libm::logf, libm::sqrtf, libm::fabsf);
impl_real!(f64, libm::exp, libm::log, libm::sqrt, libm::fabs);
