//! Runtime SIMD dispatch, level forcing, and the vector arithmetic the
//! pulp-based kernels are written in.
//!
//! Kernels are generic over a pulp [`Simd`] token and run through
//! `Level::dispatch`: [`Level::detect`] picks the best instruction set the
//! CPU has at run time (AVX-512 with the `avx512` feature, else AVX2+FMA on
//! x86-64; NEON on aarch64; `simd128` on wasm32; scalar otherwise). Tests and
//! benches force any level the host supports, including, with the crate
//! feature `emulated-levels`, pulp's emulated widths (`Scalar128`/`256`/`512`),
//! which run the vector code paths of each lane count on any machine. Every
//! level a build can dispatch to is one more copy of every SIMD kernel in
//! it; without the feature those three report unavailable and cost nothing.
//!
//! ```
//! use gaussian_kl::simd::Level;
//! let best = Level::detect();
//! assert!(best.is_available());
//! assert!(Level::Scalar.is_available());
//! assert!(Level::all().iter().any(|l| *l == best));
//! ```

mod exp;
mod real;
mod transpose;

pub(crate) use transpose::{Get, Load, Put, Store, transpose, untranspose};

pub(crate) use real::SimdReal;

use crate::real::Real;

pub(crate) use pulp::Simd;
use pulp::WithSimd;

/// An instruction-set level a kernel can be run at.
///
/// ```
/// use gaussian_kl::simd::Level;
/// use gaussian_kl::Exec;
/// // Force the scalar level, which every host has.
/// let exec = Exec::new().level(Level::Scalar);
/// assert_eq!(exec.resolved_level()?, Level::Scalar);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// One lane, plain scalar instructions (pulp's `Scalar`).
    Scalar,
    /// Emulated 128-bit vectors in scalar code (pulp's `Scalar128b`): tests
    /// the 4-lane `f32` / 2-lane `f64` paths on any machine. Needs the crate
    /// feature `emulated-levels`, as do the next two.
    Scalar128,
    /// Emulated 256-bit vectors (8 × `f32`, 4 × `f64`).
    Scalar256,
    /// Emulated 512-bit vectors (16 × `f32`, 8 × `f64`).
    Scalar512,
    /// x86-64 AVX2 + FMA (pulp's `V3`).
    Avx2,
    /// x86-64 AVX-512 (pulp's `V4`); needs the crate feature `avx512`.
    Avx512,
    /// aarch64 NEON.
    Neon,
    /// wasm32 `simd128`.
    Simd128,
}

/// Every level, in order of increasing width.
const ALL: [Level; 8] = [
    Level::Scalar,
    Level::Scalar128,
    Level::Scalar256,
    Level::Scalar512,
    Level::Avx2,
    Level::Avx512,
    Level::Neon,
    Level::Simd128,
];

