//! Every SIMD path against the scalar reference, at every dispatch level the
//! host has (levels it lacks are reported on stderr and skipped), and the
//! vector `exp` against libm.
#![cfg(feature = "std")]

use crate::common;
use crate::common::levels;

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::{Level, exp_in_place};
use gaussian_kl::{Exec, Gaussians, Kernel, Real};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Distance in units in the last place between two finite numbers of the
/// same sign, or 0/∞ handling for exact specials.
fn ulps_f32(a: f32, b: f32) -> u64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return u64::MAX;
    }
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

fn ulps_f64(a: f64, b: f64) -> u64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return u64::MAX;
    }
    (a.to_bits() as i128 - b.to_bits() as i128).unsigned_abs() as u64
}

/// Stated budget: the vector `exp` is within 2 ulp of libm everywhere
/// (libm's `exp`/`expf` are themselves within 1 ulp of the exact value).
const EXP_MAX_ULP: u64 = 2;

#[test]
fn vector_exp_f32_matches_libm_within_2_ulp() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut xs: Vec<f32> = (0..200_000)
        .map(|_| rng.random_range(-105.0f32..90.0))
        .collect();
    xs.extend((0..20_000).map(|_| rng.random_range(-1.0f32..1.0)));
    // Whole vectors inside the fast path's range (|x| < 69) and at its edge.
    xs.extend((0..20_000).map(|_| rng.random_range(-69.0f32..69.0)));
    xs.extend((0..64).map(|i| if i % 2 == 0 { 68.999 } else { -68.999 }));
    xs.extend((0..64).map(|i| if i % 2 == 0 { 69.0 } else { -69.0 }));
    // NaN among in-range lanes (the fast path has no NaN select).
    xs.extend((0..64).map(|i| if i % 3 == 0 { f32::NAN } else { 0.5 }));
    xs.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        88.72,
        88.73,
        89.0,
        1e4,
        -87.3,
        -87.4,
        -103.0,
        -103.97,
        -104.0,
        -1e4,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-30,
    ]);
    for level in levels() {
        let mut ys = xs.clone();
        assert!(exp_in_place(level, &mut ys));
        let mut worst = (0u64, 0.0f32);
        for (&x, &y) in xs.iter().zip(&ys) {
            let u = ulps_f32(y, libm::expf(x));
            if u > worst.0 {
                worst = (u, x);
            }
        }
        eprintln!(
            "{level:?}: f32 exp max {} ulp (at x = {})",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= EXP_MAX_ULP,
            "{level:?}: {} ulp at x = {}",
            worst.0,
            worst.1
        );
    }
}

#[test]
fn vector_exp_f64_matches_libm_within_2_ulp() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut xs: Vec<f64> = (0..200_000)
        .map(|_| rng.random_range(-750.0f64..712.0))
        .collect();
    xs.extend((0..20_000).map(|_| rng.random_range(-1.0f64..1.0)));
    // Whole vectors inside the fast path's range (|x| < 690) and at its edge.
    xs.extend((0..20_000).map(|_| rng.random_range(-690.0f64..690.0)));
    xs.extend((0..64).map(|i| if i % 2 == 0 { 689.999 } else { -689.999 }));
    xs.extend((0..64).map(|i| if i % 2 == 0 { 690.0 } else { -690.0 }));
    // NaN among in-range lanes (the fast path has no NaN select).
    xs.extend((0..64).map(|i| if i % 3 == 0 { f64::NAN } else { 0.5 }));
    xs.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        709.78,
        709.79,
        710.0,
        1e5,
        -708.4,
        -708.5,
        -744.0,
        -745.1,
        -746.0,
        -1e5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-300,
    ]);
    for level in levels() {
        let mut ys = xs.clone();
        assert!(exp_in_place(level, &mut ys));
        let mut worst = (0u64, 0.0f64);
        for (&x, &y) in xs.iter().zip(&ys) {
            let u = ulps_f64(y, libm::exp(x));
            if u > worst.0 {
                worst = (u, x);
            }
        }
        eprintln!(
            "{level:?}: f64 exp max {} ulp (at x = {})",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= EXP_MAX_ULP,
            "{level:?}: {} ulp at x = {}",
            worst.0,
            worst.1
        );
    }
}

/// A seeded batch of `n` Gaussians of dimension `d` (row-major packed, raw
/// log diagonal), from the generators of `tests/suite/common.rs` (well-conditioned).
fn batch_of<T: Real>(seed: u64, d: usize, n: usize) -> (Vec<T>, Vec<T>) {
    let mut rng = common::rng(seed);
    let mut means = Vec::new();
    let mut factors = Vec::new();
    for _ in 0..n {
        means.extend(common::round::<T>(&common::random_mean(&mut rng, d)));
        factors.extend(common::round::<T>(&common::random_raw(&mut rng, d)));
    }
    (means, factors)
}

/// The independent f64 reference (dense covariances, Gauss–Jordan) of pair
/// `k` of two batches.
fn reference<T: Real>(
    d: usize,
    k: usize,
    (mp, tp): (&[T], &[T]),
    (mq, tq): (&[T], &[T]),
) -> common::Reference {
    use common::{dense_factor, reference_kl, widen};
    let t = d * (d + 1) / 2;
    reference_kl(
        d,
        &widen(&mp[k * d..][..d]),
        &dense_factor(d, &widen(&tp[k * t..][..t])),
        &widen(&mq[k * d..][..d]),
        &dense_factor(d, &widen(&tq[k * t..][..t])),
    )
}

/// Tolerance against the reference: `8 · d · ε · scale · κ`, the bound of
/// `tests/suite/batch.rs`. The worst `err / (d · ε · scale · κ)` measured over
/// this file's kernel cases (every kernel and level, d ≤ 131) is 1.6 for f32
/// and 1.2 for f64: a margin of 5×.
fn tol<T: Real>(d: usize, r: &common::Reference) -> f64 {
    8.0 * d.max(1) as f64 * T::EPSILON.to_f64() * r.scale * r.kappa
}

/// `batch::kl` (zip) with a workspace of exactly the scratch size.
fn kl<T: Real>(exec: &Exec, d: usize, p: (&[T], &[T]), q: (&[T], &[T]), out: &mut [T]) {
    let n = out.len();
    let p = Gaussians::new(n, d, p.0, p.1).unwrap();
    let q = Gaussians::new(n, d, q.0, q.1).unwrap();
    let mut work = vec![T::NAN; batch::kl_scratch::<T>(d, exec).unwrap()];
    batch::kl(&p, Pairs::Zip(&q), out, exec, &mut work).unwrap();
}

/// Runs `kernel` at `level` on `n` random pairs and checks each result
/// against the independent reference.
fn check_kernel<T: Real>(level: Level, kernel: Kernel, d: usize, n: usize, seed: u64) {
    let case = Case::<T>::new(d, n, seed);
    case.check(level, kernel);
}

/// `n` random pairs and their references.
struct Case<T> {
    d: usize,
    p: (Vec<T>, Vec<T>),
    q: (Vec<T>, Vec<T>),
    refs: Vec<common::Reference>,
}

impl<T: Real> Case<T> {
    fn new(d: usize, n: usize, seed: u64) -> Self {
        let p = batch_of::<T>(seed, d, n);
        let q = batch_of::<T>(seed + 1000, d, n);
        let refs = (0..n)
            .map(|k| reference(d, k, (&p.0, &p.1), (&q.0, &q.1)))
            .collect();
        Case { d, p, q, refs }
    }

    fn check(&self, level: Level, kernel: Kernel) {
        let (d, n) = (self.d, self.refs.len());
        let mut out = vec![T::NAN; n];
        let exec = Exec::new().level(level).kernel(kernel);
        kl(
            &exec,
            d,
            (&self.p.0, &self.p.1),
            (&self.q.0, &self.q.1),
            &mut out,
        );
        for (k, r) in self.refs.iter().enumerate() {
            let err = common::rel_err(out[k].to_f64(), r.kl, 1.0);
            assert!(
                err <= tol::<T>(d, r),
                "{level:?} {kernel:?} d={d} n={n} pair {k}: {} vs reference {} (err {err:e}, tol {:e})",
                out[k],
                r.kl,
                tol::<T>(d, r)
            );
        }
    }
}

/// Batch sizes around the lane count: 0, 1, lanes − 1, lanes, lanes + 1 and
/// a few blocks plus a tail.
fn sizes<T: Real>(level: Level) -> Vec<usize> {
    let l = level.lanes::<T>();
    let mut v = vec![0, 1, l.saturating_sub(1), l, l + 1, 3 * l + 2];
    v.sort();
    v.dedup();
    v
}

#[test]
fn lanes_kernel_matches_the_reference_small_d_all_levels() {
    for level in levels() {
        for d in 1..=16 {
            for &n in &sizes::<f32>(level) {
                check_kernel::<f32>(level, Kernel::Lanes, d, n, d as u64);
            }
            for &n in &sizes::<f64>(level) {
                check_kernel::<f64>(level, Kernel::Lanes, d, n, d as u64);
            }
        }
    }
}

#[test]
fn lanes_kernel_matches_the_reference_d_17_to_70() {
    let levels = levels();
    for d in 17..=70 {
        // 17 pairs: more than a block of the widest level (16 lanes).
        let (c32, c64) = (
            Case::<f32>::new(d, 17, d as u64),
            Case::<f64>::new(d, 2, d as u64),
        );
        for &level in &levels {
            c32.check(level, Kernel::Lanes);
            c64.check(level, Kernel::Lanes);
        }
    }
}

#[test]
fn blocked_kernel_matches_the_reference_d_1_to_70_all_levels() {
    let levels = levels();
    for d in 1..=70 {
        let (c32, c64) = (
            Case::<f32>::new(d, 2, d as u64),
            Case::<f64>::new(d, 2, d as u64),
        );
        for &level in &levels {
            c32.check(level, Kernel::Blocked);
            c64.check(level, Kernel::Blocked);
        }
    }
}