impl Level {
    /// Every level this build knows, whether or not the host has it.
    ///
    /// ```
    /// use gaussian_kl::simd::Level;
    /// let here: Vec<Level> = Level::all().iter().copied().filter(|l| l.is_available()).collect();
    /// assert!(here.contains(&Level::Scalar));
    /// ```
    pub const fn all() -> &'static [Level] {
        &ALL
    }

    /// The best level the running CPU supports (what the batch APIs use
    /// unless told otherwise).
    ///
    /// ```
    /// use gaussian_kl::simd::Level;
    /// assert!(Level::detect().is_available());
    /// ```
    pub fn detect() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            #[cfg(feature = "avx512")]
            if pulp::x86::V4::try_new().is_some() {
                return Level::Avx512;
            }
            if pulp::x86::V3::try_new().is_some() {
                return Level::Avx2;
            }
        }
        #[cfg(any(target_arch = "aarch64", target_arch = "wasm32"))]
        {
            match pulp::Arch::new() {
                pulp::Arch::Scalar => {}
                #[cfg(target_arch = "aarch64")]
                _ => return Level::Neon,
                #[cfg(target_arch = "wasm32")]
                _ => return Level::Simd128,
            }
        }
        Level::Scalar
    }

    /// Whether this level can run on the host (and this build).
    ///
    /// ```
    /// use gaussian_kl::simd::Level;
    /// assert!(Level::Scalar.is_available());
    /// #[cfg(not(target_arch = "aarch64"))]
    /// assert!(!Level::Neon.is_available());
    /// ```
    pub fn is_available(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(feature = "emulated-levels")]
            Level::Scalar128 | Level::Scalar256 | Level::Scalar512 => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => pulp::x86::V3::try_new().is_some(),
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Level::Avx512 => pulp::x86::V4::try_new().is_some(),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => Level::detect() == Level::Neon,
            #[cfg(target_arch = "wasm32")]
            Level::Simd128 => Level::detect() == Level::Simd128,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Number of `T` lanes one vector holds at this level.
    ///
    /// ```
    /// use gaussian_kl::simd::Level;
    /// assert_eq!(Level::Scalar.lanes::<f32>(), 1);
    /// if Level::Scalar512.is_available() {
    ///     // with the feature `emulated-levels`
    ///     assert_eq!(Level::Scalar512.lanes::<f32>(), 16);
    ///     assert_eq!(Level::Scalar512.lanes::<f64>(), 8);
    /// }
    /// ```
    ///
    /// A level the host lacks reports 1.
    pub fn lanes<T: Real>(self) -> usize {
        struct Lanes<T>(core::marker::PhantomData<T>);
        impl<T: Real> WithSimd for Lanes<T> {
            type Output = usize;
            #[inline(always)]
            fn with_simd<S: Simd>(self, _: S) -> usize {
                T::lanes::<S>()
            }
        }
        self.dispatch(Lanes::<T>(core::marker::PhantomData))
            .unwrap_or(1)
    }

    /// Runs `op` with this level's SIMD token, or returns `None` if the host
    /// lacks the level. pulp enables the level's target features for the
    /// duration of the call.
    #[inline]
    pub(crate) fn dispatch<Op: WithSimd>(self, op: Op) -> Option<Op::Output> {
        match self {
            Level::Scalar => Some(Simd::vectorize(pulp::Scalar::new(), op)),
            #[cfg(feature = "emulated-levels")]
            Level::Scalar128 => Some(Simd::vectorize(pulp::Scalar128b, op)),
            #[cfg(feature = "emulated-levels")]
            Level::Scalar256 => Some(Simd::vectorize(pulp::Scalar256b, op)),
            #[cfg(feature = "emulated-levels")]
            Level::Scalar512 => Some(Simd::vectorize(pulp::Scalar512b, op)),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => pulp::x86::V3::try_new().map(|s| Simd::vectorize(s, op)),
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Level::Avx512 => pulp::x86::V4::try_new().map(|s| Simd::vectorize(s, op)),
            #[cfg(any(target_arch = "aarch64", target_arch = "wasm32"))]
            Level::Neon | Level::Simd128 => {
                if self.is_available() {
                    Some(pulp::Arch::new().dispatch(op))
                } else {
                    None
                }
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

#[cfg(feature = "std")]
impl Level {
    /// Runs `op` at this level, or at [`Level::Scalar`] if the host lacks it
    /// (for kernels whose results are bit-identical at every level).
    #[inline]
    pub(crate) fn dispatch_or_scalar<Op: WithSimd>(self, op: Op) -> Op::Output {
        let level = if self.is_available() {
            self
        } else {
            Level::Scalar
        };
        match level {
            #[cfg(feature = "emulated-levels")]
            Level::Scalar128 => Simd::vectorize(pulp::Scalar128b, op),
            #[cfg(feature = "emulated-levels")]
            Level::Scalar256 => Simd::vectorize(pulp::Scalar256b, op),
            #[cfg(feature = "emulated-levels")]
            Level::Scalar512 => Simd::vectorize(pulp::Scalar512b, op),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => match pulp::x86::V3::try_new() {
                Some(simd) => Simd::vectorize(simd, op),
                None => Simd::vectorize(pulp::Scalar::new(), op),
            },
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Level::Avx512 => match pulp::x86::V4::try_new() {
                Some(simd) => Simd::vectorize(simd, op),
                None => Simd::vectorize(pulp::Scalar::new(), op),
            },
            #[cfg(any(target_arch = "aarch64", target_arch = "wasm32"))]
            Level::Neon | Level::Simd128 => pulp::Arch::new().dispatch(op),
            _ => Simd::vectorize(pulp::Scalar::new(), op),
        }
    }
}

/// The vector `exp` of the crate, exposed for testing: applies `eˣ` lane by
/// lane to `xs` in place, at `level`. Returns `false` (and leaves `xs`
/// untouched) if the host lacks the level.
///
/// Accuracy (tested against libm over the whole finite range): at most 2 ulp
/// for `f32` and `f64` on normal results; subnormal results are within 2 ulp
/// of the smallest subnormal.
///
/// ```
/// use gaussian_kl::simd::{exp_in_place, Level};
/// let mut xs = [0.0f32, 1.0, -1.0, 10.0];
/// assert!(exp_in_place(Level::detect(), &mut xs));
/// assert_eq!(xs[0], 1.0);
/// assert!((xs[1] - core::f32::consts::E).abs() <= 2.0 * f32::EPSILON * 3.0);
/// ```
pub fn exp_in_place<T: Real>(level: Level, xs: &mut [T]) -> bool {
    struct ExpOp<'a, T>(&'a mut [T]);
    impl<T: Real> WithSimd for ExpOp<'_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let lanes = T::lanes::<S>();
            for chunk in self.0.chunks_mut(lanes) {
                let mut buf = [T::V::<S>::zeroed()];
                let flat: &mut [T] = bytemuck::cast_slice_mut(&mut buf);
                flat[..chunk.len()].copy_from_slice(chunk);
                let v = T::vexp(simd, buf[0]);
                let out: &[T] = bytemuck::cast_slice(core::slice::from_ref(&v));
                chunk.copy_from_slice(&out[..chunk.len()]);
            }
        }
    }
    level.dispatch(ExpOp(xs)).is_some()
}

pub(crate) use bytemuck::Zeroable;
use pulp::bytemuck;