#[test]
fn blocked_kernel_matches_the_reference_large_d() {
    let level = Level::detect();
    for d in [96, 128, 131] {
        check_kernel::<f32>(level, Kernel::Blocked, d, 1, d as u64);
        check_kernel::<f64>(level, Kernel::Blocked, d, 1, d as u64);
    }
}

#[test]
fn default_and_scalar_kernels_match_the_reference_every_d() {
    for d in 1..=70 {
        check_kernel::<f32>(Level::detect(), Kernel::Auto, d, 3, 7 * d as u64);
        check_kernel::<f64>(Level::detect(), Kernel::Scalar, d, 2, 7 * d as u64);
    }
}

#[test]
fn kernels_give_identical_bits_wherever_the_pair_sits() {
    // A pair's lane (or its position in the batch) must not change its result.
    for level in levels() {
        for d in [1, 3, 8, 16, 20] {
            for kernel in [Kernel::Lanes, Kernel::Blocked] {
                let n = 2 * level.lanes::<f32>() + 3;
                let (mp, tp) = batch_of::<f32>(5, d, n);
                let (mq, tq) = batch_of::<f32>(6, d, n);
                let exec = Exec::new().level(level).kernel(kernel);
                let mut all = vec![0.0; n];
                kl(&exec, d, (&mp, &tp), (&mq, &tq), &mut all);
                let t = d * (d + 1) / 2;
                for k in [0, 1, n / 2, n - 1] {
                    let mut one = [0.0];
                    let p = (&mp[k * d..][..d], &tp[k * t..][..t]);
                    let q = (&mq[k * d..][..d], &tq[k * t..][..t]);
                    kl(&exec, d, p, q, &mut one);
                    assert_eq!(
                        one[0].to_bits(),
                        all[k].to_bits(),
                        "{level:?} {kernel:?} d={d} k={k}"
                    );
                }
            }
        }
    }
}

#[test]
fn kernels_propagate_nan_and_inf_without_panicking() {
    for level in levels() {
        for kernel in [Kernel::Lanes, Kernel::Blocked, Kernel::Scalar] {
            for d in [2, 5, 18] {
                let (mut mp, mut tp) = batch_of::<f32>(9, d, 3);
                let (mq, tq) = batch_of::<f32>(10, d, 3);
                mp[d] = f32::NAN; // pair 1
                tp[2 * d * (d + 1) / 2] = f32::INFINITY; // pair 2, log diagonal → ∞
                let mut out = vec![0.0; 3];
                let exec = Exec::new().level(level).kernel(kernel);
                kl(&exec, d, (&mp, &tp), (&mq, &tq), &mut out);
                assert!(out[0].is_finite(), "{level:?} {kernel:?} d={d}");
                assert!(out[1].is_nan(), "{level:?} {kernel:?} d={d}: {}", out[1]);
                assert!(
                    !out[2].is_finite(),
                    "{level:?} {kernel:?} d={d}: {}",
                    out[2]
                );
            }
        }
    }
}

/// The `wide` fixed-dimension lockstep kernels against the reference.
fn check_wide<const D: usize>() {
    use gaussian_kl::full::{kl_wide_f32x8, kl_wide_f64x4};
    let (mp, tp) = batch_of::<f32>(D as u64, D, 8);
    let (mq, tq) = batch_of::<f32>(D as u64 + 50, D, 8);
    let out = kl_wide_f32x8::<D>(&mp, &tp, &mq, &tq).unwrap();
    for (k, &o) in out.iter().enumerate() {
        let r = reference(D, k, (&mp, &tp), (&mq, &tq));
        let err = common::rel_err(o as f64, r.kl, 1.0);
        assert!(
            err <= tol::<f32>(D, &r),
            "f32x8 D={D} k={k}: {o} vs {}",
            r.kl
        );
    }
    let (mp, tp) = batch_of::<f64>(D as u64, D, 4);
    let (mq, tq) = batch_of::<f64>(D as u64 + 50, D, 4);
    let out = kl_wide_f64x4::<D>(&mp, &tp, &mq, &tq).unwrap();
    for (k, &o) in out.iter().enumerate() {
        let r = reference(D, k, (&mp, &tp), (&mq, &tq));
        let err = common::rel_err(o, r.kl, 1.0);
        assert!(
            err <= tol::<f64>(D, &r),
            "f64x4 D={D} k={k}: {o} vs {}",
            r.kl
        );
    }
    // Shape errors name the slice.
    assert_eq!(
        kl_wide_f64x4::<D>(&mp[1..], &tp, &mq, &tq),
        Err(gaussian_kl::Error::LengthMismatch {
            what: "means_p",
            expected: 4 * D,
            found: 4 * D - 1
        })
    );
}

#[test]
fn wide_fixed_kernels_match_the_reference() {
    check_wide::<1>();
    check_wide::<2>();
    check_wide::<3>();
    check_wide::<4>();
    check_wide::<5>();
    check_wide::<8>();
    check_wide::<13>();
    check_wide::<16>();
}
